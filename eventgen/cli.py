"""The ``eventgen`` command line: one subcommand per pipeline stage.

Each subcommand reads its YAML config (where it has one), applies the command-line
overrides and calls the same public function a Python user would. Any
:class:`~eventgen.errors.EventgenError` is printed as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eventgen import __version__
from eventgen.errors import EventgenError

log = logging.getLogger("eventgen")
_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], None]], Callable[[argparse.Namespace], None]]:
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
    p.add_argument("process", help="a process (ttbar, zll) or a YAML config such as configs/simulate-ttbar.yaml")
    p.add_argument("-n", "--events", type=int, help="number of events (default: the config's n_events)")
    p.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    p.add_argument("-o", "--output", help="output file, .parquet or .h5 (default: the config's output)")
    p.add_argument("--workers", type=int, help="processes to run shards on (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    return parser


@command("simulate")
def _simulate(args: argparse.Namespace) -> None:
    from eventgen.io import EventWriter, check_output
    from eventgen.jobs import load_simulate_job
    from eventgen.simulate import schema_for, simulate

    job = load_simulate_job(args.process, n_events=args.events, seed=args.seed, output=args.output)
    check_output(job.output, args.overwrite)
    data, provenance = simulate(job.settings, job.n_events, job.seed, workers=args.workers, progress=not args.quiet)
    with EventWriter(job.output, schema_for(job.settings.process), provenance, overwrite=args.overwrite) as w:
        w.write(data)
    log.info("wrote %d %s events to %s", data.shape[0], job.settings.process, job.output)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventgen`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="eventgen: %(message)s",
        stream=sys.stderr,
        force=True,
    )
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


def _path(text: str) -> Path:
    return Path(text).expanduser()


if __name__ == "__main__":
    sys.exit(main())
