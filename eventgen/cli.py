"""The ``eventgen`` command line: one subcommand per pipeline stage.

Each subcommand reads its YAML config (where it has one), applies the command-line
overrides and calls the same public function a Python user would. Any
:class:`~eventgen.errors.EventgenError` is printed as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from eventgen import __version__
from eventgen.errors import ConfigError, EventgenError, InputError, OutputError
from eventgen.formats import FORMATS, describe_formats, describe_suffixes, format_names
from eventgen.representation import FRAMES, REPRESENTATIONS
from eventgen.sampling import MODES, SELECTIONS
from eventgen.schema import BUILTIN_SCHEMAS

if TYPE_CHECKING:
    from eventgen.bundle import Bundle
    from eventgen.distributed import DaskExecutor
    from eventgen.io import EventTable
    from eventgen.jobs import FitJob

log = logging.getLogger("eventgen")
_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], None]], Callable[[argparse.Namespace], None]]:
    def register(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
        _COMMANDS[name] = func
        return func

    return register


BUNDLE_HELP = "bundle directory written by 'eventgen fit'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventgen",
        description="Learn simulated collision events with a beta-VAE and generate millions more.",
    )
    parser.add_argument("--version", action="version", version=f"eventgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inputs, outputs = describe_suffixes(), describe_suffixes(writable=True)  # ".parquet, .h5 or .csv"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    def subcommand(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=description)

    p = subcommand(
        "simulate",
        "simulate events with Pythia 8 and FastJet",
        f"Simulate events with Pythia 8 + FastJet into a {describe_formats(writable=True)} file.",
    )
    p.add_argument(
        "process", help="a process (ttbar, zll, wjets) or a YAML config such as configs/simulate-ttbar.yaml"
    )
    p.add_argument("-n", "--events", type=int, help="number of events (default: the config's n_events)")
    p.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    _output(p, f"output file, {outputs} (default: the config's output)", required=False)
    p.add_argument("--workers", type=int, help="processes (or, with --dask, Dask workers) to run shards on")
    p.add_argument(
        "--dask", action="store_true", help="run the shards on a local Dask cluster of --workers processes"
    )
    _scheduler(p)
    _overwrite(p, "an existing output file")

    p = subcommand(
        "fit",
        "train the beta-VAE and build the density buffer into a bundle",
        "Fit a bundle (preprocessing, beta-VAE, density buffer) on an event file.",
    )
    _fit_config(p)
    p.add_argument("--data", help=f"training events ({inputs})")
    _schema(p, "the data")
    _output(p, "bundle directory to write", required=False)
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument(
        "--representation",
        choices=REPRESENTATIONS,
        help="what the model sees of each object: its mass (default) or its energy",
    )
    p.add_argument("--frame", choices=FRAMES, help="canonical (default: symmetries divided out) or lab")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, help="training batch size")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    _overwrite(p, "an existing bundle")

    p = subcommand(
        "generate",
        f"generate events from a bundle into {describe_formats(writable=True)}",
        "Sample the density buffer, decode and stream events to a file or a dataset of shards.",
    )
    p.add_argument("bundle", help=BUNDLE_HELP)
    p.add_argument("-n", "--events", type=int, required=True, help="number of events")
    _output(p, f"a {outputs} file, or a directory for shards")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--mode", choices=MODES, help="sampling mode (default: the bundle's)")
    p.add_argument("--alpha", type=float, help="z = mu + (alpha * sigma + gamma) * eps")
    p.add_argument("--gamma", type=float, help="see --alpha")
    p.add_argument("--selection", choices=SELECTIONS, help="how buffer events are picked")
    p.add_argument(
        "--temperature", type=float, help="mode flow: base noise scaled by T in (0, 1] (default 1)"
    )
    p.add_argument(
        "--no-refine",
        dest="refine",
        action="store_const",
        const=False,
        help="keep every decoded event: skip the bundle's refiner (faster, less faithful)",
    )
    p.add_argument(
        "--refine-quantile",
        type=float,
        help="the refiner's acceptance cap as a quantile of its log-odds, in (0, 1): higher is more "
        "faithful and slower (default: the bundle's, set at fit)",
    )
    p.add_argument("--batch-size", type=int, default=65_536, help="events per write batch (default 65536)")
    p.add_argument("--shard-size", type=int, help="events per shard file; the output becomes a directory")
    p.add_argument(
        "--format",
        choices=format_names(writable=True),
        help="default: from the output's suffix, else parquet",
    )
    p.add_argument(
        "--compression",
        help="; ".join(f"{n}: {', '.join(FORMATS[n].compressions)}" for n in format_names(writable=True))
        + " (default: zstd, where the format has it, else none)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="threads for decoding and sampling (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sharded run")
    p.add_argument(
        "--weight-column",
        metavar="NAME",
        help="also write each event's normalised weight in pb (sigma/N; sigma*w/sum(w) with sampling weights)",
    )
    p.add_argument("--workers", type=int, help="run the shards on a local Dask cluster of N worker processes")
    _scheduler(p)
    _overwrite(p, "an existing output")

    p = subcommand(
        "evaluate",
        "compare generated events with held-out originals, next to truth vs truth",
        "Metrics, plots and a report of generated events against held-out simulated events.",
    )
    p.add_argument("--generated", required=True, help="generated events: a file or a dataset directory")
    p.add_argument("--reference", required=True, help="held-out events of the original simulation")
    p.add_argument("--train", help="the events the bundle was fitted on (for the memorisation check)")
    p.add_argument("--bundle", help="the bundle that generated the events (adds the decoder ceiling)")
    _output(p, "report directory (report.html, report.md, metrics.json, plots)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsampling and the metrics")
    p.add_argument(
        "--max-events",
        type=int,
        default=40_000,
        help="events per sample, subsampled with the seed (default 40000; the reference gives 2x that)",
    )
    p.add_argument(
        "--weight-column", default="weight", help="per-event weights of either sample (default: weight)"
    )
    _overwrite(p, "an existing report directory")

    p = subcommand(
        "run",
        "the main job: simulate, fit, generate, evaluate from one config",
        "Run simulate -> fit -> generate -> evaluate (with baselines); finished stages are skipped.",
    )
    p.add_argument("config", help="main-job config, e.g. configs/default.yaml")
    p.add_argument("--workdir", help="work directory (default: the config's workdir)")
    p.add_argument("--workers", type=int, help="processes for the simulation (default: all cores)")

    for name, what in (
        ("score", "per-event anomaly scores (reconstruction error, negative ELBO)"),
        ("encode", "compress events to their latent mean (and sigma)"),
        ("denoise", "reconstruct events through the VAE (noise reduction)"),
    ):
        p = subcommand(name, what, what[0].upper() + what[1:] + ".")
        p.add_argument("bundle", help=BUNDLE_HELP)
        p.add_argument("input", help=f"events ({inputs}); other schemas are mapped by column name")
        _schema(p, "the input")
        _output(p, f"output file ({outputs})")
        _overwrite(p, "an existing output")
        if name == "encode":
            p.add_argument("--with-sigma", action="store_true", help="also write the latent sigma")

    p = subcommand("decode", "turn latent points back into events", "Decode a latent file.")
    p.add_argument("bundle", help="the bundle that encoded the latent file")
    p.add_argument("latent", help="latent file written by 'eventgen encode'")
    _output(p, f"output events ({outputs})")
    _overwrite(p, "an existing output")

    p = subcommand(
        "explore",
        "latent-space PCA plots and traversals",
        "PCA of the buffer's latent means, coloured by observables, and traversals decoded to events.",
    )
    p.add_argument("bundle", help=BUNDLE_HELP)
    _output(p, "directory for the plots")
    p.add_argument("--train", help="the bundle's training file, to colour by the true observables")
    _overwrite(p, "existing plots")

    p = subcommand(
        "beta-scan",
        "fit one model per beta and tabulate latent statistics and quality",
        "The seed talk's beta table: one fit per beta, average latent variance and |mean|, losses, "
        "and generation quality against --reference.",
    )
    _fit_config(p)
    p.add_argument("--betas", type=float, nargs="+", required=True, help="values of beta in [0, 1]")
    p.add_argument("--data", help="training events (default: the config's data)")
    _schema(p, "the data")
    p.add_argument("--reference", help="held-out events for the quality columns")
    p.add_argument("--epochs", type=int, help="maximum epochs per fit")
    _output(p, "table to write: .md or .json")
    _overwrite(p, "an existing table")

    p = subcommand(
        "info", "show a bundle's schema, sizes, losses and provenance", "Show what a bundle holds."
    )
    p.add_argument("bundle", help=BUNDLE_HELP)
    p.add_argument("--json", action="store_true", help="print bundle.json as it is")

    return parser


def _output(p: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    p.add_argument("-o", "--output", required=required, help=help)


def _overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def _schema(p: argparse.ArgumentParser, of: str) -> None:
    names = ", ".join(BUILTIN_SCHEMAS)
    p.add_argument(
        "--schema",
        help=f"schema of {of}: {names} or a YAML file (default: the file's metadata, else the built-in "
        "schema of exactly its columns)",
    )


def _scheduler(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", help="run the shards on a running Dask cluster (scheduler address)")


def _fit_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="fit config, e.g. configs/deepevents.yaml")


@command("simulate")
def _simulate(args: argparse.Namespace) -> None:
    from eventgen.io import EventWriter, check_output
    from eventgen.jobs import load_simulate_job
    from eventgen.simulation import schema_for, simulate

    job = load_simulate_job(args.process, n_events=args.events, seed=args.seed, output=args.output)
    check_output(job.output, args.overwrite)
    dask = args.dask or args.scheduler is not None
    with _dask_executor(args) if dask else contextlib.nullcontext() as executor:
        data, provenance = simulate(
            job.settings,
            job.n_events,
            job.seed,
            workers=None if dask else args.workers,
            executor=executor,
            progress=args.progress,
        )
    with EventWriter(job.output, schema_for(job.settings.process), provenance, overwrite=args.overwrite) as w:
        w.write(data)
    log.info("wrote %d %s events to %s", data.shape[0], job.settings.process, job.output)


def _check_bundle_output(output: Path, overwrite: bool) -> None:
    """Refuse, before any work, a bundle output that exists (unless ``overwrite`` and it is a bundle) or
    whose folder is missing or not writable (the training checkpoints are written beside it)."""
    from eventgen.bundle import read_bundle_metadata
    from eventgen.io import check_writable, refuse_existing

    refuse_existing(output, overwrite, "bundle")
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):  # an empty folder may go
        try:
            read_bundle_metadata(output)
        except EventgenError:
            kind = "folder" if output.is_dir() else "file"
            raise OutputError(
                f"{str(output)!r} is a {kind} but not an eventgen bundle, and --overwrite replaces only a "
                "bundle; choose another name"
            ) from None
    check_writable(output)
    inside = next((p for p in output.resolve().parents if (p / "bundle.json").is_file()), None)
    if inside is not None:
        _outside_bundle(str(output), str(inside))


def _outside_bundle(output: str, bundle: str) -> None:
    """Refuse an output inside the bundle folder ``bundle`` (which holds only what 'eventgen fit' wrote)."""
    out, folder = Path(output).resolve(), Path(bundle).resolve()
    if out == folder or folder in out.parents:
        raise OutputError(
            f"output {output!r} is inside the bundle {bundle!r}; write it elsewhere (a bundle folder "
            "holds only what 'eventgen fit' wrote)"
        )


def _training_events(job: FitJob) -> EventTable:
    """The events of a fit job's data file, in its schema (else the file's)."""
    from eventgen.io import read_events
    from eventgen.schema import get_schema

    return read_events(job.data, get_schema(job.schema) if job.schema else None)


def _dask_executor(args: argparse.Namespace) -> DaskExecutor:
    """A Dask executor of ``--workers`` local worker processes or of the cluster at ``--scheduler``."""
    from eventgen.distributed import DaskExecutor

    return DaskExecutor(workers=args.workers, scheduler=args.scheduler)


@command("fit")
def _fit(args: argparse.Namespace) -> None:
    from eventgen.jobs import data_source, fit_and_save, load_fit_job

    job = load_fit_job(
        args.config,
        data=args.data,
        schema=args.schema,
        output=args.output,
        seed=args.seed,
        representation=args.representation,
        frame=args.frame,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
    )
    output = Path(job.output)
    _check_bundle_output(output, args.overwrite)
    table = _training_events(job)
    from eventgen.train import TrainSettings, check_trainable

    check_trainable(table.data, table.schema, (job.train or TrainSettings()).min_events)  # before any output
    log.info("read %d events (%s schema) from %s", len(table), table.schema.name, job.data)
    source = data_source(job.data, table)
    run_key = hashlib.sha256(repr((job, source["sha256"])).encode()).hexdigest()[:12]
    bundle = fit_and_save(
        job,
        table,
        output,
        checkpoint_dir=output.with_name(f".{output.name}.checkpoint-{run_key}"),  # resumes only the same run
        data_source=source,
        progress=args.progress,
        overwrite=args.overwrite,
    )
    t = bundle.metadata["training"]
    log.info(
        "wrote bundle %s: best epoch %d of %d, validation loss %.4g, %.0f events/s",
        output,
        t["best_epoch"],
        len(t["history"]),
        t["best"].get("val_loss", float("nan")),
        t["events_per_second"],
    )


def _check_generate_output(args: argparse.Namespace) -> str | None:
    """Check ``generate``'s output, format and compression before any work; returns the compression."""
    from eventgen.formats import check_compression, output_format, writer_format
    from eventgen.io import check_writable, refuse_existing

    output = Path(args.output)
    _outside_bundle(args.output, args.bundle)
    if args.shard_size is not None or output.suffix == "":  # a dataset directory of shards
        fmt = writer_format(args.format or "parquet")
        check_writable(output, directory=True)
    else:
        fmt = output_format(output, args.format)
        if not args.resume:
            refuse_existing(output, args.overwrite)
        check_writable(output)
    if args.compression is None:
        return "zstd"  # what each format writes by default (none for HDF5)
    check_compression(fmt, args.compression)
    return None if args.compression == "none" else args.compression


