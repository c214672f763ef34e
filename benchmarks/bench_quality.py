"""Quality benchmark: eventgen's sampling settings against the baselines, AUC vs memorisation.

On the work directory of a main job (``eventgen run configs/default.yaml``: train.parquet,
test.parquet, bundle/), generates events for a grid of buffer settings (α, γ), the kde mode
and the plain VAE, plus the baselines (±5% smearing, Gaussian KDE, the prior art's GMM),
and evaluates each next to truth vs truth. Settings are chosen on a separate *validation*
sample (never on the test sample): the grid is evaluated against ``--validation``, the best
setting that stays away from copying (memorisation ratio >= 0.5) is picked there, and only
that setting, the default one and the baselines are then evaluated on the test sample.

    eventgen run configs/default.yaml
    eventgen simulate ttbar -n 20000 --seed 3 -o runs/ttbar-default/validation.parquet
    python benchmarks/bench_quality.py --workdir runs/ttbar-default
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eventgen.baselines import BASELINES, baseline_events
from eventgen.bundle import Bundle
from eventgen.evaluation import evaluate
from eventgen.generation import EventSource
from eventgen.io import EventTable, read_events, sample_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/ttbar-default")
    parser.add_argument(
        "--validation", help="held-out sample to choose settings on (default: WORKDIR/validation.parquet)"
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per evaluated sample")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--gmm-components", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/quality")
    args = parser.parse_args()

    work = Path(args.workdir)
    bundle = Bundle.load(work / "bundle")
    train = read_events(work / "train.parquet")
    validation = sample_events(args.validation or work / "validation.parquet", 2 * args.events, args.seed)
    test = sample_events(work / "test.parquet", 2 * args.events, args.seed)
    candidates: dict[str, tuple[str, dict]] = {}
    for alpha in args.alphas:
        for gamma in args.gammas:
            candidates[f"buffer a={alpha:g} g={gamma:g}"] = ("eventgen", {"alpha": alpha, "gamma": gamma})
    candidates["kde (scott)"] = ("eventgen", {"mode": "kde"})
    candidates["plain VAE (prior)"] = ("baseline", {"mode": "prior"})
    for name in BASELINES:
        candidates[f"baseline {name}"] = ("baseline", {"baseline": name})

    truths: dict[int, dict] = {}  # truth vs truth per reference sample, computed once

    def measure(label: str, reference: EventTable) -> dict:
        family, spec = candidates[label]
        n = min(args.events, len(reference) // 2)
        t0 = time.perf_counter()
        if "baseline" in spec:
            events = baseline_events(
                spec["baseline"], train.data, bundle, n, args.seed, n_components=args.gmm_components
            )
        else:
            source = EventSource(bundle, spec, seed=args.seed, device="cpu")
            events = next(source.events(0, n, n))
        result = evaluate(
            EventTable(events, bundle.schema),
            reference,
            train,
            seed=args.seed,
            max_events=n,
            truth_from=truths.get(id(reference)),
        )
        truths.setdefault(id(reference), result)
        g = result["generated"]
        row = {
            "label": label,
            "family": family,
            "auc": g["classifier_auc"],
            "memorisation": result["memorisation"]["generated"]["ratio"],
            "mean_w1": g["mean_column_w1"],
            "m_jjj_w1": g["observables"].get("m_jjj", {}).get("w1"),
            "physicality": g["physicality"]["all"],
            "truth_auc": result["truth"]["classifier_auc"],
            "truth_mean_w1": result["truth"]["mean_column_w1"],
            "seconds": time.perf_counter() - t0,
        }
        print(
            f"{label:<24} AUC {row['auc'][0]:.3f}  memorisation {row['memorisation'][0]:.3f}  W1/σ {row['mean_w1']:.4f}"
        )
        return row

    print("validation sample: the grid")
    rows = [measure(label, validation) for label in candidates]
    best_baseline = min(r["auc"][0] for r in rows if r["family"] == "baseline")
    away = [r for r in rows if r["family"] == "eventgen" and r["memorisation"][0] >= 0.5]
    chosen = min(away, key=lambda r: r["auc"][0])["label"] if away else None
    default = f"buffer a={1:g} g={0.05:g}"
    print(f"test sample: chosen {chosen}, the default and the baselines")
    test_labels = [x for x in dict.fromkeys([chosen, default]) if x] + [
        k for k, (family, _) in candidates.items() if family == "baseline"
    ]
    test_rows = [measure(label, test) for label in test_labels]
    test_best_baseline = min(r["auc"][0] for r in test_rows if r["family"] == "baseline")
    winners = [
        r["label"]
        for r in test_rows
        if r["family"] == "eventgen" and r["auc"][0] < test_best_baseline and r["memorisation"][0] >= 0.5
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": f"python benchmarks/bench_quality.py --workdir {args.workdir} --events {args.events} "
        f"--alphas {' '.join(map(str, args.alphas))} --gammas {' '.join(map(str, args.gammas))} "
        f"--gmm-components {args.gmm_components}",
        "n_events": args.events,
        "validation_rows": rows,
        "validation_best_baseline_auc": best_baseline,
        "chosen_on_validation": chosen,
        "test_rows": test_rows,
        "test_settings_beating_every_baseline_with_memorisation_ge_0.5": winners,
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=1))
    text = (
        "## Validation sample (choosing settings)\n\n"
        + _table(rows, [])
        + f"\n## Test sample (chosen on validation: {chosen})\n\n"
        + _table(test_rows, winners)
    )
    (out / "quality.md").write_text(text)
    _plot(rows, out / "auc_vs_memorisation.png")
    print(text)


def _table(rows: list[dict], winners: list[str]) -> str:
    lines = [
        "| generator | classifier AUC | memorisation ratio | mean W1/σ | m_jjj W1/σ |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["auc"][0]):
        mark = " **✓**" if r["label"] in winners else ""
        m_jjj = f"{r['m_jjj_w1'][0]:.3f}" if r["m_jjj_w1"] else "–"
        lines.append(
            f"| {r['label']}{mark} | {r['auc'][0]:.3f} ± {r['auc'][1]:.3f} | {r['memorisation'][0]:.3f} | "
            f"{r['mean_w1']:.4f} | {m_jjj} |"
        )
    t = rows[0]
    lines.append(
        f"| truth vs truth | {t['truth_auc'][0]:.3f} ± {t['truth_auc'][1]:.3f} | 1 | {t['truth_mean_w1']:.4f} | |"
    )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for r in rows:
        colour = "tab:blue" if r["family"] == "eventgen" else "tab:red"
        ax.errorbar(r["memorisation"][0], r["auc"][0], yerr=r["auc"][1], fmt="o", color=colour, ms=4)
        ax.annotate(
            r["label"],
            (r["memorisation"][0], r["auc"][0]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("memorisation ratio (0 = copies training events, 1 = fresh)")
    ax.set_ylabel("classifier AUC (0.5 = indistinguishable)")
    ax.set_title("eventgen settings (blue) and baselines (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
