"""Figures of generated events against the simulation, for the report and for talks.

Distribution figures (one per column and per derived observable): the upper panel shows
the simulation's normalised histogram (filled, its statistical uncertainty hatched) and the
generated events (points with statistical error bars); the lower panel, sharing the x-axis,
the ratio generated / simulation with the simulation's relative uncertainty as a band around
one. Errors are statistical: sqrt(N) per bin for unweighted samples, sqrt(Σw²) for weighted
ones (a ``weight`` column of the generated events, written by weighted sampling). Entries
outside the plotted range are not dropped: they fill marked outer bins (underflow, overflow)
in both panels. Ratio points beyond the ratio panel's range are drawn as arrows at its edge,
and the y-axis is logarithmic when the simulation's bin contents span more than two decades.

Binning (from the simulation, by column kind): φ over [-π, π]; counts one bin per integer;
pseudorapidity over the simulation's range; energies, momenta and masses from the
simulation's minimum to its 99.5% quantile; anything else between its 0.5% and 99.5%
quantiles; bin widths rounded to 1, 2, 2.5 or 5 × 10^k. An object's kinematic columns are
shown for the events that have the object (pT > 0): absent objects are zero-filled, and a spike
at zero would hide the shape (the fraction of events with the object is printed on the figure,
and the count columns compare it).

The summary figure places every generator at (memorisation ratio, classifier AUC), with truth
vs truth — the ideal — marked, and the decoder ceiling's AUC as a band: no sampler of the
decoder can go below it.

Histograms are filled with Scikit-HEP ``hist`` and drawn with ``mplhep``: with matplotlib, the
optional ``plots`` extra (``pip install 'eventgen[plots]'``). Without it :func:`write_plots`
logs one warning and writes nothing. Figures are built on :class:`matplotlib.figure.Figure`
directly, so neither pyplot's state nor its backend is touched.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen.schema import Column, Schema

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import Locator

    from eventgen.io import EventTable

log = logging.getLogger(__name__)

PLOTS_EXTRA = "pip install 'eventgen[plots]'"
RATIO_RANGE: tuple[float, float] = (0.5, 1.5)
"""The ratio panel's y-range; points beyond it are arrows at its edge."""
LOG_DECADES = 2.0
"""The y-axis turns logarithmic when the simulation's non-empty bins span this many decades."""
DPI = 100
"""Figures are 10 × 10 inches (mplhep's ROOT style), so 1000 × 1000 pixels."""
BINS = 40
PNG_COLORS = 128
SIMULATION_COLOR = "#5790fc"
GENERATED_COLOR = "black"

_FAMILIES = {
    "j": "jet",
    "b": "b-jet",
    "l": "lepton",
    "e": "electron",
    "mu": "muon",
    "m": "muon",
    "a": "photon",
}
_SYMBOLS = {"energy": "$E$", "pt": r"$p_{\mathrm{T}}$", "eta": r"$\eta$", "phi": r"$\phi$"}
_NAMED = {
    "met": r"$E_{\mathrm{T}}^{\mathrm{miss}}$",
    "met_phi": r"$\phi(E_{\mathrm{T}}^{\mathrm{miss}})$",
    "m_jj": r"$m_{jj}$ (two leading jets)",
    "m_jjj": r"$m_{jjj}$ (closest to $m_t$)",
    "m_4j": r"$m_{4j}$ (four leading jets)",
    "ht": r"$H_{\mathrm{T}}$",
    "m_lj": r"$m_{\ell j}$ (leading lepton and jet)",
    "m_ll": r"$m_{\ell\ell}$ (two leading leptons)",
}
_OBSERVABLE_KIND = "energy"  # every derived observable is a mass or a momentum sum in GeV


# ----------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Binned:
    """A histogram with its flow bins: ``values`` and ``variances`` ``(n_bins + 2,)``, underflow first."""

    edges: np.ndarray  # (n_bins + 1,)
    values: np.ndarray
    variances: np.ndarray

    def normalised(self) -> Binned:
        """Fractions of the total (flow included) and their variances."""
        total = float(self.values.sum())
        scale = 1.0 / total if total > 0 else 0.0
        return Binned(self.edges, self.values * scale, self.variances * scale**2)