def _check_weights(bundle: Bundle, args: argparse.Namespace) -> None:
    if args.selection == "weighted" and bundle.buffer.weights_ is None:
        raise ConfigError(
            f"bundle {args.bundle!r} has no event weights, so --selection weighted has nothing to draw by; "
            "fit it with a weight column (buffer: {weight_column: met} in the fit config)"
        )


@command("generate")
def _generate(args: argparse.Namespace) -> None:
    compression = _check_generate_output(args)
    from eventgen.bundle import Bundle
    from eventgen.generation import GenerateOptions, generate

    sampling = {"mode": args.mode, "alpha": args.alpha, "gamma": args.gamma, "selection": args.selection}
    sampling.update(temperature=args.temperature, refine=args.refine, refine_quantile=args.refine_quantile)
    options = GenerateOptions(
        seed=args.seed,
        sampling=sampling,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        fmt=args.format,
        compression=compression,
        device=args.device,
        threads=args.threads,
        resume=args.resume,
        overwrite=args.overwrite,
        weight_column=args.weight_column,
    )
    dask = args.workers is not None or args.scheduler is not None
    bundle = Bundle.load(args.bundle)
    _check_weights(bundle, args)
    with _dask_executor(args) if dask else contextlib.nullcontext() as executor:
        result = generate(
            bundle,
            args.events,
            args.output,
            options,
            executor=executor,
            progress=args.progress,
        )
    refined = bundle.refiner is not None and bundle.buffer.settings.resolve(sampling).refine
    log.info(
        "wrote %d events to %s (%d new in %.1f s, %.0f events/s%s)",
        result.n_events,
        result.output,
        result.n_generated,
        result.seconds,
        result.events_per_second,
        "; refined: each event is the first accepted of its candidates, --no-refine is the fast preset"
        if refined
        else "",
    )
    if result.regenerated:
        log.info("%d finished shards failed verification and were written again", result.regenerated)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> None:
    from eventgen.evaluation import MIN_EVENTS, check_same_columns, evaluate
    from eventgen.io import check_writable, sample_events
    from eventgen.report import collect_provenance, write_report

    out = Path(args.output)
    n = args.max_events
    if n < MIN_EVENTS:
        raise ConfigError(f"--max-events must be at least {MIN_EVENTS}, found {n}")
    if args.seed < 0:
        raise ConfigError(f"the seed must be a non-negative integer, found {args.seed}")
    check_writable(out, directory=True, parents=True)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputError(f"report directory {str(out)!r} is not empty; choose another or pass --overwrite")
    bundle = None
    if args.bundle:
        from eventgen.bundle import Bundle

        bundle = Bundle.load(args.bundle)
    weight = args.weight_column
    reference = sample_events(args.reference, 2 * n, args.seed)
    generated = sample_events(args.generated, n, args.seed + 1)
    check_same_columns(generated.schema, reference.schema, weight, "generated")
    for what, table, least in (
        ("reference", reference, 2 * MIN_EVENTS),
        ("generated", generated, MIN_EVENTS),
    ):
        if len(table) < least:
            raise InputError(
                f"the {what} sample {getattr(args, what)!r} has {len(table)} events; evaluation needs at least "
                f"{least} {what} events ({MIN_EVENTS} generated, twice as many held out), so give a larger one"
            )
    train = sample_events(args.train, 2 * n, args.seed + 2) if args.train else None
    log.info("read %d reference and %d generated events", len(reference), len(generated))
    result = evaluate(
        generated, reference, train, bundle=bundle, seed=args.seed, max_events=n, weight_column=weight
    )
    inputs = {"generated": args.generated, "reference": args.reference, "train": args.train}
    settings = {"seed": args.seed, "max_events": n}
    if args.bundle:
        settings["bundle"] = args.bundle
    provenance = collect_provenance(generated=generated, inputs=inputs, settings=settings, command=args.argv)
    report = write_report(result, out, generated=generated, reference=reference, provenance=provenance)
    g, t = result["generated"], result["truth"]
    ceiling = f", decoder ceiling {result['ceiling']['classifier_auc'][0]:.3f}" if "ceiling" in result else ""
    log.info(
        "classifier AUC %.3f (truth vs truth %.3f%s), mean W1/sigma %.4f (%.4f); report: %s",
        g["classifier_auc"][0],
        t["classifier_auc"][0],
        ceiling,
        g["mean_column_w1"],
        t["mean_column_w1"],
        report,
    )


