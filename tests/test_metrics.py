"""Metrics: known answers on constructed samples at fixed seeds, with stated tolerances."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eventgen.errors import InputError
from eventgen.io import read_events
from eventgen.metrics import (
    central_range,
    chi2_ndf,
    classifier_auc,
    compare,
    frechet_distance,
    histogram_edges,
    holes_fraction,
    memorisation,
    mmd,
    physicality,
    prior_art_chi2,
    wasserstein,
    width_ratio,
)
from eventgen.schema import BUILTIN_SCHEMAS

TTBAR = BUILTIN_SCHEMAS["ttbar"]


# --------------------------------------------------------------------------- Wasserstein


def test_wasserstein_of_identical_samples_is_zero(rng: np.random.Generator) -> None:
    a = rng.normal(size=1000)
    assert wasserstein(a, a.copy(), seed=0)[0] == 0.0


def test_wasserstein_same_distribution_is_small(rng: np.random.Generator) -> None:
    # E[W1] of two N(0, 1) samples of 20k events is ~0.01; the bias is why a baseline is needed.
    value, error = wasserstein(rng.normal(size=20_000), rng.normal(size=20_000), seed=1)
    assert 0.0 < value < 0.03
    assert 0.0 < error < 0.02


@pytest.mark.parametrize("delta", [0.2, 0.5, 1.5])
def test_wasserstein_of_shifted_gaussians_is_the_shift(rng: np.random.Generator, delta: float) -> None:
    sigma = 3.0  # W1 = δσ in raw units, δ relative to the reference's σ
    a, b = rng.normal(delta * sigma, sigma, 20_000), rng.normal(0.0, sigma, 20_000)
    value, error = wasserstein(a, b, seed=2)
    assert abs(value - delta) < max(4 * error, 0.02)


def test_wasserstein_of_scaled_gaussians_and_explicit_scale(rng: np.random.Generator) -> None:
    # W1(N(0, s1), N(0, s2)) = |s1 - s2| E|Z| = |s1 - s2| sqrt(2/π)
    a, b = rng.normal(0.0, 2.0, 20_000), rng.normal(0.0, 1.0, 20_000)
    value, error = wasserstein(a, b, seed=3, scale=1.0)
    assert abs(value - math.sqrt(2 / math.pi)) < max(4 * error, 0.02)


def test_wasserstein_is_reproducible_from_the_seed(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=3000), rng.normal(size=5000)
    assert wasserstein(a, b, seed=7, max_events=1000) == wasserstein(a, b, seed=7, max_events=1000)
    assert wasserstein(a, b, seed=7)[1] != wasserstein(a, b, seed=8)[1]


# --------------------------------------------------------------------------- χ² figures


def test_chi2_ndf_of_same_distribution_with_unequal_sizes_is_one(rng: np.random.Generator) -> None:
    values = [chi2_ndf(rng.normal(size=5_000), rng.normal(size=20_000), bins=40) for _ in range(20)]
    mean_value = np.mean([v for v, _ in values])
    error = values[0][1]
    assert error == pytest.approx(math.sqrt(2 / 39))  # no empty bins here: ndf = 39
    assert abs(mean_value - 1.0) < 3 * error / math.sqrt(len(values))
    assert np.std([v for v, _ in values]) == pytest.approx(error, rel=0.5)  # the error is the spread


def test_chi2_ndf_of_shifted_distributions_is_large(rng: np.random.Generator) -> None:
    value, error = chi2_ndf(rng.normal(0.2, 1, 20_000), rng.normal(size=20_000))
    assert value > 1 + 10 * error


def test_chi2_ndf_of_counts_with_integer_bins(rng: np.random.Generator) -> None:
    a, b = rng.poisson(3.0, 10_000).astype(float), rng.poisson(3.0, 10_000).astype(float)
    edges = histogram_edges(b, discrete=True)
    np.testing.assert_array_equal(edges, np.arange(b.min(), b.max() + 2) - 0.5)
    value, error = chi2_ndf(a, b, edges)
    assert abs(value - 1.0) < 3 * error


def test_central_range_is_the_10_to_90_percent_quantiles_weighted_or_not(rng: np.random.Generator) -> None:
    x = rng.normal(91.0, 2.0, 20_000)
    assert central_range(x) == tuple(np.quantile(x, [0.1, 0.9]))
    lo, hi = central_range(x)
    assert abs(lo - (91.0 - 1.2816 * 2.0)) < 0.1 and abs(hi - (91.0 + 1.2816 * 2.0)) < 0.1
    # an integer weight counts as that many copies of the event
    w = rng.integers(1, 4, x.size)
    np.testing.assert_allclose(central_range(x, w), central_range(np.repeat(x, w)), atol=2e-3)
    assert central_range(x, np.ones(x.size), fraction=0.5) == pytest.approx(
        tuple(np.quantile(x, [0.25, 0.75])), abs=2e-3
    )
    # a peak 10% wider is found 10% wider, to within its bootstrap error
    ratio, error = width_ratio(rng.normal(91.0, 2.2, 20_000), x, seed=3)
    assert 0 < error < 0.03 and abs(ratio - 1.1) < 3 * error
    assert all(math.isnan(v) for v in width_ratio(x, np.full(100, 91.0), seed=3))  # no width to compare to


def test_chi2_ndf_is_undefined_with_a_single_filled_bin() -> None:
    assert all(math.isnan(x) for x in chi2_ndf(np.zeros(10), np.zeros(10)))


def test_prior_art_chi2_known_values(rng: np.random.Generator) -> None:
    a = rng.normal(size=5_000)
    assert prior_art_chi2(a, a.copy()) == 0.0
    assert prior_art_chi2(a[::-1], a) == 0.0  # order does not matter
    # disjoint supports: every bin has p or q zero, Σ (p - q)² / (p + q) = Σ p + Σ q = 2
    assert prior_art_chi2(np.full(100, 10.0), np.linspace(0, 1, 100), bins=[0, 5, 20]) == pytest.approx(2.0)


def test_histograms_fold_outliers_into_edge_bins() -> None:
    ref = np.linspace(0, 1, 1001)
    gen = np.r_[ref, [-100.0, 100.0]]  # two outliers land in the edge bins, not outside
    assert prior_art_chi2(gen, ref, bins=[0.0, 0.5, 1.0]) == pytest.approx(0.0, abs=1e-5)
    edges = histogram_edges(ref, 25)
    assert edges.shape == (26,)
    np.testing.assert_allclose(edges[[0, -1]], np.quantile(ref, [0.005, 0.995]))


def test_weighted_wasserstein_sees_the_weighted_distribution(rng: np.random.Generator) -> None:
    # x ~ U(0, 1) weighted by 2x has the density 2x of sqrt(U); unweighted, W1 = ∫ (x − x²) dx = 1/6
    x = rng.uniform(size=40_000)
    w = 2 * x
    target = np.sqrt(rng.uniform(size=40_000))
    sigma = math.sqrt(1 / 18)  # std of the density 2x on [0, 1]
    weighted = wasserstein(x, target, seed=0, generated_weights=w)
    unweighted = wasserstein(x, target, seed=0)
    assert weighted[0] < 0.02 < 0.6 < unweighted[0]
    assert abs(unweighted[0] - 1 / 6 / sigma) < max(4 * unweighted[1], 0.02)
    # weights on the reference: the same distance seen from the other side
    assert wasserstein(target, x, seed=0, reference_weights=w)[0] < 0.02
    # unit weights change nothing
    y = rng.normal(size=500)
    assert chi2_ndf(y, target[:400], 10, generated_weights=np.ones(500)) == chi2_ndf(y, target[:400], 10)
    assert prior_art_chi2(y, target, generated_weights=np.ones(500)) == prior_art_chi2(y, target)
    with pytest.raises(InputError, match="finite and non-negative"):
        wasserstein(y, y, seed=0, generated_weights=-np.ones(500))


# --------------------------------------------------------------------------- multivariate


def test_frechet_of_same_distribution_is_zero(rng: np.random.Generator) -> None:
    value, error = frechet_distance(rng.normal(size=(20_000, 4)), rng.normal(size=(20_000, 4)), seed=0)
    assert value < max(3 * error, 0.002)


def test_frechet_of_identical_samples_is_zero(rng: np.random.Generator) -> None:
    a = rng.normal(size=(2_000, 3)) * [1.0, 10.0, 0.1]
    assert frechet_distance(a, a.copy(), seed=0)[0] == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_shifted_gaussians_is_squared_shift(rng: np.random.Generator) -> None:
    delta = np.array([0.3, -0.2, 0.0, 0.5])
    value, error = frechet_distance(
        rng.normal(size=(20_000, 4)) + delta, rng.normal(size=(20_000, 4)), seed=1
    )
    assert abs(value - delta @ delta) < max(4 * error, 0.01)


@pytest.mark.parametrize(("sigma", "d"), [(2.0, 4), (0.5, 6)])
def test_frechet_of_isotropic_gaussians_of_different_width(
    rng: np.random.Generator, sigma: float, d: int
) -> None:
    value, error = frechet_distance(
        sigma * rng.normal(size=(20_000, d)), rng.normal(size=(20_000, d)), seed=2
    )
    assert abs(value - d * (sigma - 1.0) ** 2) < max(4 * error, 0.02 * d * (sigma - 1.0) ** 2)


def test_frechet_with_a_constant_column_is_finite(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(1_000, 3)), rng.normal(size=(1_000, 3))
    a[:, 1] = b[:, 1] = 0.0  # e.g. an object that is never present
    value, _ = frechet_distance(a, b, seed=0)
    assert math.isfinite(value) and value < 0.05


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_mmd_of_same_distribution_is_zero_and_shift_is_not(rng: np.random.Generator, kernel: str) -> None:
    a, b = rng.normal(size=(12_000, 5)), rng.normal(size=(12_000, 5))
    value, error = mmd(a, b, seed=0, kernel=kernel, subset_size=1_000)
    assert abs(value) < 3.5 * error  # the error comes from 12 subsets: pulls are t-distributed
    shifted, s_error = mmd(a + 0.3, b, seed=0, kernel=kernel, subset_size=1_000)
    assert shifted > 5 * s_error


def test_classifier_auc_of_same_distribution_is_one_half(rng: np.random.Generator) -> None:
    auc, error = classifier_auc(rng.normal(size=(3_000, 4)), rng.normal(size=(5_000, 4)), seed=0)
    assert error == pytest.approx(math.sqrt(1 / 12 * (2 / 1500)), rel=0.05)  # Hanley–McNeil at 0.5
    assert abs(auc - 0.5) < 3 * error


def test_classifier_auc_of_separated_samples_is_near_one(rng: np.random.Generator) -> None:
    auc, error = classifier_auc(rng.normal(size=(2_000, 4)) + 2.0, rng.normal(size=(2_000, 4)), seed=0)
    assert auc > 0.97
    assert 0 < error < 0.01


@pytest.mark.parametrize("features", ["observables", "physics"])
def test_classifier_auc_with_observables_of_same_distribution_is_one_half(
    rng: np.random.Generator, features: str
) -> None:
    ref = _ttbar_like(rng, 3_000)
    gen = _ttbar_like(rng, 3_000)
    auc, error = classifier_auc(gen, ref, seed=0, schema=TTBAR, features=features)  # type: ignore[arg-type]
    assert abs(auc - 0.5) < 3 * error


# --------------------------------------------------------------------------- [DE] holes, physicality, memorisation


@pytest.mark.parametrize(("n", "bins"), [(160_000, 400), (10_000, 100), (30_000, 100)])
def test_holes_fraction_of_uniform_phi(rng: np.random.Generator, n: int, bins: int) -> None:
    phi = rng.uniform(-np.pi, np.pi, size=(2, n))
    expected = math.exp(-n / bins**2)
    sigma = math.sqrt(expected * (1 - expected) / bins**2)  # binomial bound on the spread
    assert abs(holes_fraction(phi[0], phi[1], bins=bins) - expected) < 4 * sigma


def test_holes_fraction_of_a_collapsed_sample_is_large() -> None:
    phi = np.full(10_000, 0.5)
    assert holes_fraction(phi, phi) == 1 - 1 / 400**2
    assert holes_fraction(np.array([np.pi]), np.array([-np.pi])) == 1 - 1 / 400**2  # edges inside


def test_physicality_counts_each_check() -> None:
    zll = BUILTIN_SCHEMAS["zll"]  # l1 (E, pT, η, φ), l2 (E, pT, η, φ), n_leptons
    c = math.cosh(1.0)
    events = np.array(
        [
            [50 * c, 50, 1.0, 0.1, 30 * c, 30, 1.0, 0.2, 2],  # physical
            [40 * c, 50, 1.0, 0.1, 30 * c, 30, 1.0, 0.2, 2],  # l1: E < pT cosh η
            [30 * c, 30, 1.0, 0.1, 50 * c, 50, 1.0, 0.2, 2],  # l2 harder than l1
            [50 * c, 50, 1.0, 0.1, 0, 0, 0.3, 0, 1],  # absent l2 with a non-zero η
            [50 * c, 50, 1.0, 0.1, 5 * c, 5, 1.0, 0.2, 2],  # l2 below a 10 GeV threshold
        ]
    )
    assert physicality(events, zll) == {"energy": 0.8, "ordering": 0.8, "zero_fill": 0.8, "all": 0.4}
    assert physicality(events, zll, {"l": 10.0}) == {
        "energy": 0.8,
        "ordering": 0.8,
        "zero_fill": 0.6,
        "all": 0.2,
    }


def test_memorisation_fresh_copied_and_smeared(rng: np.random.Generator) -> None:
    train, heldout = rng.normal(size=(5_000, 6)), rng.normal(size=(5_000, 6))
    fresh = memorisation(rng.normal(size=(2_000, 6)), train, heldout, seed=0)
    assert abs(fresh["ratio"][0] - 1.0) < max(4 * fresh["ratio"][1], 0.05)
    assert abs(fresh["closer_to_train"][0] - 0.5) < 4 * fresh["closer_to_train"][1]

    copied = memorisation(train[:2_000], train, heldout, seed=0)
    assert copied["ratio"][0] == 0.0 and copied["closer_to_train"][0] == 1.0

    smeared = train[:2_000] * (1 + 0.05 * rng.normal(size=(2_000, 6)))
    mid = memorisation(smeared, train, heldout, seed=0)
    assert 0.05 < mid["ratio"][0] < 0.3
    assert mid["closer_to_train"][0] > 0.95
    json.dumps(mid)


def test_memorisation_equalises_reference_sizes(rng: np.random.Generator) -> None:
    # without equal sizes a fresh sample would sit closer to the 4x larger training sample
    train, heldout = rng.normal(size=(20_000, 6)), rng.normal(size=(5_000, 6))
    fresh = memorisation(rng.normal(size=(2_000, 6)), train, heldout, seed=1)
    assert fresh["n_reference"] == 5_000
    assert abs(fresh["ratio"][0] - 1.0) < max(4 * fresh["ratio"][1], 0.05)


# --------------------------------------------------------------------------- compare


def _ttbar_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random physical-looking events in the ttbar schema: 2–4 jets, 0–2 leptons, zero-filled."""
    events = np.zeros((n, len(TTBAR)), dtype=np.float32)
    events[:, 0] = rng.exponential(40.0, n)
    events[:, 1] = rng.uniform(-np.pi, np.pi, n)
    for family, slots, low in (("j", 4, 2), ("l", 2, 0)):
        count = rng.integers(low, slots + 1, n)
        pts = -np.sort(-(20 + rng.exponential(50.0, (n, slots))), axis=1)
        for k in range(slots):
            on = k < count
            eta, phi = rng.normal(0, 1.5, n), rng.uniform(-np.pi, np.pi, n)
            cols = [TTBAR.index(f"{family}{k + 1}_{f}") for f in ("e", "pt", "eta", "phi")]
            values = np.stack([pts[:, k] * np.cosh(eta) * 1.01, pts[:, k], eta, phi], axis=1)
            events[:, cols] = np.where(on[:, None], values, 0.0)
        events[:, TTBAR.index(f"n_{'jets' if family == 'j' else 'leptons'}")] = count
    return events


