"""Toolkit benchmark: the seed talk's other uses of the VAE, measured on simulated events.

1. Anomaly detection: ROC AUC of the reconstruction and negative-ELBO scores of a tt̄ bundle,
   held-out tt̄ (label 0) vs Z→ℓℓ events mapped to the tt̄ layout (label 1); harder cases:
   tt̄ with a 10% jet energy scale shift, and (``--harder``) tt̄ simulated with another setting.
2. Compression: size of a latent file (μ only) vs the event file, same format and compression;
   per-column W1/σ and median errors of ``decode(encode(x))`` vs x on held-out events.
3. Denoising: held-out events smeared with known noise (10% on energies/pT, 0.05 on η/φ);
   per-column mean absolute error to the clean events, noisy vs denoised.
4. β scan: one bundle per β, the seed talk's table (avg latent variance, avg |μ|) plus the
   validation losses and the generation quality vs the held-out events.

    eventgen simulate zll -n 20000 --seed 7 -o scratch/toolkit/zll.parquet
    python benchmarks/bench_toolkit.py --bundle scratch/bundle_de --train scratch/ttbar_train.parquet \\
        --test scratch/ttbar_test.parquet --other scratch/toolkit/zll.parquet
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from eventgen.anomaly import anomaly_scores, to_schema
from eventgen.bundle import Bundle
from eventgen.cleanup import wrap_phi
from eventgen.io import EventTable, read_events, write_events
from eventgen.jobs import load_fit_job
from eventgen.latent import add_noise, beta_scan, decode, denoise, encode, format_beta_table, write_latent
from eventgen.metrics import wasserstein
from eventgen.schema import Schema


def auc_of(normal: dict[str, np.ndarray], odd: dict[str, np.ndarray]) -> dict[str, float]:
    """ROC AUC per score, normal events labelled 0 and odd ones 1."""
    return {
        k: float(
            roc_auc_score(np.r_[np.zeros(len(normal[k])), np.ones(len(odd[k]))], np.r_[normal[k], odd[k]])
        )
        for k in normal
    }


def jet_energy_shift(events: np.ndarray, schema: Schema, factor: float) -> np.ndarray:
    """A copy with every jet's E and pT multiplied by ``factor`` (a jet energy scale shift)."""
    out = events.copy()
    for o in schema.families().get("j", ([], -1))[0]:
        out[:, [o.e, o.pt]] *= factor
    return out


def present_mask(events: np.ndarray, schema: Schema) -> np.ndarray:
    """``(n, n_columns)`` bool: the column belongs to a present object (or to no object)."""
    mask = np.ones(events.shape, bool)
    pts = {o.name: o.pt for o in schema.objects()}
    for j, c in enumerate(schema.columns):
        if c.obj in pts and c.kind != "count":
            mask[:, j] = events[:, pts[c.obj]] > 0
    return mask


def abs_diff(a: np.ndarray, b: np.ndarray, schema: Schema) -> np.ndarray:
    """``|a - b|`` per entry, with φ differences wrapped to [0, π]."""
    d = np.abs(a.astype(np.float64) - b)
    phi = schema.indices_of_kind("phi")
    d[:, phi] = np.abs(wrap_phi(a[:, phi].astype(np.float64) - b[:, phi]))
    return d


def run_anomaly(bundle: Bundle, test: EventTable, other: EventTable, harder: str | None) -> dict[str, Any]:
    normal = anomaly_scores(bundle, test.data)
    cases = {f"Z->ll mapped to {bundle.schema.name} ({len(other)} events)": other.data}
    cases["jet energy scale x1.10"] = jet_energy_shift(test.data, bundle.schema, 1.10)
    cases["jet energy scale x1.50"] = jet_energy_shift(test.data, bundle.schema, 1.50)
    if harder:
        cases[f"{Path(harder).name} (other simulation setting)"] = read_events(harder, bundle.schema).data
    out = {}
    for name, events in cases.items():
        odd = anomaly_scores(bundle, events)
        out[name] = {
            "auc": auc_of(normal, odd),
            "median_score": {k: float(np.median(v)) for k, v in odd.items()},
        }
    out["held-out median_score"] = {k: float(np.median(v)) for k, v in normal.items()}
    return out


def run_compression(bundle: Bundle, test: EventTable, seed: int) -> dict[str, Any]:
    mu, _ = encode(bundle, test.data)
    rebuilt = decode(bundle, mu)
    sizes: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("zstd", None):
            tag = compression or "uncompressed"
            events_file = write_events(
                Path(tmp) / f"events_{tag}.parquet", test.data, test.schema, compression=compression
            )
            latent_file = write_latent(
                Path(tmp) / f"latent_{tag}.parquet", bundle, mu, compression=compression
            )
            sizes[tag] = {
                "events_bytes": events_file.stat().st_size,
                "latent_bytes": latent_file.stat().st_size,
            }
    schema = bundle.schema
    diff = abs_diff(rebuilt, test.data, schema)
    present = present_mask(test.data, schema)
    columns = {}
    for j, c in enumerate(schema.columns):
        d, x = diff[present[:, j], j], np.abs(test.data[present[:, j], j]).astype(np.float64)
        entry = {"w1_over_sigma": wasserstein(rebuilt[:, j], test.data[:, j], seed + j)[0]}
        entry["median_abs_error"] = float(np.median(d)) if d.size else None
        if c.kind in ("energy", "pt"):
            entry["median_rel_error"] = float(np.median(d[x > 0] / x[x > 0])) if (x > 0).any() else None
        columns[c.name] = entry
    return {
        "n_events": len(test),
        "latent_dim": int(mu.shape[1]),
        "n_columns": len(schema),
        "sizes": {k: {**v, "ratio": v["latent_bytes"] / v["events_bytes"]} for k, v in sizes.items()},
        "mean_w1_over_sigma": float(np.mean([v["w1_over_sigma"] for v in columns.values()])),
        "columns": columns,
    }