@command("run")
def _run(args: argparse.Namespace) -> None:
    import dataclasses

    from eventgen.run import load_run_job, run

    job = load_run_job(args.config)
    if args.workdir:
        job = dataclasses.replace(job, workdir=args.workdir)
    report = run(job, progress=args.progress, workers=args.workers, command=args.argv)
    log.info("done; report: %s", report)
    if not args.quiet:
        print(report.read_text().split("## Per column")[0].strip())


def _check_output(args: argparse.Namespace) -> None:
    """Check ``args.output`` before any work: a new (or replaceable) file, in a writable folder, outside the bundle."""
    from eventgen.io import check_output

    _outside_bundle(args.output, args.bundle)
    check_output(args.output, args.overwrite)


def _input_events(args: argparse.Namespace) -> EventTable:
    """The events of ``args.input`` (in ``--schema`` when given), refused when there are none."""
    from eventgen.io import read_events
    from eventgen.schema import get_schema

    table = read_events(args.input, get_schema(args.schema) if args.schema else None)
    if len(table) == 0:
        raise InputError(f"input file {args.input!r} holds no events; give a file with at least one event")
    return table


def _events_for(bundle: Bundle, table: EventTable) -> np.ndarray:
    """The events of ``table`` in the bundle's schema (mapped by column name from another one)."""
    from eventgen.anomaly import to_schema

    if table.schema.names != bundle.schema.names:
        table = to_schema(table, bundle.schema)
    return table.data


