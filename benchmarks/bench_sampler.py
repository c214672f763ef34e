"""Latent sampling throughput of DensityBuffer, per mode and selection, on 1 and 2 threads.

Compares with the prior art's way (a Python loop drawing ``normal(mu[i % N], alpha * sigma[i % N]
+ gamma)`` per event), timed on fewer events and given as a rate. The buffer is synthetic
(mu ~ N(0, 1), sigma ~ U(0.01, 0.1)); sampling cost does not depend on the values.
Events are drawn in chunks into one reused output array, as the generation pipeline does.

    python benchmarks/bench_sampler.py --events 10_000_000 --latent 20 --buffer 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from eventgen.buffer import BLOCK, DensityBuffer
from eventgen.sampling import EVENT_MODES, MODES, SELECTIONS, SamplingSettings

CASES: list[tuple[str, SamplingSettings]] = [  # every mode with each selection it has
    (f"{mode}/{selection}", SamplingSettings(mode=mode, selection=selection))
    for mode in MODES
    for selection in (SELECTIONS if mode in EVENT_MODES else ("uniform",))
]


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
    }


def _rate(buffer: DensityBuffer, events: int, chunk: int, repeats: int) -> float:
    """Best-of-``repeats`` latent points per second drawing ``events`` in chunks of ``chunk``."""
    out = np.ones((chunk, buffer.mu_.shape[1]), dtype=np.float32)  # pages touched before timing
    buffer.sample_range(0, min(chunk, 2 * BLOCK), seed=0, out=out[: min(chunk, 2 * BLOCK)])  # warm up
    best = np.inf
    for r in range(repeats):
        start = time.perf_counter()
        for lo in range(0, events, chunk):
            hi = min(events, lo + chunk)
            buffer.sample_range(lo, hi, seed=r, out=out[: hi - lo])
        best = min(best, time.perf_counter() - start)
    return events / best


def _prior_art_rate(mu: np.ndarray, sigma: np.ndarray, events: int, alpha: float, gamma: float) -> float:
    """The prior art's per-event Python loop (DeepEvents), latent points per second."""
    rng = np.random.default_rng(0)
    n_buffer = len(mu)
    out = np.empty_like(mu, shape=(events, mu.shape[1]))
    start = time.perf_counter()
    for i in range(events):
        out[i] = rng.normal(mu[i % n_buffer], alpha * sigma[i % n_buffer] + gamma)
    return events / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events per configuration")
    parser.add_argument("--latent", type=int, default=20, help="latent dimension")
    parser.add_argument("--buffer", type=int, default=20_000, help="buffer size N")
    parser.add_argument("--chunk", type=int, default=1 << 20, help="events per sample_range call")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    parser.add_argument("--gmm-components", type=int, default=100, help="components of mode gmm (slow fit)")
    parser.add_argument("--prior-art-events", type=int, default=100_000, help="events for the Python loop")
    parser.add_argument("--cases", default="all", help="comma-separated case names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sampler.json"))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()  # other processes on the machine make the 2-thread numbers meaningless

    rng = np.random.default_rng(1)
    mu = rng.normal(size=(args.buffer, args.latent)).astype(np.float32)
    sigma = rng.uniform(0.01, 0.1, size=(args.buffer, args.latent)).astype(np.float32)
    weights = np.exp(mu[:, 0].astype(np.float64))
    max_threads = min(2, numba.config.NUMBA_NUM_THREADS)
    threads_before = numba.get_num_threads()
    results: list[dict[str, Any]] = []
    print(f"{'case':<20}{'threads':>8}{'Mpoints/s':>12}")
    try:
        chosen = [c for c in CASES if args.cases == "all" or c[0] in args.cases.split(",")]
        for name, settings in chosen:
            settings = settings.updated({"n_components": args.gmm_components})
            start = time.perf_counter()
            buffer = DensityBuffer(settings).fit(mu, sigma, sample_weight=weights)
            fit_s = time.perf_counter() - start
            for threads in range(1, max_threads + 1):
                numba.set_num_threads(threads)
                rate = _rate(buffer, args.events, args.chunk, args.repeats)
                results.append({"case": name, "threads": threads, "points_per_s": rate, "fit_s": fit_s})
                print(f"{name:<20}{threads:>8}{rate / 1e6:>12.2f}")
    finally:
        numba.set_num_threads(threads_before)
    prior = _prior_art_rate(mu, sigma, args.prior_art_events, 1.0, 0.05)
    results.append({"case": "prior-art python loop", "threads": 1, "points_per_s": prior, "fit_s": 0.0})
    print(f"{'prior-art loop':<20}{1:>8}{prior / 1e6:>12.3f}")

    record = {
        "benchmark": "sampler",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "block": BLOCK,
        "machine": {**_machine(), "load_average_start": load_start, "load_average_end": os.getloadavg()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
