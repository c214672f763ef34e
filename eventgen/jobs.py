"""Job configs of the CLI stages: YAML files mapped onto frozen dataclasses.

A job config holds what a stage needs beyond the library settings: input and output
paths, event counts and seeds. Command-line overrides replace single fields; ``None``
means "not given".
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from eventgen.config import from_mapping, load_yaml
from eventgen.errors import ConfigError
from eventgen.preprocess import PREPROCESS_METHODS, PreprocessMethod
from eventgen.refine import RefineSettings
from eventgen.representation import FRAMES, REPRESENTATIONS, Frame, Representation
from eventgen.simulation import PROCESSES, SimulationSettings  # no Pythia until a simulation runs

if TYPE_CHECKING:
    from eventgen.bundle import Bundle
    from eventgen.fitting import BufferSettings
    from eventgen.io import EventTable
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings


@dataclass(frozen=True)
class SimulateJob:
    """``eventgen simulate``: physics settings plus how many events, which seed, where to."""

    settings: SimulationSettings
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
    :class:`eventgen.simulation.SimulationSettings`; ``overrides`` that are not None win.
    """
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
    preprocess: PreprocessMethod = "physics"
    representation: Representation = "mass"
    frame: Frame = "canonical"
    model: ModelSettings | None = None
    train: TrainSettings | None = None
    buffer: BufferSettings | None = None
    refine: RefineSettings = dataclasses.field(default_factory=RefineSettings)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"the seed must be a non-negative integer, found {self.seed!r}")

    def fit_arguments(self) -> FitArguments:
        """The settings of this job as keyword arguments of :func:`eventgen.fitting.fit`."""
        return FitArguments(
            preprocess=self.preprocess,
            representation=self.representation,
            frame=self.frame,
            model_settings=self.model,
            train_settings=self.train,
            buffer_settings=self.buffer,
            seed=self.seed,
        )


class FitArguments(TypedDict):
    """What a :class:`FitJob` sets of :func:`eventgen.fitting.fit` (and :func:`eventgen.latent.beta_scan`)."""

    preprocess: PreprocessMethod
    representation: Representation
    frame: Frame
    model_settings: ModelSettings | None
    train_settings: TrainSettings | None
    buffer_settings: BufferSettings | None
    seed: int


def load_fit_job(config: str, **overrides: Any) -> FitJob:
    """A fit job from a YAML config; ``overrides`` (data, output, seed, epochs, ...) that are not None win.

    The config's sections ``model``, ``train``, ``buffer`` and ``refine`` map onto
    :class:`~eventgen.model.ModelSettings`, :class:`~eventgen.train.TrainSettings`,
    :class:`~eventgen.fitting.BufferSettings` (the sampling settings and the buffer weights) and
    :class:`~eventgen.refine.RefineSettings`.
    """
    where = Path(config).name
    job = fit_job_from_mapping(load_yaml(config), where, **overrides)
    if not job.data:
        raise ConfigError(f"{where}: no training data given; set 'data' in the config or pass --data FILE")
    return job


def fit_job_from_mapping(config: dict[str, Any], where: str, **overrides: Any) -> FitJob:
    """A :class:`FitJob` from a config mapping (a fit config file or the ``fit`` section of a run)."""
    from eventgen.fitting import BufferSettings
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings

    data = dict(config)
    known = {f.name for f in dataclasses.fields(FitJob)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key {where}: {unknown[0]}; valid keys are {sorted(known)}")
    train_keys = ("epochs", "batch_size", "device", "threads")
    train_overrides = {k: v for k in train_keys if (v := overrides.pop(k, None)) is not None}
    buffer = BufferSettings.from_mapping(data.pop("buffer", None), f"{where}: buffer")
    refine = RefineSettings.from_mapping(data.pop("refine", None), f"{where}: refine")
    try:
        refine.check_selection(buffer.sampling.selection)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    model = from_mapping(ModelSettings, data.pop("model", None), f"{where}: model")
    train_section = data.pop("train", None)
    if isinstance(train_section, dict | None):
        train_section = {**(train_section or {}), **train_overrides}
    train = from_mapping(TrainSettings, train_section, f"{where}: train")
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key, choices in (
        ("preprocess", PREPROCESS_METHODS),
        ("representation", REPRESENTATIONS),
        ("frame", FRAMES),
    ):
        value = data.get(key, getattr(FitJob, key))
        if value not in choices:
            raise ConfigError(f"{where}: {key} must be one of {list(choices)}, found {value!r}")
    plain = from_mapping(FitJob, data, where)
    return dataclasses.replace(plain, model=model, train=train, buffer=buffer, refine=refine)


def data_source(path: str | Path, table: EventTable) -> dict[str, Any]:
    """Provenance of the training events ``table`` read from ``path``: the path, its sha256, the count."""
    from eventgen.bundle import file_sha256

    return {"path": str(path), "sha256": file_sha256(path), "n_events": len(table)}


def fit_and_save(
    job: FitJob,
    table: EventTable,
    output: Path,
    *,
    checkpoint_dir: Path,
    data_source: dict[str, Any],
    progress: bool = False,
    overwrite: bool = False,
) -> Bundle:
    """Fit ``job`` on ``table`` and save the bundle at ``output``.

    Training checkpoints go to ``checkpoint_dir``, so that an interrupted fit of the same run
    resumes; the directory is removed once the bundle is saved, and when the fit fails before
    it holds a checkpoint.
    """
    from eventgen.fitting import fit

    checkpoint_dir.mkdir(exist_ok=True)
    try:
        bundle = fit(
            table,
            **job.fit_arguments(),
            refine=job.refine,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            data_source=data_source,
        )
        bundle.save(output, overwrite=overwrite)
    except BaseException:
        if not any(checkpoint_dir.iterdir()):
            checkpoint_dir.rmdir()
        raise
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return bundle
