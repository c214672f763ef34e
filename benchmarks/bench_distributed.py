"""Distributed generation benchmark: events/s of one process against Dask clusters of 1 and 2 workers.

In one run, on one bundle, to a sharded zstd Parquet dataset:

- ``generate`` in this process on every core and on one thread (the per-event reference);
- ``generate`` on a ``DaskExecutor`` of a ``LocalCluster`` of 1 and of 2 workers (1 thread each), with
  the cluster's start-up time measured apart from the run (the run includes each worker's
  first bundle load);
- the per-shard overhead: 1 worker writing many tiny shards, less those events at the
  one-thread per-event time, per shard.

    python benchmarks/bench_distributed.py --bundle scratch/bundle_de --events 4000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventgen.bundle import Bundle
from eventgen.distributed import DaskExecutor, cluster_client
from eventgen.generation import available_cores, generate


def timed(func: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--shard-size", type=int, default=500_000)
    parser.add_argument("--tiny-shards", type=int, default=100, help="shards in the per-shard overhead run")
    parser.add_argument("--tiny-shard-size", type=int, default=8192)
    parser.add_argument("--tmp", default=None, help="folder for the datasets (default: the system's)")
    parser.add_argument("--out", default="benchmarks/results/distributed.json")
    args = parser.parse_args(argv)

    bundle = Bundle.load(args.bundle)
    n, shard = args.events, args.shard_size
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-", dir=args.tmp))

    def run(name: str, func: Callable[[Path], Any]) -> float:
        out = tmp / name
        seconds = timed(lambda: func(out))
        shutil.rmtree(out)
        return seconds

    try:
        run("warm-up", lambda o: generate(bundle, 2 * 4096, o, shard_size=4096, device="cpu"))  # JIT, caches
        seconds: dict[str, float] = {
            "single_process_all_cores": run(
                "single", lambda o: generate(bundle, n, o, shard_size=shard, device="cpu")
            ),
            "single_process_1_thread": run(
                "single1", lambda o: generate(bundle, n, o, shard_size=shard, device="cpu", threads=1)
            ),
        }
        n_tiny = args.tiny_shards * args.tiny_shard_size
        startup: dict[str, float] = {}
        tiny_seconds = float("nan")
        for workers in (1, 2):
            t0 = time.perf_counter()
            with cluster_client(workers=workers) as client:
                startup[f"{workers}_workers"] = time.perf_counter() - t0
                seconds[f"dask_{workers}_workers"] = run(
                    f"dask{workers}",
                    lambda o, c=client: generate(
                        bundle, n, o, shard_size=shard, device="cpu", executor=DaskExecutor(c)
                    ),
                )
                if workers == 1:  # warm worker: the bundle is loaded already
                    tiny_seconds = run(
                        "tiny",
                        lambda o, c=client: generate(
                            bundle,
                            n_tiny,
                            o,
                            shard_size=args.tiny_shard_size,
                            device="cpu",
                            executor=DaskExecutor(c),
                        ),
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    per_event_1_thread = seconds["single_process_1_thread"] / n
    per_shard = (tiny_seconds - n_tiny * per_event_1_thread) / args.tiny_shards
    rates = {name: n / s for name, s in seconds.items()}
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cores": available_cores(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
        },
        "bundle": str(args.bundle),
        "n_events": n,
        "shard_size": shard,
        "seconds": seconds,
        "events_per_second": rates,
        "cluster_startup_seconds": startup,
        "per_shard_overhead_seconds": per_shard,
        "tiny_shards": {
            "n_shards": args.tiny_shards,
            "shard_size": args.tiny_shard_size,
            "seconds": tiny_seconds,
        },
    }
    print(
        f"{n:,} events in shards of {shard:,}; load average {os.getloadavg()[0]:.1f} on {available_cores()} cores"
    )
    print(f"{'run':<28}{'seconds':>10}{'events/s':>14}")
    for name, s in seconds.items():
        print(f"{name:<28}{s:>10.2f}{rates[name]:>14,.0f}")
    for name, s in startup.items():
        print(f"{'cluster start-up ' + name:<28}{s:>10.2f}")
    print(f"{'per-shard overhead':<28}{per_shard:>10.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