def test_compare_returns_finite_json_with_documented_keys(rng: np.random.Generator) -> None:
    gen, ref = _ttbar_like(rng, 3_000), _ttbar_like(rng, 2_500)
    result = compare(gen, ref, TTBAR, seed=0, max_events=2_000, n_boot=4)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert set(result) == {
        "n_events", "columns", "observables", "mean_column_w1", "frechet", "mmd",
        "classifier_auc", "classifier_auc_columns", "classifier", "holes", "physicality",
    }  # fmt: skip
    assert result["n_events"] == 2_000
    assert list(result["columns"]) == TTBAR.names
    assert set(result["observables"]) == {"m_jj", "m_jjj", "m_4j", "ht", "m_lj", "m_ll", "met"}
    for entry in [*result["columns"].values(), *result["observables"].values()]:
        assert set(entry) == {"w1", "chi2_ndf", "de_chi2", "central_range", "width_ratio"}
        assert all(math.isfinite(x) for x in [*entry["w1"], *entry["chi2_ndf"], entry["de_chi2"]])
        (lo, hi), (ref_lo, ref_hi) = entry["central_range"]["generated"], entry["central_range"]["reference"]
        assert lo <= hi and ref_lo <= ref_hi
        ratio, error = entry["width_ratio"]
        if ref_hi > ref_lo:
            assert ratio == pytest.approx((hi - lo) / (ref_hi - ref_lo)) and error >= 0
        else:  # a count column with one value in its central 80%
            assert ratio is None and error is None
    assert result["classifier"] == {"features": "physics", "n_train": 1_000, "n_test": 1_000}
    for key in ("frechet", "mmd", "classifier_auc", "classifier_auc_columns"):
        assert len(result[key]) == 2 and all(math.isfinite(x) for x in result[key])
    assert abs(result["classifier_auc"][0] - 0.5) < 4 * result["classifier_auc"][1]
    assert 0.9 < result["holes"] < 1.0
    assert result["physicality"]["all"] == 1.0
    assert compare(gen, ref, TTBAR, seed=0, max_events=2_000, n_boot=4) == result  # reproducible


