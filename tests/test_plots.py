"""Figures: binning, flow bins, ratio panel logic, shared axes, off-scale markers, the summary figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from eventgen.io import EventTable, read_events
from eventgen.plots import (
    auc_memorisation_figure,
    comparison_figure,
    fill,
    plot_edges,
    quantity_label,
    ratio,
    write_plots,
)
from eventgen.schema import Schema

pytest.importorskip("hist")
pytest.importorskip("mplhep")
pytest.importorskip("matplotlib")

DATA = Path(__file__).parent / "data" / "ttbar_small.parquet"


def test_ratio_flags_off_scale_points() -> None:
    # bins: in range, above, below, only generated (inf), both empty, only simulation (0)
    num = np.array([1.0, 3.0, 0.2, 2.0, 0.0, 0.0])
    den = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 4.0])
    r = ratio(num, num, den, 4 * den, limits=(0.5, 1.5))
    np.testing.assert_array_equal(r.above, [False, True, False, True, False, False])
    np.testing.assert_array_equal(r.below, [False, False, True, False, False, True])
    np.testing.assert_array_equal(r.shown, [True, False, False, False, False, False])
    np.testing.assert_allclose(r.value[[0, 1, 2, 5]], [1.0, 3.0, 0.2, 0.0])
    assert r.value[3] == np.inf and np.isnan(r.value[4])
    np.testing.assert_allclose(r.error[0], 1.0)  # sqrt(var_num) / den
    np.testing.assert_allclose(r.band[[0, 5]], [2.0, 1.0])  # sqrt(4 den) / den


def test_fill_keeps_flow_and_sums_squared_weights() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    b = fill(np.array([-1.0, 0.5, 0.5, 1.5, 7.0, 9.0]), edges, np.array([1.0, 2.0, 3.0, 1.0, 0.5, 0.5]))
    np.testing.assert_allclose(b.values, [1.0, 5.0, 1.0, 1.0])  # underflow, two bins, overflow
    np.testing.assert_allclose(b.variances, [1.0, 13.0, 1.0, 0.5])
    n = b.normalised()
    np.testing.assert_allclose(n.values.sum(), 1.0)
    np.testing.assert_allclose(n.variances, b.variances / 64)
    plain = fill(np.array([0.5, 0.5, 0.5]), edges)
    np.testing.assert_allclose(plain.variances, plain.values)  # Poisson


@pytest.mark.parametrize("kind", ["pt", "energy", "eta", "generic"])
def test_plot_edges_are_round_and_cover_the_bulk(kind: str, rng: np.random.Generator) -> None:
    x = 20 + rng.exponential(60, 5000) if kind in ("pt", "energy") else rng.normal(0.3, 1.2, 5000)
    edges = plot_edges(x, kind)
    width = edges[1] - edges[0]
    np.testing.assert_allclose(np.diff(edges), width)
    mantissa = width / 10 ** math.floor(math.log10(width))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-9
    assert 20 <= len(edges) - 1 <= 100
    assert edges[-1] >= np.quantile(x, 0.995)
    if kind in ("pt", "energy", "eta"):
        assert edges[0] <= x.min() < edges[0] + width  # from the minimum: no underflow of the simulation
    else:
        assert edges[0] <= np.quantile(x, 0.005)


def test_plot_edges_of_angles_counts_and_constants() -> None:
    np.testing.assert_allclose(plot_edges(np.array([0.1, 0.2]), "phi")[[0, -1]], [-math.pi, math.pi])
    np.testing.assert_array_equal(plot_edges(np.array([2.0, 4.0, 3.0]), "count"), [1.5, 2.5, 3.5, 4.5])
    edges = plot_edges(np.full(10, 7.0), "pt")
    assert edges[0] < 7.0 < edges[-1]


def test_labels_name_objects_and_units() -> None:
    schema = read_events(DATA).schema
    assert quantity_label("j2_pt", schema.columns[schema.index("j2_pt")]) == r"jet 2 $p_{\mathrm{T}}$"
    assert quantity_label("n_leptons", schema.columns[schema.index("n_leptons")]) == "number of leptons"
    assert "miss" in quantity_label("met") and "m_t" in quantity_label("m_jjj")
    assert quantity_label("my_column") == "my column"


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_comparison_figure_shares_x_shows_flow_and_marks_off_scale(rng: np.random.Generator) -> None:
    edges = np.linspace(0.0, 10.0, 11)
    sim = rng.uniform(0, 10, 20_000)
    gen = np.concatenate(
        [rng.uniform(0, 10, 15_000), np.full(3000, 2.5), np.full(50, 12.0), np.full(40, -3.0)]
    )
    fig = comparison_figure(sim, gen, edges, xlabel="x", unit="GeV", notes=["a note"])
    top, bottom = fig.axes
    assert top.get_xlim() == bottom.get_xlim() == (-1.0, 11.0)  # one flow bin on each side
    assert top.get_shared_x_axes().joined(top, bottom)
    assert bottom.get_xlabel() == "x [GeV]" and top.get_ylabel() == "Fraction of events / 1 GeV"
    assert {"underflow", "overflow", "a note"} <= set(_texts(top))
    assert {p.get_gid() for p in top.patches} >= {"underflow", "overflow"}
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "simulation",
        "sim. stat. unc.",
        "eventgen",
    ]
    assert top.get_yscale() == "linear"

    marks = {line.get_gid(): line for line in bottom.get_lines() if line.get_gid()}
    # bin [2, 3) holds 3000 extra events: ratio ~ 2.3, off the (0.5, 1.5) panel; the flow bins are
    # empty in the simulation: ratio inf; no bin falls below
    np.testing.assert_allclose(sorted(marks["offscale-above"].get_xdata()), [-0.5, 2.5, 10.5])
    assert len(marks["offscale-below"].get_xdata()) == 0
    ylo, yhi = bottom.get_ylim()
    assert (ylo, yhi) == (0.5, 1.5)
    assert all(ylo < y < yhi for y in marks["offscale-above"].get_ydata())


def test_comparison_figure_goes_log_over_decades(rng: np.random.Generator) -> None:
    x = rng.exponential(30, 20_000)
    edges = plot_edges(x, "pt")
    fig = comparison_figure(x, x[::-1], edges, xlabel="p", unit="GeV")
    top, bottom = fig.axes
    assert top.get_yscale() == "log"
    assert top.get_xlim() == bottom.get_xlim() == (edges[0], edges[-1] + edges[1] - edges[0])  # overflow
    discrete = comparison_figure(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 3]), plot_edges(x[:1], "count"),
                                 xlabel="n", discrete=True)  # fmt: skip
    assert discrete.axes[0].get_ylabel() == "Fraction of events"


def test_weighted_points_and_errors_use_the_weights(rng: np.random.Generator) -> None:
    edges = np.linspace(0.0, 1.0, 5)
    sim, gen = rng.uniform(0, 1, 4000), rng.uniform(0, 1, 4000)
    w = np.where(gen < 0.5, 3.0, 1.0)
    fig = comparison_figure(
        sim, gen, edges, xlabel="x", generated_weights=w, labels=("sim", "gen (weighted)")
    )
    top = fig.axes[0]
    points = top.containers[0]
    assert points.get_label() == "gen (weighted)"
    expected = fill(gen, edges, w).normalised()
    np.testing.assert_allclose(points.lines[0].get_ydata(), expected.values[1:-1])
    segments = points.lines[2][-1].get_segments()  # vertical error bars: (y - e, y + e)
    half = np.array([abs(s[1][1] - s[0][1]) / 2 for s in segments])
    np.testing.assert_allclose(half, np.sqrt(expected.variances[1:-1]))  # sqrt(sum w^2), normalised


def _result(auc: float, ratio_: float, truth_auc: float = 0.5, truth_ratio: float = 1.0) -> dict:
    return {
        "generated": {"classifier_auc": [auc, 0.01]},
        "truth": {"classifier_auc": [truth_auc, 0.01]},
        "memorisation": {"generated": {"ratio": [ratio_, 0.02]}, "truth": {"ratio": [truth_ratio, 0.02]}},
    }


def test_auc_versus_memorisation_places_every_generator() -> None:
    results = [("eventgen", _result(0.6, 0.66, 0.51, 0.98)), ("±5% smearing", _result(0.65, 0.14))]
    results.append(("no train sample", {"generated": {"classifier_auc": [0.9, 0.01]}}))
    fig = auc_memorisation_figure(results)
    assert fig is not None
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["eventgen", "±5% smearing", "truth vs truth (ideal)"]
    points = {c.get_label(): c.lines[0].get_xydata()[0] for c in ax.containers}
    np.testing.assert_allclose(points["eventgen"], [0.66, 0.6])
    np.testing.assert_allclose(points["±5% smearing"], [0.14, 0.65])
    np.testing.assert_allclose(points["truth vs truth (ideal)"], [0.98, 0.51])  # from the first result
    assert ax.containers[-1].lines[0].get_marker() == "*"
    assert auc_memorisation_figure([("eventgen", {"generated": {}})]) is None


def test_write_plots_one_png_per_quantity_with_weights(tmp_path: Path) -> None:
    table = read_events(DATA)
    keep = ["met", "met_phi", "j1_pt", "j1_eta", "n_jets"]
    schema = Schema("small", tuple(c for c in table.schema.columns if c.name in keep))
    idx = [table.schema.index(n) for n in schema.names]
    reference = EventTable(table.data[:1500][:, idx], schema)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, (1500, 1)).astype(np.float32)
    gen_schema = Schema("weighted", (*schema.columns, type(schema.columns[0])("weight", "generic")))
    generated = EventTable(np.hstack([table.data[1500:][:, idx], weights]), gen_schema)
    plots = write_plots(tmp_path, generated, reference)
    assert [p.name for p in plots] == [*keep, "ht"]  # the met observable is the met column: drawn once
    assert {p.group for p in plots} == {"columns", "observables"}  # no results: no summary figure
    from PIL import Image

    for p in plots:
        path = tmp_path / p.path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        with Image.open(path) as image:
            assert image.size == (1000, 1000)
