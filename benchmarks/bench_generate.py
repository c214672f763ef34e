"""Generation benchmark: end-to-end events/s and peak memory, next to each stage's ceiling.

In one run, on one bundle:

- each stage alone: sampling the buffer, decoding (the fused decoder with the inverse
  preprocessing, on the same worker threads as a real run), the physics clean-up, and
  writing a ready array to zstd Parquet, to HDF5 and to a zstd ROOT TTree (through uproot,
  at three basket sizes: events per ``extend``, one basket per branch each);
- the prior art's sampling, a Python loop calling ``np.random.normal`` per event;
- end to end, ``eventgen generate`` in a fresh process to one Parquet file, one HDF5 file
  and one ROOT file, with the process's peak resident memory;
- for a bundle with a refiner (:mod:`eventgen.refine`): the refiner's classifier alone as a stage,
  and end to end to zstd Parquet with ``--no-refine`` beside the refined run, and their ratio;
  with ``--refine-quantiles Q...``, also at each of those acceptance caps;
- the ``flow`` sampling mode beside the ``buffer`` mode: its sampling stage and end to end to
  zstd Parquet, on a copy of the bundle whose buffer gets a flow of the default architecture
  (its speed does not depend on how long it trained, so it trains ``--flow-epochs`` only).

    eventgen simulate ttbar -n 20000 --seed 1 -o train.parquet
    eventgen fit configs/deepevents.yaml --data train.parquet -o bundle
    python benchmarks/bench_generate.py --bundle bundle --events 10000000

``--compare OTHER`` also runs ``eventgen generate`` of another bundle end to end to zstd
Parquet, alternating with this one's (refined and, for a bundle with a refiner, ``--no-refine``),
and reports the ratios of their best rates: e.g. the default model against the one it replaced,
or the default representation against ``--representation energy --frame lab``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from eventgen.bundle import Bundle
from eventgen.generation import EventSource, available_cores, configure_threads
from eventgen.io import EventWriter
from eventgen.representation import symmetry_draws

ROOT = Path(__file__).resolve().parents[1]
ROW_GROUP = 131_072  # EventWriter's default: Parquet row group, ROOT basket (events per branch)
ROOT_BASKETS = (32_768, ROW_GROUP, 524_288)


def rate(n: int, func) -> float:
    """Events per second of ``func()`` handling ``n`` events, best of two runs."""
    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        func()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def end_to_end(bundle: str, n: int, output: Path, extra: list[str]) -> dict[str, float]:
    """Run ``eventgen generate`` in a fresh process; its wall time and peak RSS (VmHWM: ru_maxrss
    would include the RSS this process had when it forked the child)."""
    code = (
        "import json, re, sys, time\n"
        "from eventgen.cli import main\n"
        "t0 = time.perf_counter(); rc = main(sys.argv[1:]); dt = time.perf_counter() - t0\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(json.dumps({'rc': rc, 'seconds': dt, 'peak_rss_mib': hwm / 1024}))\n"
    )
    args = [sys.executable, "-c", code, "generate", bundle, "-n", str(n), "-o", str(output), "-q", *extra]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["events_per_second"] = n / result["seconds"]
    result["file_mib"] = output.stat().st_size / 2**20
    output.unlink()
    return result


def with_flow(bundle: Bundle, path: Path, epochs: int) -> Bundle:
    """A saved copy of ``bundle`` sampling with mode ``flow`` (the default architecture, ``epochs`` epochs)."""
    from eventgen.buffer import DensityBuffer

    settings = bundle.buffer.settings.updated({"mode": "flow", "flow_epochs": epochs})
    buffer = DensityBuffer(settings, seed=1).fit(bundle.buffer.mu_, bundle.buffer.sigma_)
    dataclasses.replace(bundle, buffer=buffer, path=None).save(path)
    return Bundle.load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--events", type=int, default=10_000_000, help="events of each end-to-end run")
    parser.add_argument(
        "--stage-events", type=int, default=2_000_000, help="events of each stage measurement"
    )
    parser.add_argument("--prior-art-events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument(
        "--memory-events",
        type=int,
        default=0,
        help="also run this many events to Parquet for peak memory (e.g. 1e8)",
    )
    parser.add_argument("--compare", help="another bundle, run end to end alternating with this one")
    parser.add_argument("--compare-repeats", type=int, default=3, help="end-to-end runs of each bundle")
    parser.add_argument("--flow-events", type=int, default=1_000_000, help="events of the flow mode's run")
    parser.add_argument("--flow-epochs", type=int, default=2, help="training epochs of the flow (speed only)")
    parser.add_argument(
        "--refine-quantiles",
        type=float,
        nargs="*",
        default=[],
        help="with a refiner: also end to end to zstd Parquet at these --refine-quantile values",
    )
    parser.add_argument("--tmp", default=None, help="folder for the output files (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results/generate.json")
    args = parser.parse_args()

    bundle = Bundle.load(args.bundle)
    source = EventSource(bundle, None, seed=1, device="cpu")
    workers = configure_threads(None, source.device)
    n = args.stage_events
    batch = args.batch_size
    spans = [(a, min(a + batch, n)) for a in range(0, n, batch)]
    stages: dict[str, float] = {}

    z = np.empty((n, bundle.buffer.mu_.shape[1]), np.float32)
    stages["sampling"] = rate(n, lambda: bundle.buffer.sample_range(0, n, 1, out=z, n_threads=workers))
    events = np.empty((n, len(bundle.schema)), np.float32)

    def decode_span(span: tuple[int, int]) -> None:
        source.decoder(z[span[0] : span[1]], events[span[0] : span[1]])

    with ThreadPoolExecutor(workers, thread_name_prefix="eventgen-decode") as pool:
        stages["decoding"] = rate(n, lambda: list(pool.map(decode_span, spans)))
    stages["decoding_1_thread"] = rate(n, lambda: list(map(decode_span, spans)))
    raw = events.copy()
    pre = bundle.preprocessor

    def clean() -> None:  # as generation does it: the frames of the events drawn, E rebuilt from masses
        events[:] = raw
        frames = symmetry_draws(1, 0, n) if pre.frame == "canonical" else None
        bundle.cleanup.apply(events, representation=pre.representation, frames=frames)

    stages["cleanup"] = rate(n, clean)
    if bundle.refiner is not None:
        refiner = bundle.refiner
        stages["refine_classifier"] = rate(n, lambda: [refiner.log_odds(events[a:b]) for a, b in spans])
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        writes = [("writing_parquet_zstd", "parquet", ROW_GROUP), ("writing_hdf5", "h5", ROW_GROUP)]
        writes += [(f"writing_root_zstd_basket_{size}", "root", size) for size in ROOT_BASKETS]
        for name, suffix, size in writes:

            def write(suffix: str = suffix, size: int = size) -> None:
                path = Path(tmp) / f"w.{suffix}"
                with EventWriter(path, bundle.schema, overwrite=True, row_group_size=size) as writer:
                    for a, b in spans:
                        writer.write(events[a:b])

            stages[name] = rate(n, write)

        mu, sigma = bundle.buffer.mu_, bundle.buffer.sigma_
        n_buffer, m = len(mu), args.prior_art_events

        def prior_art() -> None:
            out = np.empty((m, mu.shape[1]), np.float32)
            for i in range(m):  # the prior art's loop, global RNG included
                out[i] = np.random.normal(mu[i % n_buffer], 1.0 * sigma[i % n_buffer] + 0.05)  # noqa: NPY002

        prior_art_rate = rate(m, prior_art)
        e2e = {
            "parquet_zstd": end_to_end(args.bundle, args.events, Path(tmp) / "e.parquet", []),
            "hdf5": end_to_end(args.bundle, args.events, Path(tmp) / "e.h5", []),
            "root_zstd": end_to_end(args.bundle, args.events, Path(tmp) / "e.root", []),
        }
        if bundle.refiner is not None:
            e2e["parquet_zstd_no_refine"] = end_to_end(
                args.bundle, args.events, Path(tmp) / "e.parquet", ["--no-refine"]
            )
            for q in args.refine_quantiles:
                e2e[f"parquet_zstd_refine_quantile_{q:g}"] = end_to_end(
                    args.bundle, args.events, Path(tmp) / "e.parquet", ["--refine-quantile", str(q)]
                )
        flow_bundle = with_flow(bundle, Path(tmp) / "flow-bundle", args.flow_epochs)
        flow_z = np.empty((args.flow_events, bundle.buffer.mu_.shape[1]), np.float32)
        stages["sampling_flow"] = rate(
            args.flow_events,
            lambda: flow_bundle.buffer.sample_range(0, args.flow_events, 1, out=flow_z, n_threads=workers),
        )
        e2e["parquet_zstd_flow"] = end_to_end(
            str(flow_bundle.path), args.flow_events, Path(tmp) / "f.parquet", []
        )
        e2e["parquet_zstd_flow"]["n_events"] = args.flow_events
        if args.memory_events:
            e2e["parquet_zstd_long"] = end_to_end(
                args.bundle, args.memory_events, Path(tmp) / "m.parquet", []
            )
            e2e["parquet_zstd_long"]["n_events"] = args.memory_events
        comparison = {}
        if args.compare:
            runs = {"this": (args.bundle, []), "other": (args.compare, [])}
            if bundle.refiner is not None:
                runs["this_no_refine"] = (args.bundle, ["--no-refine"])
            best = dict.fromkeys(runs, 0.0)
            for _ in range(args.compare_repeats):
                for name, (path, extra) in runs.items():
                    run = end_to_end(path, args.events, Path(tmp) / "c.parquet", extra)
                    best[name] = max(best[name], run["events_per_second"])
            comparison = {
                "bundle": args.compare,
                "preprocessing": [_preprocessing(args.bundle), _preprocessing(args.compare)],
                "events_per_second": [best["this"], best["other"]],
                "ratio": best["this"] / best["other"],
            }
            if "this_no_refine" in best:
                comparison["no_refine_events_per_second"] = best["this_no_refine"]
                comparison["no_refine_ratio"] = best["this_no_refine"] / best["other"]
    slowest = min(("sampling", "decoding", "cleanup", "writing_parquet_zstd"), key=stages.get)
    result = {
        "command": "python benchmarks/bench_generate.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v is not None and v != []
        ),
        "machine": {
            "cores": available_cores(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "model": dataclasses.asdict(bundle.model_settings),
        "workers": workers,
        "stage_events_per_second": stages,
        "prior_art_sampling_events_per_second": prior_art_rate,
        "end_to_end": e2e,
        "slowest_stage": slowest,
        "end_to_end_over_slowest_stage": {
            k: v["events_per_second"] / stages[slowest] for k, v in e2e.items()
        },
        "preprocessing": _preprocessing(args.bundle),
        "comparison": comparison,
        "flow_over_buffer_end_to_end": e2e["parquet_zstd_flow"]["events_per_second"]
        / e2e["parquet_zstd"]["events_per_second"],
    }
    if "parquet_zstd_no_refine" in e2e:
        unrefined = e2e["parquet_zstd_no_refine"]["events_per_second"]
        result["refined_over_unrefined_end_to_end"] = e2e["parquet_zstd"]["events_per_second"] / unrefined
        result["refine_quantile_over_unrefined_end_to_end"] = {
            f"{q:g}": e2e[f"parquet_zstd_refine_quantile_{q:g}"]["events_per_second"] / unrefined
            for q in args.refine_quantiles
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'stage':<28}{'events/s':>14}")
    for name, value in stages.items():
        print(f"{name:<28}{value:>14,.0f}")
    print(f"{'prior-art sampling loop':<28}{prior_art_rate:>14,.0f}")
    for name, r in e2e.items():
        print(
            f"{'end to end, ' + name:<28}{r['events_per_second']:>14,.0f}   peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"{r['file_mib']:.0f} MiB file, {r['events_per_second'] / stages[slowest]:.0%} of the slowest stage ({slowest})"
        )
    if comparison:
        (this, other), (r_this, r_other) = comparison["preprocessing"], comparison["events_per_second"]
        print(
            f"end to end, parquet_zstd: {this} {r_this:,.0f} events/s, {other} {r_other:,.0f} events/s "
            f"(best of {args.compare_repeats} each, alternating): ratio {comparison['ratio']:.2f}"
        )
        if "no_refine_ratio" in comparison:
            print(
                f"  with --no-refine: {comparison['no_refine_events_per_second']:,.0f} events/s, "
                f"ratio {comparison['no_refine_ratio']:.2f}"
            )
    print(
        f"flow mode over buffer mode, end to end to zstd Parquet: {result['flow_over_buffer_end_to_end']:.3f}"
    )
    if "refined_over_unrefined_end_to_end" in result:
        print(
            "refined over --no-refine, end to end to zstd Parquet: "
            f"{result['refined_over_unrefined_end_to_end']:.3f}"
        )
        for q, ratio in result["refine_quantile_over_unrefined_end_to_end"].items():
            print(f"  at --refine-quantile {q}: {ratio:.3f}")
    print(f"saved {args.out}")


def _preprocessing(path: str) -> str:
    """A bundle's representation and frame, e.g. ``mass/canonical``."""
    pre = Bundle.load(path).preprocessor
    return f"{pre.representation}/{pre.frame}"


if __name__ == "__main__":
    main()
