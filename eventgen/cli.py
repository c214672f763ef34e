"""The ``eventgen`` command line: one subcommand per pipeline stage.

Each subcommand reads its YAML config (where it has one), applies the command-line
overrides and calls the same public function a Python user would. Any
:class:`~eventgen.errors.EventgenError` is printed as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eventgen import __version__
from eventgen.errors import EventgenError, OutputError

log = logging.getLogger("eventgen")
_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], None]], Callable[[argparse.Namespace], None]]:
    def register(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
        _COMMANDS[name] = func
        return func

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventgen",
        description="Learn simulated collision events with a beta-VAE and generate millions more.",
    )
    parser.add_argument("--version", action="version", version=f"eventgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    p = sub.add_parser(
        "simulate",
        parents=[common],
        help="simulate events with Pythia 8 and FastJet",
        description="Simulate events with Pythia 8 + FastJet into a Parquet or HDF5 file.",
    )
    p.add_argument(
        "process", help="a process (ttbar, zll) or a YAML config such as configs/simulate-ttbar.yaml"
    )
    p.add_argument("-n", "--events", type=int, help="number of events (default: the config's n_events)")
    p.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    p.add_argument("-o", "--output", help="output file, .parquet or .h5 (default: the config's output)")
    p.add_argument("--workers", type=int, help="processes (or, with --dask, Dask workers) to run shards on")
    p.add_argument(
        "--dask", action="store_true", help="run the shards on a local Dask cluster of --workers workers"
    )
    p.add_argument("--scheduler", help="run the shards on a running Dask cluster (scheduler address)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser(
        "fit",
        parents=[common],
        help="train the beta-VAE and build the density buffer into a bundle",
        description="Fit a bundle (preprocessing, beta-VAE, density buffer) on an event file.",
    )
    p.add_argument("config", help="fit config, e.g. configs/deepevents.yaml")
    p.add_argument("--data", help="training events (.parquet, .h5, .csv)")
    p.add_argument(
        "--schema", help="schema of the data: ttbar, zll, deepevents or a YAML file (default: from the file)"
    )
    p.add_argument("-o", "--output", help="bundle directory to write")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, help="training batch size")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")

    p = sub.add_parser(
        "generate",
        parents=[common],
        help="generate events from a bundle into Parquet/HDF5",
        description="Sample the density buffer, decode and stream events to a file or a dataset of shards.",
    )
    p.add_argument("bundle", help="bundle directory written by 'eventgen fit'")
    p.add_argument("-n", "--events", type=int, required=True, help="number of events")
    p.add_argument("-o", "--output", required=True, help="a .parquet/.h5 file, or a directory for shards")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--mode", choices=["buffer", "kde", "gmm", "prior"], help="sampling mode (default: the bundle's)"
    )
    p.add_argument("--alpha", type=float, help="z = mu + (alpha * sigma + gamma) * eps")
    p.add_argument("--gamma", type=float, help="see --alpha")
    p.add_argument(
        "--selection", choices=["uniform", "stratified", "weighted"], help="how buffer events are picked"
    )
    p.add_argument("--batch-size", type=int, default=65_536, help="events per write batch (default 65536)")
    p.add_argument("--shard-size", type=int, help="events per shard file; the output becomes a directory")
    p.add_argument(
        "--format", choices=["parquet", "hdf5"], help="default: from the output's suffix, else parquet"
    )
    p.add_argument(
        "--compression", default="zstd", help="parquet: zstd (default), snappy, none; hdf5: none or gzip"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="threads for decoding and sampling (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sharded run")
    p.add_argument("--workers", type=int, help="run the shards on a local Dask cluster of N worker processes")
    p.add_argument("--scheduler", help="run the shards on a running Dask cluster (scheduler address)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="compare generated events with held-out originals, next to truth vs truth",
        description="Metrics, plots and a report of generated events against held-out simulated events.",
    )
    p.add_argument("--generated", required=True, help="generated events: a file or a dataset directory")
    p.add_argument("--reference", required=True, help="held-out events of the original simulation")
    p.add_argument("--train", help="the events the bundle was fitted on (for the memorisation check)")
    p.add_argument("-o", "--output", required=True, help="report directory (metrics.json, report.md, plots)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsampling and the metrics")
    p.add_argument(
        "--max-events", type=int, default=50_000, help="events per sample (subsampled with the seed)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report directory")

    p = sub.add_parser(
        "run",
        parents=[common],
        help="the main job: simulate, fit, generate, evaluate from one config",
        description="Run simulate -> fit -> generate -> evaluate (with baselines); finished stages are skipped.",
    )
    p.add_argument("config", help="main-job config, e.g. configs/default.yaml")
    p.add_argument("--workdir", help="work directory (default: the config's workdir)")
    p.add_argument("--workers", type=int, help="processes for the simulation (default: all cores)")

    p = sub.add_parser(
        "info",
        parents=[common],
        help="show a bundle's schema, sizes, losses and provenance",
        description="Show what a bundle holds.",
    )
    p.add_argument("bundle", help="bundle directory written by 'eventgen fit'")
    p.add_argument("--json", action="store_true", help="print bundle.json as it is")

    return parser


@command("simulate")
def _simulate(args: argparse.Namespace) -> None:
    from eventgen.io import EventWriter, check_output
    from eventgen.jobs import load_simulate_job
    from eventgen.simulate import schema_for, simulate

    job = load_simulate_job(args.process, n_events=args.events, seed=args.seed, output=args.output)
    check_output(job.output, args.overwrite)
    data, provenance = simulate(
        job.settings, job.n_events, job.seed, workers=args.workers, progress=not args.quiet
    )
    with EventWriter(job.output, schema_for(job.settings.process), provenance, overwrite=args.overwrite) as w:
        w.write(data)
    log.info("wrote %d %s events to %s", data.shape[0], job.settings.process, job.output)


@command("fit")
def _fit(args: argparse.Namespace) -> None:
    from eventgen.bundle import file_sha256
    from eventgen.fit import fit
    from eventgen.io import read_events
    from eventgen.jobs import load_fit_job
    from eventgen.schema import get_schema

    job = load_fit_job(
        args.config,
        data=args.data,
        schema=args.schema,
        output=args.output,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
    )
    output = Path(job.output)
    if output.exists() and not args.overwrite:
        raise OutputError(f"bundle {str(output)!r} exists already; choose another name or pass --overwrite")
    table = read_events(job.data, get_schema(job.schema) if job.schema else None)
    log.info("read %d events (%s schema) from %s", len(table), table.schema.name, job.data)
    source = {"path": str(job.data), "sha256": file_sha256(job.data), "n_events": len(table)}
    run_key = hashlib.sha256(repr((job, source["sha256"])).encode()).hexdigest()[:12]
    checkpoints = output.with_name(f".{output.name}.checkpoint-{run_key}")  # resumes only the same run
    checkpoints.mkdir(exist_ok=True)
    bundle = fit(
        table,
        preprocess=job.preprocess,
        model_settings=job.model,
        train_settings=job.train,
        buffer_settings=job.buffer,
        seed=job.seed,
        checkpoint_dir=checkpoints,
        progress=not args.quiet,
        data_source=source,
    )
    bundle.save(output, overwrite=args.overwrite)
    shutil.rmtree(checkpoints, ignore_errors=True)
    t = bundle.metadata["training"]
    log.info(
        "wrote bundle %s: best epoch %d of %d, validation loss %.4g, %.0f events/s",
        output,
        t["best_epoch"],
        len(t["history"]),
        t["best"].get("val_loss", float("nan")),
        t["events_per_second"],
    )


@command("generate")
def _generate(args: argparse.Namespace) -> None:
    from eventgen.generate import Sampling, generate

    sampling = Sampling(mode=args.mode, alpha=args.alpha, gamma=args.gamma, selection=args.selection)
    common = dict(
        seed=args.seed,
        sampling=sampling,
        batch_size=args.batch_size,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        compression=None if args.compression in ("none", "") else args.compression,
    )
    if args.workers or args.scheduler:
        from eventgen.distributed import generate_distributed

        if Path(args.output).suffix:
            raise OutputError(
                "--workers/--scheduler write a dataset of shards; give -o a name without a suffix"
            )
        result = generate_distributed(
            args.bundle,
            args.events,
            args.output,
            shard_size=args.shard_size or 1_000_000,
            fmt=args.format or "parquet",
            workers=args.workers,
            scheduler=args.scheduler,
            **common,
        )
    else:
        from eventgen.bundle import Bundle

        result = generate(
            Bundle.load(args.bundle),
            args.events,
            args.output,
            shard_size=args.shard_size,
            fmt=args.format,
            threads=args.threads,
            **common,
        )
    log.info(
        "wrote %d events to %s (%d new in %.1f s, %.0f events/s)",
        result.n_events,
        result.output,
        result.n_generated,
        result.seconds,
        result.events_per_second,
    )


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> None:
    from eventgen.evaluate import evaluate, write_report
    from eventgen.io import sample_events

    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputError(f"report directory {str(out)!r} is not empty; choose another or pass --overwrite")
    n = args.max_events
    reference = sample_events(args.reference, 2 * n, args.seed)
    generated = sample_events(args.generated, n, args.seed + 1, reference.schema)
    train = sample_events(args.train, n, args.seed + 2, reference.schema) if args.train else None
    result = evaluate(generated, reference, train, seed=args.seed, max_events=n)
    report = write_report(result, out, generated=generated, reference=reference)
    g, t = result["generated"], result["truth"]
    log.info(
        "classifier AUC %.3f (truth vs truth %.3f), mean W1/sigma %.4f (%.4f); report: %s",
        g["classifier_auc"][0],
        t["classifier_auc"][0],
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
    report = run(job, progress=not args.quiet, workers=args.workers)
    log.info("done; report: %s", report)
    if not args.quiet:
        print(report.read_text().split("## Per column")[0].strip())


@command("info")
def _info(args: argparse.Namespace) -> None:
    import json

    from eventgen.bundle import describe_bundle, read_bundle_metadata

    meta = read_bundle_metadata(args.bundle)
    print(json.dumps(meta, indent=1) if args.json else describe_bundle(Path(args.bundle), meta))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventgen`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("eventgen: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    if not sys.stderr.isatty():
        args.quiet = True  # progress bars only on a terminal
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
