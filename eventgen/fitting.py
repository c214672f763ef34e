"""Fit: from an event table to a self-contained :class:`~eventgen.bundle.Bundle`.

check → preprocess → train the β-VAE → encode every event into the density buffer →
learn the physics clean-up → bundle with provenance.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen import __version__
from eventgen.bundle import Bundle
from eventgen.errors import ConfigError
from eventgen.io import EventTable
from eventgen.sampling import FIELDS as SAMPLING_FIELDS
from eventgen.sampling import SamplingSettings

if TYPE_CHECKING:
    from eventgen.model import ModelSettings
    from eventgen.preprocess import PreprocessMethod
    from eventgen.representation import Frame, Representation
    from eventgen.train import TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BufferSettings:
    """The fit config's ``buffer:`` section: the bundle's default sampling and the buffer weights.

    ``sampling`` is stored in the bundle ([DE]: α = 1, γ = 0.05) and ``generate`` may override
    it; ``weight_column`` and ``weight_power`` give every buffer event the weight
    :func:`buffer_weights` for ``selection: weighted``. In YAML the section is flat: the keys of
    :class:`~eventgen.sampling.SamplingSettings` beside ``weight_column`` and ``weight_power``.
    """

    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    weight_column: str | None = None
    weight_power: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, SamplingSettings):
            raise ConfigError(f"buffer sampling must be a SamplingSettings, found {self.sampling!r}")
        if self.weight_column is not None and not isinstance(self.weight_column, str):
            raise ConfigError(f"weight_column must be a column name or null, found {self.weight_column!r}")
        power = self.weight_power
        if isinstance(power, bool) or not isinstance(power, int | float) or not math.isfinite(power):
            raise ConfigError(f"weight_power must be a finite number, found {power!r}")
        if self.sampling.selection == "weighted" and self.weight_column is None:
            raise ConfigError("selection 'weighted' needs buffer.weight_column, e.g. met to enhance high MET")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "buffer") -> BufferSettings:
        """The settings of a flat ``buffer:`` mapping; unknown keys and bad values raise ConfigError."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys to values, found {data!r}")
        data = dict(data or {})
        own = ("weight_column", "weight_power")
        unknown = sorted(set(data) - set(own) - set(SAMPLING_FIELDS), key=str)
        if unknown:
            raise ConfigError(f"unknown key {where}.{unknown[0]}; valid keys are {[*SAMPLING_FIELDS, *own]}")
        sampling = SamplingSettings().updated({k: v for k, v in data.items() if k not in own}, where=where)
        try:
            return cls(sampling, **{k: data[k] for k in own if k in data})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def buffer_weights(table: EventTable, column: str, power: float) -> np.ndarray:
    """Per-event weights ``(x / mean(x)) ** power`` of a non-negative column, floored at 1e-3."""
    x = np.abs(table.column(column).astype(np.float64))
    mean = x.mean() if x.size and x.mean() > 0 else 1.0
    return np.maximum((x / mean) ** power, 1e-3)


def fit(
    table: EventTable,
    *,
    preprocess: PreprocessMethod = "physics",
    representation: Representation = "mass",
    frame: Frame = "canonical",
    model_settings: ModelSettings | None = None,
    train_settings: TrainSettings | None = None,
    buffer_settings: BufferSettings | None = None,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
    data_source: dict[str, Any] | None = None,
) -> Bundle:
    """Fit a bundle on ``table`` (``(n_events, n_columns)`` raw events in schema order).

    ``representation`` and ``frame`` choose what the model sees (:mod:`eventgen.representation`):
    by default each object's mass in place of its energy, in the canonical frame; ``"energy"``
    and ``"lab"`` model the columns as they are.
    """
    from eventgen.buffer import DensityBuffer
    from eventgen.cleanup import PhysicsCleanup
    from eventgen.model import ModelSettings, encode_numpy
    from eventgen.preprocess import Preprocessor
    from eventgen.train import TrainSettings, check_trainable, train

    model_settings = model_settings or ModelSettings()
    train_settings = train_settings or TrainSettings()
    buffer_settings = buffer_settings or BufferSettings()
    t0 = time.perf_counter()
    check_trainable(table.data, table.schema, train_settings.min_events)
    preprocessor = Preprocessor(preprocess, representation, frame)
    x = preprocessor.fit_transform(table.data, table.schema)
    log.info("training on %d events with %d columns", x.shape[0], x.shape[1])
    result = train(x, model_settings, train_settings, seed, checkpoint_dir=checkpoint_dir, progress=progress)
    mu, sigma = encode_numpy(result.model, x)
    weights = None
    if buffer_settings.weight_column is not None:
        weights = buffer_weights(table, buffer_settings.weight_column, buffer_settings.weight_power)
    buffer = DensityBuffer(buffer_settings.sampling, seed=seed).fit(mu, sigma, sample_weight=weights)
    cleanup = PhysicsCleanup().fit(table.data, table.schema)
    metadata = {
        "training": {
            "seed": seed,
            "preprocess": preprocess,
            "representation": representation,
            "frame": frame,
            "settings": train_settings.to_dict(),
            "buffer_weights": {
                "column": buffer_settings.weight_column,
                "power": buffer_settings.weight_power,
            },
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best": result.best,
            "stopped_early": result.stopped_early,
            "n_train": int(result.train_index.size),
            "n_validation": int(result.val_index.size),
            "events_per_second": result.events_per_second,
            "seconds": time.perf_counter() - t0,
            "device": result.device,
        },
        "data": data_source or {"n_events": len(table)},
        "latent": buffer.latent_stats(),
        "provenance": {**_versions(), "data_provenance": table.metadata},
    }
    return Bundle(table.schema, preprocessor, result.model, model_settings, buffer, cleanup, metadata)


def _versions() -> dict[str, str]:
    import numba
    import torch

    return {
        "eventgen": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