def test_compare_ranks_a_distorted_sample_above_the_truth_baseline(rng: np.random.Generator) -> None:
    ref_a, ref_b = _ttbar_like(rng, 2_000), _ttbar_like(rng, 2_000)
    distorted = _ttbar_like(rng, 2_000)
    jet_energy = [TTBAR.index(f"j{k}_{f}") for k in range(1, 5) for f in ("e", "pt")]
    distorted[:, jet_energy] *= 1.3  # a 30% jet energy scale error
    base = compare(ref_b, ref_a, TTBAR, seed=0, n_boot=4)
    bad = compare(distorted, ref_a, TTBAR, seed=0, n_boot=4)
    assert bad["observables"]["m_jj"]["w1"][0] > 2 * base["observables"]["m_jj"]["w1"][0]
    assert bad["mean_column_w1"] > 1.3 * base["mean_column_w1"]  # 8 of 28 columns distorted
    assert bad["classifier_auc"][0] > base["classifier_auc"][0] + 3 * bad["classifier_auc"][1]


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: wasserstein(np.array([]), np.ones(3), seed=0), "generated is empty"),
        (lambda: wasserstein(np.ones((3, 2)), np.ones(3), seed=0), "must be a 1-D sample"),
        (lambda: wasserstein(np.ones(3), np.ones(3), seed=0, scale=0.0), "scale must be positive"),
        (lambda: wasserstein(np.ones(3), np.ones(3), seed=0, n_boot=1), "n_boot must be at least 2"),
        (lambda: chi2_ndf(np.ones(3), np.array([])), "reference is empty"),
        (lambda: chi2_ndf(np.r_[1.0, np.nan], np.ones(3)), "NaN or infinite"),
        (lambda: prior_art_chi2(np.ones(3), np.ones(3), bins=[1.0, 0.0]), "increasing edges"),
        (lambda: histogram_edges(np.ones(3), 0), "positive number of bins"),
        (lambda: chi2_ndf(np.ones(3), np.ones(3), bins=50.0), "positive number of bins or increasing edges"),
        (
            lambda: frechet_distance(np.ones((5, 3)), np.ones((5, 4)), seed=0),
            "has 3 features but reference has 4",
        ),
        (lambda: frechet_distance(np.ones((0, 3)), np.ones((5, 3)), seed=0), "generated is empty"),
        (lambda: mmd(np.ones((5, 3)), np.ones((5, 2)), seed=0), "same columns"),
        (lambda: mmd(np.ones((3, 2)), np.ones((3, 2)), seed=0), "at least 4 events"),
        (lambda: mmd(np.ones((9, 2)), np.ones((9, 2)), seed=0, kernel="linear"), "unknown kernel"),
        (lambda: classifier_auc(np.ones((9, 2)), np.ones((9, 3)), seed=0), "same columns"),
        (
            lambda: classifier_auc(np.ones((9, 2)), np.ones((9, 2)), seed=0, features="observables"),
            "needs the schema",
        ),
        (lambda: classifier_auc(np.ones((2, 2)), np.ones((9, 2)), seed=0), "at least 4 events"),
        (lambda: holes_fraction(np.zeros(3), np.zeros(4)), "one value per event"),
        (lambda: memorisation(np.ones((5, 2)), np.ones((5, 3)), np.ones((5, 2)), seed=0), "train has 3"),
        (lambda: memorisation(np.ones((5, 2)), np.ones((5, 2)), np.ones((0, 2)), seed=0), "heldout is empty"),
        (lambda: compare(np.ones((5, 3)), np.ones((5, 3)), TTBAR, seed=0), "schema 'ttbar' has 28"),
        (lambda: wasserstein(np.ones(3), np.ones(3), seed=0, max_events=0), "max_events must be positive"),
    ],
)
def test_user_errors_raise_input_error(call: Callable[[], object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        call()


def test_a_feature_defined_in_a_handful_of_events_is_dropped(ttbar_path: Path) -> None:
    """W+jets has a second lepton in a few events only: m_ll then exists for a handful of rows,
    which the trees could not bin; the classifier leaves such a feature out instead of failing."""
    table = read_events(ttbar_path)
    events = table.data.copy()
    l2 = [table.schema.index(f"l2_{v}") for v in ("e", "pt", "eta", "phi")]
    two = np.flatnonzero(events[:, l2[1]] > 0)
    events[two[1:, None], l2] = 0.0  # a second lepton in one event only
    events[two[1:], table.schema.index("n_leptons")] = 1
    half = len(events) // 2
    auc, error = classifier_auc(events[:half], events[half:], seed=0, schema=table.schema, features="physics")
    assert 0.4 < auc < 0.6 and error > 0
