"""Cost of verifying a dataset on ``--resume``: every finished shard's size and sha256.

Writes a dataset of ``--shards`` shard files, ``--megabytes`` in all (random bytes: hashing does
not depend on the content), records them in a manifest as a run does, and times resuming it
(:meth:`eventgen.dataset.Dataset.open` with ``resume=True``, which verifies every shard) next to
the time of generating that many bytes of events (``--events-per-second``, events of
``--bytes-per-event`` as written). The files were just written, so they are read from the page
cache: this is the hashing cost; from a cold disk, reading them at the disk's speed adds to it.

    python benchmarks/bench_verify.py --megabytes 400 --shards 8
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from eventgen.dataset import Dataset, ShardPlan

META = {"generator": "bench", "bundle_hash": "0" * 64, "seed": 0, "n_events": 0, "sampling": {}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=400)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bytes-per-event", type=float, default=72.6, help="zstd ttbar events (measured)")
    parser.add_argument("--events-per-second", type=float, default=470_000, help="generation, 2 threads")
    parser.add_argument("--out", default="benchmarks/results/verify.json")
    args = parser.parse_args(argv)

    shard_bytes = args.megabytes * 10**6 // args.shards
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Dataset(Path(tmp) / "ds", ShardPlan(args.shards, 1))
        manifest = dataset.open(META)
        for k in range(args.shards):
            dataset.shard_path(k).write_bytes(rng.bytes(shard_bytes))
            manifest.record(dataset.finished(k))
        seconds = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            resumed = dataset.open(META, resume=True)
            seconds.append(time.perf_counter() - t0)
            assert resumed.damaged == [] and len(resumed.shards) == args.shards
    total = shard_bytes * args.shards
    best = min(seconds)
    generate_seconds = total / args.bytes_per_event / args.events_per_second
    result = {
        "machine": platform.machine(),
        "megabytes": total / 1e6,
        "shards": args.shards,
        "verify_seconds": seconds,
        "verify_megabytes_per_second": total / 1e6 / best,
        "generate_seconds_for_as_many_bytes": generate_seconds,
        "verify_fraction_of_generation": best / generate_seconds,
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