def _bundle_and_events(args: argparse.Namespace) -> tuple[Bundle, np.ndarray]:
    """The output checked, the input read, then the bundle loaded and the events in its schema."""
    from eventgen.bundle import Bundle

    _check_output(args)
    table = _input_events(args)
    bundle = Bundle.load(args.bundle)
    return bundle, _events_for(bundle, table)


def _write_events(args: argparse.Namespace, bundle: Bundle, events: np.ndarray, **source: str) -> None:
    """Write ``events`` of the bundle's schema to ``args.output``, naming the bundle and ``source``."""
    from eventgen.io import write_events

    meta = {"bundle_hash": bundle.hash, **source}
    write_events(args.output, events, bundle.schema, meta, overwrite=args.overwrite)


@command("score")
def _score(args: argparse.Namespace) -> None:
    from eventgen.anomaly import anomaly_scores, write_scores

    bundle, events = _bundle_and_events(args)
    scores = anomaly_scores(bundle, events)
    meta = {"bundle_hash": bundle.hash, "input": args.input}
    write_scores(args.output, scores, metadata=meta, overwrite=args.overwrite)
    log.info("wrote %d scores to %s", len(scores["reconstruction"]), args.output)


@command("encode")
def _encode(args: argparse.Namespace) -> None:
    from eventgen.latent import encode, write_latent

    bundle, events = _bundle_and_events(args)
    mu, sigma = encode(bundle, events)
    write_latent(args.output, bundle, mu, sigma if args.with_sigma else None, overwrite=args.overwrite)
    log.info("encoded %d events to %d latent dimensions in %s", len(mu), mu.shape[1], args.output)


