"""Job configs of the CLI stages: YAML files mapped onto frozen dataclasses.

A job config holds what a stage needs beyond the library settings: input and output
paths, event counts and seeds. Command-line overrides replace single fields; ``None``
means "not given".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventgen.config import from_mapping, load_yaml
from eventgen.errors import ConfigError


@dataclass(frozen=True)
class SimulateJob:
    """``eventgen simulate``: physics settings plus how many events, which seed, where to."""

    settings: Any  # eventgen.simulate.SimulationSettings (imported lazily: needs no Pythia)
    n_events: int = 10_000
    seed: int = 1
    output: str = "events.parquet"

    def __post_init__(self) -> None:
        if self.n_events < 1:
            raise ConfigError(f"the number of events must be at least 1, found {self.n_events}")
        if self.seed < 0:
            raise ConfigError(f"the seed must be a non-negative integer, found {self.seed}")


_SIMULATE_JOB_KEYS = ("n_events", "seed", "output")


def load_simulate_job(process_or_config: str, **overrides: Any) -> SimulateJob:
    """A simulate job from a process name (built-in defaults) or a YAML config file.

    The config holds ``n_events``, ``seed``, ``output`` and any field of
    :class:`eventgen.simulate.SimulationSettings`; ``overrides`` that are not None win.
    """
    from eventgen.simulate import PROCESSES, SimulationSettings

    if process_or_config.endswith((".yaml", ".yml")):
        data = load_yaml(process_or_config)
        where = Path(process_or_config).name
    elif process_or_config in PROCESSES:
        data, where = {"process": process_or_config}, "simulate"
    else:
        raise ConfigError(
            f"unknown process {process_or_config!r}; choose one of {list(PROCESSES)} or give a YAML config"
        )
    job_values = {k: data.pop(k) for k in _SIMULATE_JOB_KEYS if k in data}
    process = data.get("process")
    if process not in PROCESSES:
        raise ConfigError(f"{where}: 'process' must be one of {list(PROCESSES)}, found {process!r}")
    defaults = dataclasses.asdict(SimulationSettings.for_process(process))
    settings = from_mapping(SimulationSettings, {**defaults, **data}, where)
    job_values.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(SimulateJob, {**job_values, "settings": settings}, where)


@dataclass(frozen=True)
class FitJob:
    """``eventgen fit``: training data, schema, settings of each part, output bundle."""

    data: str = ""
    schema: str | None = None
    output: str = "bundle"
    seed: int = 0
    preprocess: str = "physics"
    model: Any = None  # eventgen.model.ModelSettings
    train: Any = None  # eventgen.train.TrainSettings
    buffer: Any = None  # eventgen.fit.BufferSettings


def load_fit_job(config: str, **overrides: Any) -> FitJob:
    """A fit job from a YAML config; ``overrides`` (data, output, seed, epochs, ...) that are not None win.

    The config's sections ``model``, ``train`` and ``buffer`` map onto
    :class:`~eventgen.model.ModelSettings`, :class:`~eventgen.train.TrainSettings` and
    :class:`~eventgen.fit.BufferSettings` (the sampling settings and the buffer weights).
    """
    where = Path(config).name
    job = fit_job_from_mapping(load_yaml(config), where, **overrides)
    if not job.data:
        raise ConfigError(f"{where}: no training data given; set 'data' in the config or pass --data FILE")
    return job


def fit_job_from_mapping(config: dict[str, Any], where: str, **overrides: Any) -> FitJob:
    """A :class:`FitJob` from a config mapping (a fit config file or the ``fit`` section of a run)."""
    from eventgen.fit import BufferSettings
    from eventgen.model import ModelSettings
    from eventgen.preprocess import PREPROCESS_METHODS
    from eventgen.train import TrainSettings

    data = dict(config)
    sections = {"model": ModelSettings, "train": TrainSettings}
    known = {f.name for f in dataclasses.fields(FitJob)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key {where}: {unknown[0]}; valid keys are {sorted(known)}")
    train_keys = ("epochs", "batch_size", "device", "threads")
    train_overrides = {k: overrides.pop(k) for k in train_keys if k in overrides}
    parts = {"buffer": BufferSettings.from_mapping(data.pop("buffer", None), f"{where}: buffer")}
    for name, cls in sections.items():
        section = data.pop(name, None)
        if name == "train" and isinstance(section, dict | None):
            section = dict(section or {})
            section.update({k: v for k, v in train_overrides.items() if v is not None})
        parts[name] = from_mapping(cls, section, f"{where}: {name}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    plain = from_mapping(FitJob, data, where)
    if plain.preprocess not in PREPROCESS_METHODS:
        raise ConfigError(
            f"{where}: preprocess must be one of {list(PREPROCESS_METHODS)}, found {plain.preprocess!r}"
        )
    return dataclasses.replace(plain, **parts)
