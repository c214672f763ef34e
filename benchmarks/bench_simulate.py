"""Benchmark of eventgen.simulation: events/s on one worker and on all cores, per-core speed,
Pythia init time, peak memory and, for ttbar, the physics statistics of the sample.

Usage: ``python benchmarks/bench_simulate.py --events 2000 --zll-events 40000 --workers 2
--out benchmarks/results/simulate.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from eventgen.simulation import SimulationSettings, schema_for, simulate


def _peak_rss_mib(worker_peak: float) -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest worker process.

    The workers are forked by a forkserver, so ``RUSAGE_CHILDREN`` misses them; each shard
    reports the peak of the process that ran it instead (``worker_peak``).
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "largest_worker": round(max(children, worker_peak), 1)}


def _run(process: str, n_events: int, workers: int, shard_size: int | None, seed: int) -> dict[str, Any]:
    settings = SimulationSettings.for_process(process)  # type: ignore[arg-type]
    start = time.perf_counter()
    events, prov = simulate(settings, n_events, seed=seed, workers=workers, shard_size=shard_size)
    wall = time.perf_counter() - start
    shards = prov["shards"]
    used = min(workers, len(shards))  # simulate never starts more workers than shards
    return {
        "events": events,
        "workers": used,
        "wall_s": wall,
        "events_per_s": n_events / wall,
        "events_per_s_per_core": n_events / wall / used,
        "ms_per_event_per_core": 1e3 * wall * used / n_events,
        "init_s": float(np.mean([s["init_s"] for s in shards])),
        "generate_ms_per_event": 1e3 * sum(s["generate_s"] for s in shards) / n_events,
        "reconstruct_ms_per_event": 1e3 * sum(s["reconstruct_s"] for s in shards) / n_events,
        "n_shards": prov["n_shards"],
        "cross_section_pb": [prov["cross_section"]["pb"], prov["cross_section"]["pb_err"]],
        "n_tried": prov["n_tried"],
        "n_accepted": prov["n_accepted"],
        "worker_peak_rss_mib": max(s["peak_rss_mib"] for s in shards),
    }


def _statistics(process: str, events: np.ndarray) -> dict[str, float]:
    names = schema_for(process).names  # type: ignore[arg-type]
    n_leptons = events[:, names.index("n_leptons")]
    out = {
        "fraction_ge1_lepton": float((n_leptons >= 1).mean()),
        "fraction_ge2_leptons": float((n_leptons >= 2).mean()),
        "mean_n_leptons": float(n_leptons.mean()),
    }
    if "n_jets" in names:
        n_jets = events[:, names.index("n_jets")]
        out |= {"mean_n_jets": float(n_jets.mean()), "fraction_ge4_jets": float((n_jets >= 4).mean())}
        out["mean_met"] = float(events[:, names.index("met")].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="ttbar events per run")
    parser.add_argument("--zll-events", type=int, default=40000, help="zll events per run")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="workers of the all-core run"
    )
    parser.add_argument(
        "--shard-size", type=int, default=None, help="events per shard (default: per process)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate.json"))
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "processes": {},
    }
    row = "{:8} {:>7} {:>7} {:>9} {:>9} {:>10} {:>7}"
    print(row.format("process", "workers", "events", "ev/s", "ev/s/core", "ms/ev/core", "init s"))
    for process, n_events in (("ttbar", args.events), ("zll", args.zll_events)):
        runs = []
        for workers in sorted({1, args.workers}):
            run = _run(process, n_events, workers, args.shard_size, args.seed)
            events = run.pop("events")
            runs.append(run)
            speed = (run["events_per_s"], run["events_per_s_per_core"], run["ms_per_event_per_core"])
            print(
                row.format(
                    process, run["workers"], n_events, *(f"{x:.4g}" for x in speed), f"{run['init_s']:.2f}"
                )
            )
        stats = _statistics(process, events)
        results["processes"][process] = {"n_events": n_events, "runs": runs, "statistics": stats}
        sigma, error = runs[-1]["cross_section_pb"]
        print(
            f"  {process}: cross-section {sigma:.4g} +- {error:.2g} pb; "
            + ", ".join(f"{k} {v:.3f}" for k, v in stats.items())
        )
    worker_peak = max(r["worker_peak_rss_mib"] for p in results["processes"].values() for r in p["runs"])
    results["peak_rss_mib"] = _peak_rss_mib(worker_peak)
    rss = results["peak_rss_mib"]
    print(f"peak RSS: self {rss['self']} MiB, largest worker {rss['largest_worker']} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