@command("decode")
def _decode(args: argparse.Namespace) -> None:
    from eventgen.bundle import Bundle
    from eventgen.io import count_events
    from eventgen.latent import decode, read_latent

    _check_output(args)
    if count_events(args.latent) == 0:
        raise InputError(f"latent file {args.latent!r} holds no events; encode at least one event")
    bundle = Bundle.load(args.bundle)
    mu, _ = read_latent(args.latent, bundle)
    _write_events(args, bundle, decode(bundle, mu), decoded_from=args.latent)
    log.info("decoded %d events to %s", len(mu), args.output)


@command("denoise")
def _denoise(args: argparse.Namespace) -> None:
    from eventgen.latent import denoise

    bundle, events = _bundle_and_events(args)
    events = denoise(bundle, events)
    _write_events(args, bundle, events, denoised_from=args.input)
    log.info("wrote %d reconstructed events to %s", len(events), args.output)


@command("explore")
def _explore(args: argparse.Namespace) -> None:
    from eventgen.bundle import Bundle
    from eventgen.io import check_writable, read_events
    from eventgen.latent import latent_pca, plot_latent

    _outside_bundle(args.output, args.bundle)
    check_writable(args.output, directory=True, parents=True)
    bundle = Bundle.load(args.bundle)
    events = read_events(args.train, bundle.schema).data if args.train else None
    paths = plot_latent(bundle, events, args.output, overwrite=args.overwrite)
    ratios = latent_pca(bundle, 2)[1]
    log.info("explained variance of the leading components: %s; plots: %s", np.round(ratios, 3), paths)


