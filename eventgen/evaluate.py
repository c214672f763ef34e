"""Evaluation: generated events against held-out originals, always next to truth vs truth.

The held-out reference sample is split in two halves A and B of equal size. Every metric
is computed for *generated vs A* and for *B vs A* (two independent samples of the original
simulation), so every number comes with the scale it must be read against. With the
fitting sample the memorisation check compares each generated event's distance to its
nearest training event with that to its nearest held-out event, on equal-size samples:
thinning the training sample would hide copies of the dropped events, so the whole
held-out sample is used and it should be at least as large as the training sample.

Outputs of :func:`write_report`: ``metrics.json``, ``report.md`` and PNG plots (per-column
and per-observable histograms with ratio panels).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from eventgen.errors import InputError
from eventgen.io import EventTable
from eventgen.schema import Schema

log = logging.getLogger(__name__)


def evaluate(
    generated: EventTable,
    reference: EventTable,
    train: EventTable | None = None,
    *,
    seed: int = 0,
    max_events: int = 50_000,
    n_boot: int = 10,
    truth_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All metrics of ``generated`` and of the truth-vs-truth baseline against held-out ``reference``.

    Samples are subsampled with ``seed`` to at most ``max_events`` events each (the reference to
    2 × that, then halved). Returns ``{"generated": compare(...), "truth": compare(...),
    "memorisation": {...}, ...}`` (JSON-serialisable). The truth-vs-truth numbers depend only on
    the reference, the training sample and the settings: ``truth_from``, an earlier result with
    the same ones (for another generator), supplies them instead of computing them again.
    """
    from eventgen.metrics import compare, memorisation

    schema = reference.schema
    gen = _in_schema(generated, schema, "generated")
    rng = np.random.default_rng(seed)
    ref = _subsample(reference.data, 2 * max_events, rng)
    if len(ref) < 20:
        raise InputError(f"the reference has {len(ref)} events; evaluation needs at least 20 held-out events")
    half = len(ref) // 2
    ref_a, ref_b = ref[:half], ref[half : 2 * half]
    gen = _subsample(gen, half, rng)
    seeds = np.random.SeedSequence(seed).generate_state(4)
    if truth_from is not None and (
        truth_from["seed"] != seed
        or truth_from["n_events"]["reference_half"] != half
        or ("memorisation" in truth_from) != (train is not None)
    ):
        raise InputError("truth_from is the result of another reference, seed or training sample; drop it")
    result: dict[str, Any] = {
        "schema": schema.name,
        "n_events": {"generated": len(gen), "reference_half": int(half)},
        "seed": seed,
        "generated": compare(gen, ref_a, schema, int(seeds[0]), max_events=max_events, n_boot=n_boot),
        "truth": truth_from["truth"]
        if truth_from is not None
        else compare(ref_b, ref_a, schema, int(seeds[0]), max_events=max_events, n_boot=n_boot),
    }
    if train is not None:
        # Copies are only exposed if the training sample is not thinned: compare with the whole
        # held-out sample, at the size of the smaller of the two (give n_test >= n_train).
        train_data = _in_schema(train, schema, "training")
        n_mem = min(len(train_data), len(ref))
        result["memorisation"] = {
            "generated": memorisation(gen, train_data, ref, int(seeds[1]), max_events=n_mem),
            "truth": truth_from["memorisation"]["truth"]
            if truth_from is not None
            else memorisation(ref_b, train_data, ref_a, int(seeds[1]), max_events=half),
        }
        result["n_events"]["memorisation_reference"] = n_mem
    return result


def headline(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The headline rows ``(metric, generated, truth vs truth)`` of an :func:`evaluate` result."""
    g, t = result["generated"], result["truth"]
    rows = [
        ("classifier AUC (0.5 = indistinguishable)", g["classifier_auc"], t["classifier_auc"]),
        ("mean per-column W1 / sigma", g["mean_column_w1"], t["mean_column_w1"]),
        ("MMD^2 (RBF)", g["mmd"], t["mmd"]),
        ("Frechet distance (not ranked)", g["frechet"], t["frechet"]),
        ("holes fraction phi_j1 vs phi_j2", g["holes"], t["holes"]),
        ("physicality (all checks)", g["physicality"]["all"], t["physicality"]["all"]),
    ]
    for name in ("m_jj", "m_jjj", "m_4j", "ht", "m_lj", "met", "m_ll"):
        if name in g.get("observables", {}):
            rows.append((f"{name}: W1 / sigma", g["observables"][name]["w1"], t["observables"][name]["w1"]))
    if "memorisation" in result:
        m = result["memorisation"]
        rows.append(
            ("memorisation ratio (1 = fresh, 0 = copies)", m["generated"]["ratio"], m["truth"]["ratio"])
        )
    return rows


def write_report(
    result: dict[str, Any],
    out_dir: str | Path,
    *,
    generated: EventTable | None = None,
    reference: EventTable | None = None,
    title: str = "eventgen evaluation",
    extra_rows: list[tuple[str, dict[str, Any]]] | None = None,
) -> Path:
    """Write ``metrics.json``, ``report.md`` and (with the tables and matplotlib) plots into ``out_dir``.

    ``extra_rows`` adds columns to the headline table: ``(label, evaluate-result)`` of other
    generators (baselines) evaluated on the same reference.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1, allow_nan=False))
    plots: list[str] = []
    if generated is not None and reference is not None:
        plots = plot_distributions(generated, reference, out)
    (out / "report.md").write_text(_markdown(result, title, plots, extra_rows or []))
    return out / "report.md"


