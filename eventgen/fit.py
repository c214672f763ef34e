"""Fit: from an event table to a self-contained :class:`~eventgen.bundle.Bundle`.

check → preprocess → train the β-VAE → encode every event into the density buffer →
learn the physics clean-up → bundle with provenance.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eventgen import __version__
from eventgen.bundle import Bundle
from eventgen.errors import ConfigError
from eventgen.io import EventTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BufferSettings:
    """Default sampling stored in the bundle ([DE]: α = 1, γ = 0.05); ``generate`` may override."""

    mode: Literal["buffer", "kde", "gmm", "prior"] = "buffer"
    alpha: float = 1.0
    gamma: float = 0.05
    selection: Literal["uniform", "stratified", "weighted"] = "uniform"
    bandwidth: float | Literal["scott", "silverman"] = "scott"
    n_components: int = 100
    weight_column: str | None = None
    weight_power: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.gamma < 0:
            raise ConfigError(f"buffer.alpha and buffer.gamma must be >= 0, found {self.alpha}, {self.gamma}")
        if self.n_components < 1:
            raise ConfigError(f"buffer.n_components must be >= 1, found {self.n_components}")
        if self.selection == "weighted" and self.weight_column is None:
            raise ConfigError(
                "buffer.selection 'weighted' needs buffer.weight_column, e.g. met to enhance high MET"
            )


def buffer_weights(table: EventTable, column: str, power: float) -> np.ndarray:
    """Per-event weights ``(x / mean(x)) ** power`` of a non-negative column, floored at 1e-3."""
    x = np.abs(table.column(column).astype(np.float64))
    mean = x.mean() if x.size and x.mean() > 0 else 1.0
    return np.maximum((x / mean) ** power, 1e-3)


def fit(
    table: EventTable,
    *,
    preprocess: str = "physics",
    model_settings: Any = None,
    train_settings: Any = None,
    buffer_settings: BufferSettings = BufferSettings(),
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    progress: bool = False,
    data_source: dict[str, Any] | None = None,
) -> Bundle:
    """Fit a bundle on ``table`` (``(n_events, n_columns)`` raw events in schema order)."""
    from eventgen.buffer import DensityBuffer
    from eventgen.cleanup import PhysicsCleanup
    from eventgen.model import ModelSettings, encode_numpy
    from eventgen.preprocess import Preprocessor
    from eventgen.train import TrainSettings, check_trainable, train

    model_settings = model_settings or ModelSettings()
    train_settings = train_settings or TrainSettings()
    t0 = time.perf_counter()
    check_trainable(table.data, table.schema, train_settings.min_events)
    preprocessor = Preprocessor(preprocess)  # type: ignore[arg-type]
    x = preprocessor.fit_transform(table.data, table.schema)
    log.info("training on %d events with %d columns", x.shape[0], x.shape[1])
    result = train(x, model_settings, train_settings, seed, checkpoint_dir=checkpoint_dir, progress=progress)
    mu, sigma = encode_numpy(result.model, x)
    weights = None
    if buffer_settings.weight_column is not None:
        weights = buffer_weights(table, buffer_settings.weight_column, buffer_settings.weight_power)
    buffer = DensityBuffer(
        mode=buffer_settings.mode,
        alpha=buffer_settings.alpha,
        gamma=buffer_settings.gamma,
        bandwidth=buffer_settings.bandwidth,
        n_components=buffer_settings.n_components,
        selection=buffer_settings.selection,
        weights=weights,
    ).fit(mu, sigma, seed=seed)
    cleanup = PhysicsCleanup().fit(table.data, table.schema)
    metadata = {
        "training": {
            "seed": seed,
            "preprocess": preprocess,
            "settings": train_settings.to_dict(),
            "buffer_settings": asdict(buffer_settings),
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
