"""The main job: simulate -> fit -> generate -> evaluate (with baselines) from one YAML file.

Every stage writes into the run's work directory and records a stamp (a hash of the
settings that made its output and of the stamps it depends on). A stage whose output
exists with a matching stamp is skipped, so re-running a finished job is instant, an
interrupted one continues where it stopped, and changing one setting redoes just the
stages downstream of it.

Work directory::

    train.parquet, test.parquet     simulated events (fit sample, held-out sample)
    bundle/                         the fitted generator
    generated.parquet               eventgen's events
    baselines/NAME.parquet          the baselines' events
    report/                         report.html, report.md, metrics.json, plots/
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from eventgen.baselines import BaselineName
from eventgen.config import from_mapping, load_yaml
from eventgen.errors import ConfigError
from eventgen.evaluation import MIN_EVENTS
from eventgen.sampling import BUNDLE_MODES, SamplingSettings
from eventgen.sampling import FIELDS as SAMPLING_FIELDS

if TYPE_CHECKING:
    from eventgen.fitting import BufferSettings
    from eventgen.jobs import FitJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateStage:
    n_train: int = 20_000
    n_test: int = 20_000
    settings: dict[str, Any] = field(default_factory=lambda: {"process": "ttbar"})


@dataclass(frozen=True)
class GenerateStage:
    """How many events with which seed; ``sampling`` is the fit's, with the section's overrides."""

    n_events: int = 1_000_000
    seed: int = 0
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    weight_column: str | None = None  # write each event's normalised weight (pb) as this column

    def __post_init__(self) -> None:
        if self.n_events < 1:
            raise ConfigError(f"generate.n_events must be at least 1, found {self.n_events}")
        if self.seed < 0:
            raise ConfigError(f"generate.seed must be a non-negative integer, found {self.seed}")


Baseline = Literal[BaselineName, "prior"]  # "prior" is eventgen itself with mode prior (the plain VAE)


@dataclass(frozen=True)
class EvaluateStage:
    max_events: int = 40_000  # per sample: the classifier trains on half, given 2x that held-out events
    seed: int = 0
    baselines: tuple[Baseline, ...] = get_args(Baseline)
    gmm_components: int = 100
    flow_epochs: int = 100

    def __post_init__(self) -> None:
        if self.max_events < MIN_EVENTS:
            raise ConfigError(
                f"evaluate.max_events must be at least {MIN_EVENTS} ({2 * MIN_EVENTS} held-out events), "
                f"found {self.max_events}"
            )
        if self.seed < 0:
            raise ConfigError(f"evaluate.seed must be a non-negative integer, found {self.seed}")
        if self.gmm_components < 1:
            raise ConfigError(f"evaluate.gmm_components must be at least 1, found {self.gmm_components}")
        if self.flow_epochs < 1:
            raise ConfigError(f"evaluate.flow_epochs must be at least 1, found {self.flow_epochs}")


@dataclass(frozen=True)
class RunJob:
    workdir: str
    seed: int
    simulate: SimulateStage
    fit: FitJob
    fit_config: dict[str, Any]
    generate: GenerateStage
    evaluate: EvaluateStage


def load_run_job(path: str) -> RunJob:
    """Read a main-job YAML: ``workdir``, ``seed`` and the sections simulate, fit, generate, evaluate.

    Every section is validated here, before any stage runs; the fast checks come first.
    """
    from eventgen.fitting import BufferSettings
    from eventgen.jobs import fit_job_from_mapping
    from eventgen.simulation import PROCESSES, SimulationSettings

    data = load_yaml(path)
    where = Path(path).name
    allowed = {"workdir", "seed", "simulate", "fit", "generate", "evaluate"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {where}: {unknown[0]}; valid keys are {sorted(allowed)}")
    sim = _section(data, "simulate", where)
    counts: dict[str, Any] = {k: sim.pop(k) for k in ("n_train", "n_test") if k in sim}
    process = sim.get("process", "ttbar")
    if process not in PROCESSES:
        raise ConfigError(f"{where}: simulate.process must be one of {list(PROCESSES)}, found {process!r}")
    defaults = dataclasses.asdict(SimulationSettings.for_process(process))
    from_mapping(SimulationSettings, {**defaults, **sim}, f"{where}: simulate")  # validates the keys
    simulate = from_mapping(SimulateStage, {**counts, "settings": sim}, f"{where}: simulate")
    if simulate.n_train < 100 or simulate.n_test < 2 * MIN_EVENTS:
        raise ConfigError(f"{where}: simulate needs n_train >= 100 and n_test >= {2 * MIN_EVENTS}")
    seed = data.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, found {seed!r}")
    fit_config = _section(data, "fit", where)
    buffer = BufferSettings.from_mapping(fit_config.get("buffer"), f"{where}: fit: buffer")
    generate = _generate_stage(_section(data, "generate", where), buffer, f"{where}: generate")
    evaluate = from_mapping(EvaluateStage, data.get("evaluate"), f"{where}: evaluate")
    fit = fit_job_from_mapping(fit_config, f"{where}: fit")  # last: its model settings import torch
    if generate.sampling.refine:
        try:
            fit.refine.check_selection(
                generate.sampling.selection, "add refine: false to the generate section"
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: generate: {exc}") from None
    if generate.sampling.refine_quantile is not None and not fit.refine.enabled:
        raise ConfigError(f"{where}: generate: refine_quantile needs a refiner; drop it or fit with one")
    return RunJob(
        workdir=str(data.get("workdir", "runs/default")),
        seed=seed,
        simulate=simulate,
        fit=fit,
        fit_config=fit_config,
        generate=generate,
        evaluate=evaluate,
    )


def _generate_stage(section: dict[str, Any], buffer: BufferSettings, where: str) -> GenerateStage:
    """The generate section: ``n_events``, ``seed`` and overrides of the fit's sampling settings."""
    own = [f.name for f in dataclasses.fields(GenerateStage) if f.name != "sampling"]
    unknown = sorted(set(section) - set(own) - set(SAMPLING_FIELDS), key=str)
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; valid keys are {[*own, *SAMPLING_FIELDS]}")
    sampling = buffer.sampling.updated({k: v for k, v in section.items() if k not in own}, where=where)
    if sampling.selection == "weighted" and buffer.weight_column is None:
        raise ConfigError(f"{where}: selection 'weighted' needs fit.buffer.weight_column, e.g. met")
    if sampling.mode in BUNDLE_MODES and not sampling.same_fit(buffer.sampling):
        raise ConfigError(
            f"{where}: mode {sampling.mode!r} is trained when the bundle is fitted; set it (and its settings) "
            f"in fit.buffer instead, e.g. fit: {{buffer: {{mode: {sampling.mode}}}}}"
        )
    stage = from_mapping(GenerateStage, {k: v for k, v in section.items() if k in own}, where)
    return dataclasses.replace(stage, sampling=sampling)


