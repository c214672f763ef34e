"""Fit: from an event table to a self-contained :class:`~eventgen.bundle.Bundle`.

check → preprocess → train the β-VAE → encode every event into the density buffer →
learn the physics clean-up → bundle with provenance.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen import __version__
from eventgen.bundle import Bundle, file_sha256
from eventgen.errors import ConfigError
from eventgen.io import EventTable
from eventgen.preprocess import PREPROCESS_METHODS
from eventgen.refine import RefineSettings
from eventgen.representation import FRAMES, REPRESENTATIONS
from eventgen.sampling import FIELDS as SAMPLING_FIELDS
from eventgen.sampling import SamplingSettings
from eventgen.schema import Schema

if TYPE_CHECKING:
    from eventgen.io import EventsLike
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
    data: EventsLike,
    schema: Schema | str | None = None,
    *,
    preprocess: PreprocessMethod = "physics",
    representation: Representation = "mass",
    frame: Frame = "canonical",
    model_settings: ModelSettings | None = None,
    train_settings: TrainSettings | None = None,
    buffer_settings: BufferSettings | None = None,
    refine: RefineSettings | bool = True,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
    data_source: dict[str, Any] | None = None,
    **options: Any,
) -> Bundle:
    """Fit a bundle on raw events ``(n_events, n_columns)``; save it with ``bundle.save(path)``.

    ``data`` is an :class:`~eventgen.io.EventTable`, a pandas DataFrame, a NumPy array with its
    ``schema`` (a built-in name such as ``"ttbar"``, a :class:`~eventgen.schema.Schema` or a schema
    file), or the path of an event file (see :func:`eventgen.io.as_event_table`).

    ``options`` set single settings by keyword, over ``model_settings``, ``train_settings`` and
    ``buffer_settings`` (the keys of a fit config's sections): :class:`~eventgen.model.ModelSettings`
    (``latent_dim``, ``beta``, ``hidden``, ``depth``, ...), :class:`~eventgen.train.TrainSettings`
    (``epochs``, ``batch_size``, ``learning_rate``, ``patience``, ``device``, ``threads``, ...) and the
    buffer's (``alpha``, ``gamma``, ``mode``, ..., ``weight_column``, ``weight_power``), for example
    ``fit(events, epochs=20, latent_dim=8, beta=1e-5, seed=1)``. An unknown option or an invalid
    value raises :class:`~eventgen.errors.ConfigError` naming the valid ones. ``progress`` shows a
    progress bar per epoch; ``checkpoint_dir`` makes an interrupted fit resume.

    ``representation`` and ``frame`` choose what the model sees (:mod:`eventgen.representation`):
    by default each object's mass in place of its energy, in the canonical frame; ``"energy"``
    and ``"lab"`` model the columns as they are.

    ``refine`` (a :class:`~eventgen.refine.RefineSettings`, or True / False for its defaults / none)
    trains the bundle's refiner (:mod:`eventgen.refine`) after the buffer.
    """
    from eventgen.io import as_event_table

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, found {seed!r}")
    if preprocess not in PREPROCESS_METHODS:
        raise ConfigError(
            f"preprocess={preprocess!r} is unknown; choose one of {', '.join(PREPROCESS_METHODS)}"
        )
    for name, value, choices in (
        ("representation", representation, REPRESENTATIONS),
        ("frame", frame, FRAMES),
    ):
        if value not in choices:
            raise ConfigError(f"{name}={value!r} is unknown; choose one of {', '.join(choices)}")
    if isinstance(refine, bool):
        refine = RefineSettings(enabled=refine)
    elif not isinstance(refine, RefineSettings):
        raise ConfigError(f"refine must be True, False or a RefineSettings, found {refine!r}")
    model_settings, train_settings, buffer_settings = fit_settings(
        options, model_settings, train_settings, buffer_settings
    )
    refine.check_selection(buffer_settings.sampling.selection)
    if not refine.enabled:  # the stored sampling says what generation does: nothing to refine with
        buffer_settings = dataclasses.replace(
            buffer_settings, sampling=dataclasses.replace(buffer_settings.sampling, refine=False)
        )
    if data_source is None and isinstance(data, str | os.PathLike):
        table = as_event_table(data, schema)
        path = os.fspath(data)
        data_source = {"path": path, "sha256": file_sha256(path), "n_events": len(table)}
    else:
        table = as_event_table(data, schema)
    if buffer_settings.weight_column is not None:
        table.schema.index(buffer_settings.weight_column)  # before training: an unknown column raises
    from eventgen.buffer import DensityBuffer
    from eventgen.cleanup import PhysicsCleanup
    from eventgen.model import encode_numpy
    from eventgen.preprocess import Preprocessor
    from eventgen.train import check_trainable, train

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
    bundle = Bundle(table.schema, preprocessor, result.model, model_settings, buffer, cleanup, metadata)
    if refine.enabled:
        from eventgen.refine import fit_refiner

        bundle.refiner = fit_refiner(bundle, table.data, refine, seed)
    return bundle


def fit_settings(
    options: Mapping[str, Any],
    model_settings: ModelSettings | None = None,
    train_settings: TrainSettings | None = None,
    buffer_settings: BufferSettings | None = None,
) -> tuple[ModelSettings, TrainSettings, BufferSettings]:
    """The settings of a fit: the given ones (else the defaults) with the keyword ``options`` set.

    Each option is a field of :class:`~eventgen.model.ModelSettings`,
    :class:`~eventgen.train.TrainSettings` or a ``buffer:`` key (:class:`BufferSettings`); an
    unknown name or an invalid value raises ConfigError in one line.
    """
    import dataclasses

    from eventgen.config import from_mapping
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings

    model = model_settings or ModelSettings()
    train = train_settings or TrainSettings()
    buffer = buffer_settings or BufferSettings()
    model_keys = [f.name for f in dataclasses.fields(ModelSettings)]
    train_keys = [f.name for f in dataclasses.fields(TrainSettings)]
    buffer_keys = [*SAMPLING_FIELDS, "weight_column", "weight_power"]
    valid = [*model_keys, *train_keys, *buffer_keys]
    unknown = [k for k in options if k not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"fit() has no option {unknown[0]!r}; {hint}valid options are {sorted(valid)}")

    def chosen(keys: list[str]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in keys}

    if chosen(model_keys):
        model = from_mapping(ModelSettings, {**model.to_dict(), **chosen(model_keys)}, "fit")
    if chosen(train_keys):
        train = from_mapping(TrainSettings, {**train.to_dict(), **chosen(train_keys)}, "fit")
    if chosen(buffer_keys):
        current = {**buffer.sampling.to_dict(), "weight_column": buffer.weight_column}
        current["weight_power"] = buffer.weight_power
        buffer = BufferSettings.from_mapping({**current, **chosen(buffer_keys)}, "fit")
    return model, train, buffer


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
