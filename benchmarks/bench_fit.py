"""Fit benchmark: wall time and training throughput to a fitted bundle, and per-column fidelity.

Fits a bundle on a training file with a fit config, then compares, column by column, the
held-out events with (a) their reconstruction through the VAE (encode to μ, decode) and
(b) events decoded from density-buffer samples, as Wasserstein-1 distance divided by the
held-out column's standard deviation. A second independent simulated sample (``--truth``)
gives the truth-vs-truth scale.

    eventgen simulate ttbar -n 20000 --seed 1 -o train.parquet
    eventgen simulate ttbar -n 20000 --seed 2 -o test.parquet
    python benchmarks/bench_fit.py --train train.parquet --test test.parquet --config configs/deepevents.yaml
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from eventgen.decode import EventDecoder
from eventgen.fitting import BufferSettings, fit
from eventgen.generation import EventSource
from eventgen.io import read_events
from eventgen.jobs import load_fit_job
from eventgen.latent import encode


def w1_over_sigma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column W1(a, b) / std(b) for ``(n, d)`` arrays."""
    return np.array(
        [wasserstein_distance(a[:, j], b[:, j]) / max(float(b[:, j].std()), 1e-12) for j in range(b.shape[1])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True, help="held-out events of the same simulation")
    parser.add_argument("--config", default="configs/deepevents.yaml")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/fit.json")
    args = parser.parse_args()

    job = load_fit_job(args.config, data=args.train, epochs=args.epochs)
    train = read_events(args.train)
    test = read_events(args.test, train.schema)
    t0 = time.perf_counter()
    bundle = fit(
        train,
        preprocess=job.preprocess,
        model_settings=job.model,
        train_settings=job.train,
        buffer_settings=job.buffer or BufferSettings(),
        seed=args.seed,
    )
    wall = time.perf_counter() - t0
    training = bundle.metadata["training"]

    n = min(len(test), len(train))
    half = n // 2
    reference, truth = test.data[:half], test.data[half : 2 * half]
    mu, _ = encode(bundle, reference)
    recon = EventDecoder(bundle.model, bundle.preprocessor)(mu)
    recon_clean = bundle.cleanup.apply(recon.copy())
    source = EventSource(bundle, None, seed=args.seed, device="cpu")
    sampled = next(source.events(0, half, half))

    names = train.schema.names
    rows = {
        "truth_vs_truth": w1_over_sigma(truth, reference),
        "reconstruction": w1_over_sigma(recon, reference),
        "reconstruction_cleaned": w1_over_sigma(recon_clean, reference),
        "buffer_samples": w1_over_sigma(sampled, reference),
    }
    result = {
        "command": "python benchmarks/bench_fit.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "python": platform.python_version()},
        "n_train": len(train),
        "n_compared": half,
        "fit_wall_seconds": wall,
        "epochs": len(training["history"]),
        "best_epoch": training["best_epoch"],
        "train_events_per_second": training["events_per_second"],
        "best_val_loss": training["best"].get("val_loss"),
        "latent": bundle.metadata["latent"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "w1_over_sigma": {k: dict(zip(names, map(float, v), strict=True)) for k, v in rows.items()},
        "mean_w1_over_sigma": {k: float(v.mean()) for k, v in rows.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(
        f"fit: {wall:.1f} s, {result['epochs']} epochs (best {result['best_epoch']}), "
        f"{result['train_events_per_second']:.0f} training events/s"
    )
    print(f"{'column':<10}" + "".join(f"{k:>24}" for k in rows))
    for j, name in enumerate(names):
        print(f"{name:<10}" + "".join(f"{v[j]:>24.4f}" for v in rows.values()))
    print(f"{'mean':<10}" + "".join(f"{v.mean():>24.4f}" for v in rows.values()))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