@dataclass(frozen=True)
class Ratio:
    """Per bin, ``numerator / denominator`` of two normalised histograms, ``(n_bins,)`` each.

    ``value`` is NaN where both are empty and inf where only the denominator is; ``error`` is the
    numerator's statistical error over the denominator; ``band`` the denominator's relative error.
    ``above`` / ``below`` flag the bins whose ratio lies beyond the panel's range (they are drawn as
    arrows at its edge), ``shown`` those drawn as points.
    """

    value: np.ndarray
    error: np.ndarray
    band: np.ndarray
    above: np.ndarray
    below: np.ndarray
    shown: np.ndarray


def fill(x: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> Binned:
    """Histogram ``x`` ``(n,)`` (weights ``(n,)`` or None) in ``edges`` with under- and overflow bins."""
    import hist

    h = hist.Hist(hist.axis.Variable(edges, underflow=True, overflow=True), storage=hist.storage.Weight())
    h.fill(
        np.asarray(x, dtype=np.float64), weight=None if weights is None else np.asarray(weights, np.float64)
    )
    return Binned(np.asarray(edges, np.float64), h.values(flow=True), h.variances(flow=True))


def ratio(
    numerator: np.ndarray,
    numerator_var: np.ndarray,
    denominator: np.ndarray,
    denominator_var: np.ndarray,
    limits: tuple[float, float] = RATIO_RANGE,
) -> Ratio:
    """The :class:`Ratio` of two histograms ``(n_bins,)`` given with their variances."""
    num, den = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(den > 0, num / den, np.where(num > 0, np.inf, np.nan))
        error = np.where(den > 0, np.sqrt(numerator_var) / den, np.nan)
        band = np.where(den > 0, np.sqrt(denominator_var) / den, 0.0)
    filled = (num > 0) | (den > 0)
    above = filled & (value > limits[1])
    below = filled & (value < limits[0])
    return Ratio(value, error, band, above, below, filled & ~above & ~below)


def plot_edges(reference: np.ndarray, kind: str, bins: int = BINS) -> np.ndarray:
    """Bin edges ``(n_bins + 1,)`` for a quantity of column ``kind`` from the simulation's ``reference`` values.

    See the module docstring for the ranges; ``reference`` must hold at least one finite value.
    """
    r = np.asarray(reference, np.float64)
    r = r[np.isfinite(r)]
    if kind == "phi":
        return np.linspace(-math.pi, math.pi, bins + 1)
    if kind == "count":
        lo, hi = math.floor(r.min() + 0.5), math.floor(r.max() + 0.5)
        return np.arange(lo, hi + 2, dtype=np.float64) - 0.5
    if kind == "eta":
        lo, hi = float(r.min()), float(r.max())
    elif kind in ("energy", "pt"):
        lo, hi = float(r.min()), float(np.quantile(r, 0.995))
    else:
        lo, hi = (float(q) for q in np.quantile(r, [0.005, 0.995]))
    if hi <= lo:
        return np.linspace(lo - 0.5, lo + 0.5, 11)
    width = _nice_width((hi - lo) / bins)
    start, stop = math.floor(lo / width + 1e-9), math.ceil(hi / width - 1e-9)
    return np.arange(start, max(stop, start + 1) + 1) * width


def _nice_width(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at least ``raw``."""
    scale = 10.0 ** math.floor(math.log10(raw))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= raw * (1 - 1e-9))


def quantity_label(name: str, column: Column | None = None) -> str:
    """An axis label (without unit) for a schema column or a derived observable called ``name``."""
    if name in _NAMED:
        return _NAMED[name]
    if column is not None and column.obj:
        family = column.obj.rstrip("0123456789")
        rank = column.obj[len(family) :]
        noun = _FAMILIES.get(family, family)
        if column.kind == "count":
            return f"number of {noun}s"
        if column.kind in _SYMBOLS:
            return f"{noun} {rank} {_SYMBOLS[column.kind]}".replace("  ", " ")
    return name.replace("_", " ")


# ----------------------------------------------------------------------------- figures


def comparison_figure(
    reference: np.ndarray,
    generated: np.ndarray,
    edges: np.ndarray,
    *,
    xlabel: str,
    unit: str = "",
    reference_weights: np.ndarray | None = None,
    generated_weights: np.ndarray | None = None,
    labels: tuple[str, str] = ("simulation", "eventgen"),
    notes: Sequence[str] = (),
    discrete: bool = False,
    ratio_range: tuple[float, float] = RATIO_RANGE,
) -> Figure:
    """Histogram of ``reference`` and ``generated`` ``(n,)`` with a ratio panel below, sharing the x-axis.

    Both samples are normalised to unit sum (flow bins included). ``notes`` are extra text lines
    printed under the label in the upper panel. Returns a figure with two axes, the histogram
    first; off-scale ratio points are line artists with gid ``offscale-above`` / ``offscale-below``,
    the flow bins spans with gid ``underflow`` / ``overflow``.
    """
    import mplhep as hep
    from matplotlib.figure import Figure

    sim = fill(reference, edges, reference_weights).normalised()
    gen = fill(generated, edges, generated_weights).normalised()
    under = sim.values[0] > 0 or gen.values[0] > 0
    over = sim.values[-1] > 0 or gen.values[-1] > 0
    keep = slice(0 if under else 1, None if over else -1)
    shown = np.concatenate(
        [
            [edges[0] - (edges[1] - edges[0])] if under else [],
            edges,
            [edges[-1] + (edges[-1] - edges[-2])] if over else [],
        ]
    )
    s, s_var, g, g_var = sim.values[keep], sim.variances[keep], gen.values[keep], gen.variances[keep]
    with plot_style():
        fig = Figure(figsize=(10, 10), dpi=DPI)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0})
        fig.subplots_adjust(left=0.15, right=0.96, top=0.94, bottom=0.1)
        hep.histplot(s, shown, histtype="fill", color=SIMULATION_COLOR, alpha=0.45, ax=top, label=labels[0])
        hep.histplot(s, shown, histtype="step", color=SIMULATION_COLOR, lw=2, ax=top)
        band = np.sqrt(s_var)
        top.stairs(
            s + band,
            shown,
            baseline=s - band,
            fill=False,
            hatch="////",
            color="#2c5aa0",
            lw=0,
            label="sim. stat. unc.",
        )
        hep.histplot(
            g,
            shown,
            yerr=np.sqrt(g_var),
            histtype="errorbar",
            color=GENERATED_COLOR,
            ax=top,
            label=labels[1],
            markersize=7,
            xerr=not discrete,
        )
        _y_range(top, s, g + np.sqrt(g_var))
        width = edges[1] - edges[0]
        per_bin = "" if discrete else f" / {width:.3g}{' ' + unit if unit else ''}"
        top.set_ylabel(f"Fraction of events{per_bin}")
        _header(top, "generated vs. simulation", f"{len(reference):,} sim. / {len(generated):,} gen. events")
        if notes:
            top.text(0.04, 0.96, "\n".join(notes), transform=top.transAxes, va="top", ha="left", fontsize=16)
        top.legend(loc="upper right", fontsize=19)

        r = ratio(g, g_var, s, s_var, ratio_range)
        _ratio_panel(bottom, shown, r, ratio_range)
        bottom.set_ylabel(f"{labels[1]} / sim.", fontsize=20)
        bottom.set_xlabel(f"{xlabel} [{unit}]" if unit else xlabel)
        for flag, span, text in ((under, shown[:2], "underflow"), (over, shown[-2:], "overflow")):
            if flag:
                for ax in (top, bottom):
                    ax.axvspan(*span, color="0.85", alpha=0.6, lw=0, zorder=0, gid=text)
                top.text(
                    span.mean(),
                    0.5,
                    text,
                    transform=top.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="center",
                    fontsize=13,
                    color="0.25",
                )
        bottom.set_xlim(shown[0], shown[-1])
        if discrete:
            bottom.set_xticks(np.arange(math.ceil(shown[0]), shown[-1]))
            bottom.xaxis.set_minor_locator(_null_locator())
    return fig


def _ratio_panel(ax: Axes, edges: np.ndarray, r: Ratio, limits: tuple[float, float]) -> None:
    """Ratio points with errors, the reference's uncertainty band around one, off-scale arrows at the edges."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.stairs(1 + r.band, edges, baseline=1 - r.band, fill=True, color=SIMULATION_COLOR, alpha=0.35, lw=0)
    ax.axhline(1.0, color="0.3", lw=1.5)
    ax.errorbar(
        centres[r.shown],
        r.value[r.shown],
        yerr=r.error[r.shown],
        fmt="o",
        color=GENERATED_COLOR,
        markersize=6,
        elinewidth=1.5,
        capsize=0,
    )
    lo, hi = limits
    pad = 0.1 * (hi - lo)
    for flags, y, marker, gid in (
        (r.above, hi - pad, "^", "offscale-above"),
        (r.below, lo + pad, "v", "offscale-below"),
    ):
        ax.plot(
            centres[flags],
            np.full(flags.sum(), y),
            marker,
            color="#e42536",
            markersize=11,
            ls="none",
            gid=gid,
        )
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, prune="both"))  # no label on the panels' border