def _markdown(
    result: dict[str, Any], title: str, plots: list[str], extra: list[tuple[str, dict[str, Any]]]
) -> str:
    labels = ["eventgen", *[label for label, _ in extra], "truth vs truth"]
    main = headline(result)
    others = [{name: value for name, value, _ in headline(r)} for _, r in extra]
    lines = [f"# {title}", ""]
    lines.append(
        f"Generated events against {result['n_events']['reference_half']} held-out events of the original "
        "simulation; the last column compares two independent halves of the held-out sample, the scale "
        "every number must be read against. Uncertainties are ± one standard error."
    )
    lines += ["", "| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, value, truth in main:
        cells = [_fmt(value), *[_fmt(o.get(name)) for o in others], _fmt(truth)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    g, t = result["generated"], result["truth"]
    lines += _comparison_table("Per column", "column", g["columns"], t["columns"], prior_art=True)
    if g.get("observables"):
        lines += _comparison_table("Derived observables", "observable", g["observables"], t["observables"])
    if "memorisation" in result:
        m = result["memorisation"]
        lines += [
            "",
            "## Memorisation",
            "",
            "Median distance of each event to its nearest training event over that to its nearest held-out "
            "event (standardised columns, equal-size samples): 1 for fresh events, 0 for copies.",
            "",
            f"- generated: ratio {_fmt(m['generated']['ratio'])}, closer to a training event than to a "
            f"held-out one: {_fmt(m['generated']['closer_to_train'])}",
            f"- truth (held-out half B): ratio {_fmt(m['truth']['ratio'])}, "
            f"closer to training: {_fmt(m['truth']['closer_to_train'])}",
        ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _comparison_table(
    title: str, what: str, generated: dict[str, Any], truth: dict[str, Any], prior_art: bool = False
) -> list[str]:
    """Markdown lines: per quantity, W1/σ and χ²/ndf of generated and of truth vs truth."""
    header = f"| {what} | W1/σ | truth W1/σ | χ²/ndf | truth χ²/ndf |" + (
        " prior-art χ² |" if prior_art else ""
    )
    lines = ["", f"## {title}", "", header, "|---" * (6 if prior_art else 5) + "|"]
    for name, m in generated.items():
        tm = truth[name]
        row = [_fmt(m["w1"]), _fmt(tm["w1"]), _fmt(m["chi2_ndf"]), _fmt(tm["chi2_ndf"])]
        row += [_fmt(m["de_chi2"])] if prior_art else []
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def plot_distributions(generated: EventTable, reference: EventTable, out_dir: Path) -> list[str]:
    """Histogram grids with ratio panels (columns, derived observables); returns the PNG names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install 'eventgen[plots]')")
        return []
    from eventgen.metrics import histogram_edges
    from eventgen.observables import derived_observables

    schema = reference.schema
    gen = _in_schema(generated, schema, "generated")
    sets = {
        "columns.png": {n: (gen[:, i], reference.data[:, i]) for i, n in enumerate(schema.names)},
    }
    og, orf = derived_observables(gen, schema), derived_observables(reference.data, schema)
    if og:
        sets["observables.png"] = {k: (og[k], orf[k]) for k in og if k in orf}
    names = []
    for file_name, series in sets.items():
        n = len(series)
        cols = 4
        rows = -(-n // cols)
        fig, axes = plt.subplots(
            2 * rows, cols, figsize=(4 * cols, 4 * rows), gridspec_kw={"height_ratios": [3, 1] * rows}
        )
        axes = np.atleast_2d(axes)
        for k, (name, (g, r)) in enumerate(series.items()):
            top, bottom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
            discrete = bool(r.size) and np.allclose(r, np.round(r)) and len(np.unique(r)) < 30
            edges = histogram_edges(r, 40, discrete=discrete) if r.size else np.linspace(0, 1, 41)
            hr, _ = np.histogram(np.clip(r, edges[0], edges[-1]), edges)
            hg, _ = np.histogram(np.clip(g, edges[0], edges[-1]), edges)
            wr, wg = 1 / max(hr.sum(), 1), 1 / max(hg.sum(), 1)
            top.stairs(hr * wr, edges, label="simulation", color="black")
            top.stairs(hg * wg, edges, label="eventgen", color="tab:red")
            top.set_title(name)
            if hr.max(initial=0) > 50 * max(np.median(hr), 1):
                top.set_yscale("log")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (hg * wg) / (hr * wr)
                err = ratio * np.sqrt(1 / np.maximum(hg, 1) + 1 / np.maximum(hr, 1))
            centres = 0.5 * (edges[1:] + edges[:-1])
            ok = (hr > 0) & (hg > 0)
            bottom.errorbar(centres[ok], ratio[ok], yerr=err[ok], fmt=".", color="tab:red", ms=3)
            bottom.axhline(1, color="black", lw=0.8)
            bottom.set_ylim(0.5, 1.5)
            bottom.set_ylabel("gen / sim")
            if k == 0:
                top.legend(fontsize=8)
        for k in range(n, rows * cols):
            axes[2 * (k // cols), k % cols].axis("off")
            axes[2 * (k // cols) + 1, k % cols].axis("off")
        fig.tight_layout()
        fig.savefig(out_dir / file_name, dpi=70)
        plt.close(fig)
        names.append(file_name)
    return names


def _in_schema(table: EventTable, schema: Schema, what: str) -> np.ndarray:
    """``table``'s events in ``schema``'s column order (extra columns such as ``weight`` dropped)."""
    positions = schema.check_columns(table.schema.names, f"the {what} events")
    return np.ascontiguousarray(table.data[:, positions])


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x[rng.permutation(len(x))]
    return x[rng.choice(len(x), n, replace=False)]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        v, e = value
        if v is None:
            return "–"
        return f"{v:.4g} ± {e:.2g}" if e is not None else f"{v:.4g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