def run_denoising(
    bundle: Bundle, test: EventTable, seed: int, relative: float, angle: float
) -> dict[str, Any]:
    schema = bundle.schema
    clean = test.data
    noisy = add_noise(clean, schema, np.random.default_rng(seed), relative, angle)
    present = present_mask(clean, schema)
    errors = {
        "noisy": abs_diff(noisy, clean, schema),
        "denoised": abs_diff(denoise(bundle, noisy), clean, schema),
        "reconstructed_clean": abs_diff(denoise(bundle, clean), clean, schema),
    }
    columns = {}
    for j, c in enumerate(schema.columns):
        mae = {k: float(v[present[:, j], j].mean()) for k, v in errors.items()}
        mae["gain"] = 1.0 - mae["denoised"] / mae["noisy"] if mae["noisy"] > 0 else None
        columns[c.name] = mae
    gains = [v["gain"] for v in columns.values() if v["gain"] is not None]
    return {
        "noise": {"relative": relative, "angle": angle, "seed": seed},
        "columns": columns,
        "columns_improved": sum(g > 0 for g in gains),
        "columns_smeared": len(gains),
    }


def run_beta_scan(args: argparse.Namespace, train: EventTable, test: EventTable) -> dict[str, Any]:
    job = load_fit_job(args.config, data=args.train, epochs=args.beta_epochs)
    table = EventTable(train.data[: args.beta_events], train.schema, train.metadata)
    t0 = time.perf_counter()
    rows = beta_scan(
        table,
        args.betas,
        model_settings=job.model,
        train_settings=job.train,
        preprocess=job.preprocess,
        buffer_settings=job.buffer,
        seed=args.seed,
        reference=test,
        n_generate=min(20_000, len(test)),
    )
    return {
        "config": args.config,
        "n_train_events": len(table),
        "epochs": args.beta_epochs,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
        "table": format_beta_table(rows),
    }


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="scratch/bundle_de")
    parser.add_argument("--train", default="scratch/ttbar_train.parquet")
    parser.add_argument("--test", default="scratch/ttbar_test.parquet")
    parser.add_argument("--other", default="scratch/toolkit/zll.parquet", help="events of another process")
    parser.add_argument("--harder", help="optional: tt̄ simulated with another setting (e.g. jet_pt_min 30)")
    parser.add_argument("--config", default="configs/deepevents.yaml", help="fit config of the β scan")
    parser.add_argument("--betas", type=float, nargs="*", default=[1, 0.05, 0.005, 0.0005, 5e-5, 5e-6, 0])
    parser.add_argument("--beta-events", type=int, default=10_000)
    parser.add_argument("--beta-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/toolkit.json")
    args = parser.parse_args()
    command = "python " + shlex.join(sys.argv)

    bundle = Bundle.load(args.bundle)
    train = read_events(args.train, bundle.schema)
    test = read_events(args.test, bundle.schema)
    other = to_schema(read_events(args.other), bundle.schema)
    result: dict[str, Any] = {
        "command": command,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "bundle": {"path": args.bundle, "hash": bundle.hash, "model": bundle.model_settings.to_dict()},
        "test": args.test,
    }
    t0 = time.perf_counter()
    result["anomaly"] = run_anomaly(bundle, test, other, args.harder)
    result["compression"] = run_compression(bundle, test, args.seed)
    result["denoising"] = run_denoising(bundle, test, args.seed, 0.10, 0.05)
    result["seconds_anomaly_compression_denoising"] = time.perf_counter() - t0

    print(f"## Anomaly ROC AUC (held-out {args.test} vs ...)\n")
    cases = {k: v for k, v in result["anomaly"].items() if "auc" in v}
    print(
        markdown(
            ["case", "AUC reconstruction", "AUC neg ELBO"],
            [[k, v["auc"]["reconstruction"], v["auc"]["neg_elbo"]] for k, v in cases.items()],
        )
    )
    comp = result["compression"]
    print(f"\n## Compression (latent {comp['latent_dim']} x float32 vs {comp['n_columns']} columns)\n")
    print(
        markdown(
            ["format", "events bytes", "latent bytes", "ratio"],
            [[k, v["events_bytes"], v["latent_bytes"], v["ratio"]] for k, v in comp["sizes"].items()],
        )
    )
    print()
    print(
        markdown(
            ["column", "W1/σ", "median |Δ|", "median |Δ|/x"],
            [
                [k, v["w1_over_sigma"], v["median_abs_error"], v.get("median_rel_error")]
                for k, v in comp["columns"].items()
            ],
        )
    )
    print("\n## Denoising (mean |Δ| to clean events, present objects)\n")
    den = result["denoising"]["columns"]
    print(
        markdown(
            ["column", "noisy", "denoised", "gain", "reconstructed clean"],
            [[k, v["noisy"], v["denoised"], v["gain"], v["reconstructed_clean"]] for k, v in den.items()],
        )
    )

    if args.betas:
        result["beta_scan"] = run_beta_scan(args, train, test)
        print(
            f"\n## β scan ({args.beta_events} events, {args.beta_epochs} epochs, "
            f"{result['beta_scan']['seconds']:.0f} s)\n"
        )
        print(result["beta_scan"]["table"])
    Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