def _section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping of keys to values, found {value!r}")
    return dict(value)


def run(
    job: RunJob, *, progress: bool = False, workers: int | None = None, command: list[str] | None = None
) -> Path:
    """Run every stage that is not up to date; returns the path of the report.

    ``command`` (the command line, as words) is recorded in the report's provenance.
    """
    from eventgen.io import check_writable

    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1 (or None for all cores), found {workers}")
    work = check_writable(job.workdir, directory=True, parents=True)
    work.mkdir(parents=True, exist_ok=True)
    stamps = _Stamps(work)
    sim_key = stamps.key("simulate", job.seed, dataclasses.asdict(job.simulate))
    if not stamps.fresh("simulate", sim_key, work / "train.parquet", work / "test.parquet"):
        _simulate(job, work, progress, workers)
        stamps.record("simulate", sim_key)
    representation = {"representation": job.fit.representation, "frame": job.fit.frame}
    fit_key = stamps.key("fit", job.seed, {**job.fit_config, **representation}, sim_key)
    if not stamps.fresh("fit", fit_key, work / "bundle"):
        _fit(job, work, progress, fit_key)
        stamps.record("fit", fit_key)
    gen_key = stamps.key("generate", dataclasses.asdict(job.generate), fit_key)
    if not stamps.fresh("generate", gen_key, work / "generated.parquet"):
        _generate(job, work, progress)
        stamps.record("generate", gen_key)
    eval_key = stamps.key("evaluate", dataclasses.asdict(job.evaluate), gen_key)
    if not stamps.fresh("evaluate", eval_key, work / "report" / "report.md"):
        _evaluate(job, work, command)
        stamps.record("evaluate", eval_key)
    return work / "report" / "report.md"