def auc_memorisation_figure(results: Sequence[tuple[str, dict[str, Any]]]) -> Figure | None:
    """Classifier AUC against memorisation ratio, one point per ``(label, evaluate-result)``.

    The truth-vs-truth point (two independent simulated samples: fresh and indistinguishable)
    and the decoder ceiling (a horizontal band, when evaluated) come from the first result.
    Results without a memorisation check are left out; None if none has one.
    """
    from matplotlib.figure import Figure

    points = [(label, r) for label, r in results if "memorisation" in r]
    if not points:
        return None
    truth = points[0][1]
    rows = [
        (label, r["memorisation"]["generated"]["ratio"], r["generated"]["classifier_auc"])
        for label, r in points
    ]
    rows.append(
        ("truth vs truth (ideal)", truth["memorisation"]["truth"]["ratio"], truth["truth"]["classifier_auc"])
    )
    markers = ["o", "s", "D", "P", "X", "v", "<", ">", "h", "p"]
    colors = ["black", "#f89c20", "#964a8b", "#9c9ca1", "#7a21dd", "#e42536", "#5790fc"]
    with plot_style():
        fig = Figure(figsize=(13, 9), dpi=DPI)
        ax = fig.subplots()
        fig.subplots_adjust(left=0.11, right=0.7, top=0.92, bottom=0.12)
        ax.axhline(0.5, color="0.5", ls=":", lw=1.5)
        ax.axvline(1.0, color="0.5", ls=":", lw=1.5)
        ceiling = truth.get("ceiling", {}).get("classifier_auc", [None, None])
        if ceiling[0] is not None:
            c, ce = ceiling[0], ceiling[1] or 0.0
            ax.axhspan(c - ce, c + ce, color="#3f90da", alpha=0.25, lw=0)
            ax.axhline(c, color="#3f90da", ls="--", lw=2, label="decoder ceiling")
            rows_low = c - ce
        for k, (label, (x, xe), (y, ye)) in enumerate(rows):
            is_truth = k == len(rows) - 1
            if x is None or y is None:
                continue
            ax.errorbar(
                x,
                y,
                xerr=xe or 0,
                yerr=ye or 0,
                fmt="*" if is_truth else markers[k % len(markers)],
                color="#2c5aa0" if is_truth else colors[k % len(colors)],
                markersize=22 if is_truth else 16 if k == 0 else 13,
                zorder=4 if k == 0 else 3,
                capsize=0,
                elinewidth=2,
                label=label,
            )
        xs = [x + (xe or 0) for _, (x, xe), _ in rows if x is not None]
        ys = [y - (ye or 0) for _, _, (y, ye) in rows if y is not None]
        if ceiling[0] is not None:
            ys.append(rows_low)
        ax.set_xlim(-0.03, max(1.2, *[x + 0.05 for x in xs]))
        ax.set_ylim(min(0.45, *[y - 0.02 for y in ys]), 1.02)
        ax.set_xlabel("memorisation ratio (0 = copies, 1 = fresh)")
        ax.set_ylabel("classifier AUC (0.5 = indistinguishable)")
        hint: dict[str, Any] = {"ha": "left", "fontsize": 15, "color": "0.35", "style": "italic"}
        ax.text(0.0, 0.465, "← copies training events", va="bottom", **hint)
        ax.text(0.0, 1.005, "↑ separable from the simulation", va="top", **hint)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=17, borderaxespad=0)
        _header(ax, "fidelity vs. novelty")
    return fig