@command("beta-scan")
def _beta_scan(args: argparse.Namespace) -> None:
    import json

    from eventgen.io import check_writable, read_events, refuse_existing
    from eventgen.jobs import load_fit_job
    from eventgen.latent import beta_scan, check_betas, format_beta_table

    betas = check_betas(args.betas)
    out = Path(args.output)
    if out.suffix not in (".md", ".json"):
        raise OutputError(
            f"beta-scan writes .md or .json, not {out.suffix or 'no suffix'}; rename {str(out)!r}"
        )
    refuse_existing(out, args.overwrite)
    check_writable(out)
    job = load_fit_job(args.config, data=args.data, schema=args.schema, epochs=args.epochs)
    table = _training_events(job)
    reference = read_events(args.reference, table.schema) if args.reference else None
    rows = beta_scan(table, betas, **job.fit_arguments(), reference=reference)
    out.write_text(format_beta_table(rows) if out.suffix == ".md" else json.dumps(rows, indent=1))
    print(format_beta_table(rows))


@command("info")
def _info(args: argparse.Namespace) -> None:
    import json

    from eventgen.bundle import describe_bundle, read_bundle_metadata

    meta = read_bundle_metadata(args.bundle)
    print(json.dumps(meta, indent=1) if args.json else describe_bundle(Path(args.bundle), meta))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (it may be replaced meanwhile)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventgen`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.argv = ["eventgen", *(sys.argv[1:] if argv is None else argv)]  # the command line, for provenance
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("eventgen: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    args.progress = not args.quiet and sys.stderr.isatty()  # progress bars only on a terminal
    try:
        _COMMANDS[args.command](args)
    except EventgenError as exc:
        print(f"eventgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"eventgen {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