def _simulate(job: RunJob, work: Path, progress: bool, workers: int | None) -> None:
    from eventgen.io import write_events
    from eventgen.jobs import load_simulate_job
    from eventgen.simulation import schema_for, simulate

    sim = job.simulate
    settings = load_simulate_job(sim.settings.get("process", "ttbar")).settings
    settings = dataclasses.replace(settings, **{k: v for k, v in sim.settings.items() if k != "process"})
    n = sim.n_train + sim.n_test
    log.info("simulating %d %s events (%d to fit, %d held out)", n, settings.process, sim.n_train, sim.n_test)
    data, provenance = simulate(settings, n, job.seed, workers=workers, progress=progress)
    schema = schema_for(settings.process)
    write_events(work / "train.parquet", data[: sim.n_train], schema, provenance, overwrite=True)
    write_events(work / "test.parquet", data[sim.n_train :], schema, provenance, overwrite=True)


def _fit(job: RunJob, work: Path, progress: bool, key: str) -> None:
    from eventgen.io import read_events
    from eventgen.jobs import data_source, fit_and_save

    table = read_events(work / "train.parquet")
    fit_and_save(
        dataclasses.replace(job.fit, seed=job.seed),
        table,
        work / "bundle",
        checkpoint_dir=work
        / f".fit-checkpoint-{key}",  # an interrupted fit resumes only with the same settings
        data_source=data_source(work / "train.parquet", table),
        progress=progress,
        overwrite=True,
    )


def _generate(job: RunJob, work: Path, progress: bool) -> None:
    from eventgen.bundle import Bundle
    from eventgen.generation import generate

    g = job.generate
    result = generate(
        Bundle.load(work / "bundle"),
        g.n_events,
        work / "generated.parquet",
        seed=g.seed,
        sampling=g.sampling,
        weight_column=g.weight_column,
        overwrite=True,
        progress=progress,
    )
    log.info("generated %d events at %.0f events/s", result.n_events, result.events_per_second)


def _evaluate(job: RunJob, work: Path, command: list[str] | None) -> None:
    from eventgen.baselines import baseline_events
    from eventgen.bundle import Bundle
    from eventgen.evaluation import evaluate
    from eventgen.generation import generate
    from eventgen.io import read_events, sample_events, write_events
    from eventgen.report import collect_provenance, write_report

    e = job.evaluate
    bundle = Bundle.load(work / "bundle")
    reference = sample_events(work / "test.parquet", 2 * e.max_events, e.seed)
    train = read_events(work / "train.parquet")
    generated = sample_events(work / "generated.parquet", e.max_events, e.seed + 1)
    n = min(e.max_events, len(reference) // 2)
    result = evaluate(generated, reference, train, bundle=bundle, seed=e.seed, max_events=n)
    (work / "baselines").mkdir(exist_ok=True)
    extra = []
    for name in e.baselines:
        path = work / "baselines" / f"{name}.parquet"
        log.info("baseline %s", name)
        if name == "prior":
            generate(
                bundle, n, path, seed=e.seed, sampling={"mode": "prior", "refine": False}, overwrite=True
            )
        else:
            events = baseline_events(
                name, train.data, bundle, n, e.seed, n_components=e.gmm_components, flow_epochs=e.flow_epochs
            )
            write_events(path, events, bundle.schema, {"baseline": name}, overwrite=True)
        table = read_events(path, bundle.schema)
        label = {
            "prior": "plain VAE (prior)",
            "smear": "±5% smearing",
            "kde": "Gaussian KDE",
            "flow": "spline flow",
        }.get(name, f"GMM ({e.gmm_components} comp.)")
        extra.append((label, evaluate(table, reference, train, seed=e.seed, max_events=n, truth_from=result)))
    write_report(
        result,
        work / "report",
        generated=generated,
        reference=reference,
        title=f"eventgen evaluation: {bundle.schema.name}",
        extra_rows=extra,
        provenance=collect_provenance(
            generated=generated,
            inputs={
                "generated": work / "generated.parquet",
                "reference": work / "test.parquet",
                "train": work / "train.parquet",
            },
            settings={**dataclasses.asdict(e), "max_events": n},
            command=command,
        ),
    )
    summary = {"eventgen": result, **{label: r for label, r in extra}}
    (work / "report" / "all_metrics.json").write_text(json.dumps(summary, indent=1, allow_nan=False))


class _Stamps:
    """Per-stage hashes of the settings that produced each output, in ``WORKDIR/.stamps.json``."""

    def __init__(self, work: Path) -> None:
        self.path = work / ".stamps.json"
        self.data: dict[str, str] = json.loads(self.path.read_text()) if self.path.exists() else {}

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fresh(self, stage: str, key: str, *outputs: Path) -> bool:
        ok = self.data.get(stage) == key and all(p.exists() for p in outputs)
        if ok:
            log.info("%s: up to date, skipped", stage)
        return ok

    def record(self, stage: str, key: str) -> None:
        self.data[stage] = key
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)