def plot_style() -> contextlib.AbstractContextManager[None]:
    """The style of every figure here (mplhep's ROOT style); also wrap any rendering (``savefig``) in it."""
    import mplhep as hep
    from matplotlib import style

    return style.context(hep.style.ROOT)


def _y_range(ax: Axes, sim: np.ndarray, gen_high: np.ndarray) -> None:
    """Log scale when the simulation spans :data:`LOG_DECADES`; head-room for the legend and label."""
    positive = sim[sim > 0]
    peak = float(max(sim.max(initial=0), gen_high.max(initial=0)))
    if peak <= 0:
        return
    floor = float(positive.min()) if positive.size else peak
    if peak / floor >= 10**LOG_DECADES:
        ax.set_yscale("log")
        decades = math.log10(peak / floor)
        ax.set_ylim(floor / 3, peak * 10 ** (0.5 * decades))
    else:
        ax.set_ylim(0, 1.5 * peak)
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(prune="lower"))  # 0 would touch the ratio panel's labels


def _header(ax: Axes, text: str, right: str = "") -> None:
    """The figure's label above the axes: bold "eventgen", then ``text`` in italics; ``right`` at the right."""
    bold = ax.text(0, 1.012, "eventgen", transform=ax.transAxes, fontsize=25, weight="bold", va="bottom")
    ax.annotate(f" {text}", xy=(1, 0), xycoords=bold, va="bottom", fontsize=21, style="italic")
    if right:
        ax.text(1, 1.012, right, transform=ax.transAxes, fontsize=17, ha="right", va="bottom")


def _null_locator() -> Locator:
    from matplotlib.ticker import NullLocator

    return NullLocator()


# ----------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Plot:
    """A figure written by :func:`write_plots`: ``group`` is ``columns``, ``observables`` or ``summary``."""

    group: str
    name: str
    path: str  # relative to the report directory


def plots_available() -> bool:
    """Whether matplotlib, hist and mplhep (the ``plots`` extra) import."""
    try:
        import hist  # noqa: F401
        import matplotlib  # noqa: F401
        import mplhep  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(
    out_dir: str | Path,
    generated: EventTable,
    reference: EventTable,
    results: Sequence[tuple[str, dict[str, Any]]] = (),
) -> list[Plot]:
    """Write the figures as PNG files under ``out_dir/plots``; returns them in report order.

    ``generated`` may carry a ``weight`` column (weighted sampling); ``results`` are
    ``(label, evaluate-result)`` pairs, eventgen's first: they add the W1/σ of each quantity to
    its figure and give the AUC-versus-memorisation figure. Without the ``plots`` extra: one
    warning, no files.
    """
    if not plots_available():
        log.warning("matplotlib, hist or mplhep is not installed: the report has no plots (%s)", PLOTS_EXTRA)
        return []
    from eventgen.observables import derived_observables

    out = Path(out_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    schema = reference.schema
    gen, gen_w = _events_and_weights(generated, schema)
    ref, ref_w = _events_and_weights(reference, schema)
    metrics = results[0][1] if results else None
    written: list[Plot] = []

    def save(fig: Figure | None, group: str, name: str) -> None:
        if fig is None:
            return
        path = out / f"{name}.png"
        save_png(fig, path)
        written.append(Plot(group, name, f"plots/{path.name}"))

    owners = {o.name: o.pt for o in schema.objects()}
    for i, c in enumerate(schema.columns):
        r_mask = ref[:, owners[c.obj]] > 0 if c.obj in owners else np.ones(len(ref), bool)
        g_mask = gen[:, owners[c.obj]] > 0 if c.obj in owners else np.ones(len(gen), bool)
        notes = _notes(metrics, "columns", c.name)
        if c.obj in owners:
            noun = quantity_label(c.name, c).rsplit(" ", 1)[0]
            notes.append(f"{noun} present: {r_mask.mean():.1%} sim., {g_mask.mean():.1%} gen.")
        save(
            _figure(
                ref[r_mask, i],
                gen[g_mask, i],
                _sub(ref_w, r_mask),
                _sub(gen_w, g_mask),
                c.kind,
                quantity_label(c.name, c),
                c.unit,
                notes,
            ),
            "columns",
            c.name,
        )
    obs_r = derived_observables(ref, schema, keep_undefined=True)
    obs_g = derived_observables(gen, schema, keep_undefined=True)
    for name, r_values in obs_r.items():
        if name in schema.names:  # met: the column itself, already drawn
            continue
        r_ok, g_ok = np.isfinite(r_values), np.isfinite(obs_g[name])
        fig = _figure(
            r_values[r_ok],
            obs_g[name][g_ok],
            _sub(ref_w, r_ok),
            _sub(gen_w, g_ok),
            _OBSERVABLE_KIND,
            quantity_label(name),
            "GeV",
            _notes(metrics, "observables", name),
        )
        save(fig, "observables", name)
    save(auc_memorisation_figure(results), "summary", "auc_vs_memorisation")
    return written


def _figure(
    ref: np.ndarray,
    gen: np.ndarray,
    ref_w: np.ndarray | None,
    gen_w: np.ndarray | None,
    kind: str,
    label: str,
    unit: str,
    notes: list[str],
) -> Figure | None:
    if ref.size == 0 or not np.isfinite(ref).any():
        return None
    weighted = gen_w is not None
    return comparison_figure(
        ref,
        gen,
        plot_edges(ref, kind),
        xlabel=label,
        unit=unit,
        reference_weights=ref_w,
        generated_weights=gen_w,
        notes=notes,
        discrete=kind == "count",
        labels=("simulation", "eventgen (weighted)" if weighted else "eventgen"),
    )


def _notes(metrics: dict[str, Any] | None, group: str, name: str) -> list[str]:
    """``W1/σ`` of generated and of truth vs truth for one quantity, when the result has them."""
    if metrics is None or name not in metrics["generated"].get(group, {}):
        return []
    g, t = metrics["generated"][group][name]["w1"], metrics["truth"][group][name]["w1"]
    if g[0] is None or t[0] is None:
        return []
    return [rf"$W_1/\sigma$ = {g[0]:.3f} $\pm$ {g[1]:.3f}  (truth vs truth {t[0]:.3f})"]


def save_png(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG of :data:`PNG_COLORS` colours (a third of the bytes; the report embeds every figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # a matplotlib dependency

    canvas = FigureCanvasAgg(fig)
    with plot_style():
        canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    image.convert("RGB").quantize(colors=PNG_COLORS, method=Image.Quantize.FASTOCTREE).save(
        path, format="png"
    )


def _events_and_weights(table: EventTable, schema: Schema) -> tuple[np.ndarray, np.ndarray | None]:
    """``table``'s events in ``schema``'s columns and its ``weight`` column (None when it has none)."""
    positions = schema.check_columns(table.schema.names, "the events to plot")
    weights = None
    if "weight" in table.schema.names and "weight" not in schema.names:
        weights = table.data[:, table.schema.index("weight")].astype(np.float64)
    return np.ascontiguousarray(table.data[:, positions]), weights


def _sub(weights: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[mask]
