"""Metrics of how close generated events are to the original simulation.

Every two-sample function takes ``(generated, reference)`` in that order; the reference fixes
the scales (standardisation, binning, bandwidth), so that the truth-vs-truth baseline, the
same call with a second independent reference sample in place of ``generated``, uses the same
ones. Metrics return ``(value, error)``; every function that draws random numbers takes a
``seed`` and draws from its own ``np.random.default_rng(seed)`` (no module-level state).
Large inputs are subsampled without replacement to ``max_events`` from the seed.

- :func:`wasserstein`: 1-D Wasserstein-1 on the raw samples divided by the reference's standard
  deviation, bootstrap error.
- :func:`chi2_ndf`: χ²/ndf of two histograms with Poisson errors, error ``sqrt(2/ndf)``.
- :func:`prior_art_chi2`: the prior art's 25-bin ``Σ(p−q)²/(p+q)`` of normalised histograms.
- :func:`frechet_distance`, :func:`mmd`: multivariate distances on standardised features.
- :func:`classifier_auc`: a classifier two-sample test (0.5 = indistinguishable), on the columns,
  or on what a physicist looks at (:func:`physics_features`: columns, object masses, ΔR, observables).
- :func:`holes_fraction`: the prior art's empty-bin fraction of a φ_j1 vs φ_j2 histogram.
- :func:`physicality`: fractions of events passing the prior art's physicality checks.
- :func:`memorisation`: nearest-neighbour distances to training vs held-out events.
- :func:`compare`: all of the above but memorisation, as a JSON-serialisable dict.

Weights: the 1-D metrics (W1, both χ² figures) and the classifier take per-event weights of either
sample (``generated_weights``, ``reference_weights``; None = 1); weighted histograms use
``sqrt(Σw²)`` errors. The multivariate distances, physicality and memorisation are unweighted
(they ask about events, not about a weighted distribution).

Histogram binning (:func:`histogram_edges`): equal-width bins between the reference's 0.5% and
99.5% quantiles, with values outside folded into the first and last bin, so that no event is
lost from the normalisation and a few outliers cannot stretch the binning; count columns get
one bin per integer between the reference's minimum and maximum.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, get_args

import numpy as np
from scipy.stats import wasserstein_distance

from eventgen.errors import InputError
from eventgen.schema import Schema

DEFAULT_MAX_EVENTS = 50_000

FeatureSet = Literal["columns", "observables", "physics"]
FEATURE_SETS: tuple[FeatureSet, ...] = get_args(FeatureSet)


# --------------------------------------------------------------------------- 1-D metrics


def wasserstein(
    generated: np.ndarray,
    reference: np.ndarray,
    seed: int,
    *,
    n_boot: int = 10,
    scale: float | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """Wasserstein-1 distance of two 1-D samples, relative to the reference's spread.

    ``generated`` ``(n_gen,)`` and ``reference`` ``(n_ref,)`` are raw samples (never histogram
    contents). Returns ``(W1 / scale, error)`` with ``scale`` the reference's standard deviation
    unless given (1 for a constant reference); the error is the standard deviation of the
    value over ``n_boot`` bootstrap resamples of both samples. That error is the spread of the
    value, not its bias: W1 of two finite samples of one distribution is positive, O(1/sqrt(n)),
    hence the truth-vs-truth baseline. With weights ``(n_gen,)`` / ``(n_ref,)`` (non-negative),
    W1 is that of the weighted distributions and the scale the reference's weighted std.
    """
    _check_n_boot(n_boot)
    rng = np.random.default_rng(seed)
    a, wa = _subsample_weighted(_sample_1d(generated, "generated"), generated_weights, max_events, rng)
    b, wb = _subsample_weighted(_sample_1d(reference, "reference"), reference_weights, max_events, rng)
    if scale is None:
        scale = _weighted_std(b, wb) or 1.0
    elif not scale > 0:
        raise InputError(f"scale must be positive, got {scale}; pass None to use the reference's std")
    value = wasserstein_distance(a, b, wa, wb) / scale
    boots = []
    for _ in range(n_boot):
        i, j = rng.integers(0, a.size, a.size), rng.integers(0, b.size, b.size)
        boots.append(
            wasserstein_distance(a[i], b[j], None if wa is None else wa[i], None if wb is None else wb[j])
            / scale
        )
    return float(value), _spread(boots)


def histogram_edges(reference: np.ndarray, bins: int = 50, *, discrete: bool = False) -> np.ndarray:
    """Bin edges ``(n_bins + 1,)`` for comparing samples against ``reference`` ``(n_ref,)``.

    Continuous: ``bins`` equal-width bins between the reference's 0.5% and 99.5% quantiles
    (one unit wide around a constant reference). ``discrete``: one bin per integer value from
    the reference's minimum to its maximum, centred on the integers (``bins`` is ignored).
    Use with :func:`chi2_ndf` and :func:`prior_art_chi2`, which fold values outside the edges
    into the first and last bin.
    """
    b = _sample_1d(reference, "reference")
    if discrete:
        lo, hi = math.floor(float(b.min()) + 0.5), math.floor(float(b.max()) + 0.5)
        return np.arange(lo, hi + 2, dtype=np.float64) - 0.5
    if bins < 1:
        raise InputError(f"bins must be a positive number of bins, got {bins}")
    lo, hi = np.quantile(b, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def chi2_ndf(
    generated: np.ndarray,
    reference: np.ndarray,
    bins: int | np.ndarray = 50,
    *,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """χ²/ndf of the histograms of two 1-D samples with Poisson errors, sample sizes normalised.

    ``χ² = Σ (N_a/n_a − N_b/n_b)² / (N_a/n_a² + N_b/n_b²)`` over the bins with content in
    either sample, ``ndf`` = those bins − 1. Weighted: ``N`` is the sum of weights in a bin,
    ``n`` the total, and the variances ``Σw²/n²`` (which reduce to the above for unit weights). ``bins`` is a number of bins for
    :func:`histogram_edges` on the reference, or edges ``(n_bins + 1,)``. Returns
    ``(χ²/ndf, sqrt(2/ndf))``, the error being the spread of χ²/ndf for compatible samples;
    ``(nan, nan)`` when fewer than two bins have content.
    """
    (n_a, v_a), (n_b, v_b) = _histograms(generated, reference, bins, generated_weights, reference_weights)
    used = (v_a + v_b) > 0
    ndf = int(used.sum()) - 1
    if ndf < 1:
        return math.nan, math.nan
    size_a, size_b = n_a.sum(), n_b.sum()
    n_a, n_b, v_a, v_b = n_a[used], n_b[used], v_a[used], v_b[used]
    chi2 = np.sum((n_a / size_a - n_b / size_b) ** 2 / (v_a / size_a**2 + v_b / size_b**2))
    return float(chi2 / ndf), math.sqrt(2.0 / ndf)


def central_range(
    x: np.ndarray, weights: np.ndarray | None = None, fraction: float = 0.8
) -> tuple[float, float]:
    """The range holding the central ``fraction`` of a 1-D sample: its 10% and 90% quantiles for 0.8.

    The width of a peak as a physicist reads it off a histogram (the Z peak's is 88.4–91.2 GeV in
    ``zll``). Unweighted: ``np.quantile`` (linear between order statistics); weighted: the
    weighted distribution function, each event at the middle of its weight, linear in between.
    """
    x = _sample_1d(x, "sample")
    q = np.array([0.5 - fraction / 2.0, 0.5 + fraction / 2.0])
    if weights is None:
        lo, hi = np.quantile(x, q)
    else:
        order = np.argsort(x, kind="stable")
        w = np.asarray(weights, dtype=np.float64)[order]
        cumulative = (np.cumsum(w) - 0.5 * w) / w.sum()
        lo, hi = np.interp(q, cumulative, x[order])
    return float(lo), float(hi)


def width_ratio(
    generated: np.ndarray,
    reference: np.ndarray,
    seed: int,
    *,
    n_boot: int = 10,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """The width of ``generated``'s 10–90% range (:func:`central_range`) over ``reference``'s.

    Returns ``(ratio, error)``, the error being the standard deviation over ``n_boot`` bootstrap
    resamples of both samples; ``(nan, nan)`` for a reference whose range has no width. A
    quantile in a falling tail is noisy: on 7 000 zll events the Z peak's width is known to 5%.
    """
    _check_n_boot(n_boot)
    a, b = _sample_1d(generated, "generated"), _sample_1d(reference, "reference")
    wa, wb = (
        None if w is None else np.asarray(w, dtype=np.float64) for w in (generated_weights, reference_weights)
    )

    def ratio(i: np.ndarray | slice, j: np.ndarray | slice) -> float:
        (lo, hi), (ref_lo, ref_hi) = (
            central_range(x[k], None if w is None else w[k]) for x, w, k in ((a, wa, i), (b, wb, j))
        )
        return (hi - lo) / (ref_hi - ref_lo) if ref_hi > ref_lo else math.nan

    value = ratio(slice(None), slice(None))
    if math.isnan(value):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = [ratio(rng.integers(0, a.size, a.size), rng.integers(0, b.size, b.size)) for _ in range(n_boot)]
    return value, _spread(boots)


def prior_art_chi2(
    generated: np.ndarray,
    reference: np.ndarray,
    bins: int | np.ndarray = 25,
    *,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> float:
    """The prior art's histogram χ²: ``Σ (p − q)² / (p + q)`` of unit-sum (weighted) histograms ``p``, ``q``.

    Common binning from :func:`histogram_edges` on the reference (``bins`` bins between its
    0.5% and 99.5% quantiles, outside values folded into the edge bins), or edges given;
    bins empty in both samples are skipped. 0 for identical histograms, 2 for disjoint ones.
    """
    (n_a, _), (n_b, _) = _histograms(generated, reference, bins, generated_weights, reference_weights)
    p, q = n_a / n_a.sum(), n_b / n_b.sum()
    used = (p + q) > 0
    return float(np.sum((p[used] - q[used]) ** 2 / (p[used] + q[used])))


# --------------------------------------------------------------------------- multivariate metrics


def frechet_distance(
    generated: np.ndarray,
    reference: np.ndarray,
    seed: int,
    *,
    n_boot: int = 10,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> tuple[float, float]:
    """Fréchet distance of Gaussians fitted to ``(n, n_features)`` samples, standardised features.

    Both samples are standardised with the reference's mean and standard deviation, then
    ``FD = |μa − μb|² + Tr(Σa + Σb − 2 (Σa Σb)^{1/2})``. The trace of the matrix square root is
    computed as ``Σ sqrt(λ)`` over the eigenvalues ``λ`` of the symmetric ``Σa^{1/2} Σb Σa^{1/2}``
    (equal to those of ``Σa Σb``), which stays real and warning-free for singular covariances
    (constant columns), unlike ``scipy.linalg.sqrtm`` of the product. Error: standard deviation
    over ``n_boot`` bootstrap resamples of both samples. The estimate is biased upwards by
    O(n_features² / n); compare against the truth-vs-truth baseline.
    """
    _check_n_boot(n_boot)
    rng = np.random.default_rng(seed)
    a, b = _standardised_pair(generated, reference, max_events, rng)
    value = _frechet(a, b)
    boots = [
        _frechet(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
        for _ in range(n_boot)
    ]
    return value, _spread(boots)


def mmd(
    generated: np.ndarray,
    reference: np.ndarray,
    seed: int,
    *,
    kernel: Literal["rbf", "poly"] = "rbf",
    subset_size: int = 2_000,
    max_events: int = 20_000,
) -> tuple[float, float]:
    """Unbiased kernel MMD² of two ``(n, n_features)`` samples on standardised features.

    Features are standardised with the reference's mean and standard deviation. Kernels:
    ``"rbf"``: ``exp(−|x − y|² / (2 h²))`` with ``h`` the median pairwise distance within a
    reference subsample (median heuristic, drawn from the seed, so a baseline call with the
    same reference uses the same ``h``); ``"poly"``: the KID/KPD kernel ``(x·y / d + 1)³``.
    The samples are cut into disjoint subsets of ``subset_size`` events each (at most
    ``max_events`` per sample, at least two subsets); the value is the mean of the unbiased
    MMD² over the subsets and the error the standard error of that mean. Unbiased means the
    value scatters around 0 for identical distributions and can be negative.
    """
    if kernel not in ("rbf", "poly"):
        raise InputError(f"unknown kernel {kernel!r}; choose 'rbf' or 'poly'")
    if subset_size < 2:
        raise InputError(f"subset_size must be at least 2 events, got {subset_size}")
    rng = np.random.default_rng(seed)
    a, b = _standardised_pair(generated, reference, max_events, rng)
    n = min(len(a), len(b))
    n_subsets = max(2, n // subset_size)
    m = n // n_subsets
    if m < 2:
        raise InputError(f"mmd needs at least 4 events per sample, got {len(a)} and {len(b)}")
    if kernel == "rbf":
        probe = b[rng.choice(len(b), min(len(b), 1_000), replace=False)]
        d2 = _sq_distances(probe, probe)[np.triu_indices(len(probe), 1)]
        gamma = 1.0 / (2.0 * max(float(np.median(d2)), 1e-12))  # median of d² = (median d)²
    a = a[rng.permutation(len(a))[: n_subsets * m]].reshape(n_subsets, m, -1)
    b = b[rng.permutation(len(b))[: n_subsets * m]].reshape(n_subsets, m, -1)

    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if kernel == "rbf":
            d2 = _sq_distances(x, y)
            d2 *= -gamma
            return np.exp(d2, out=d2)
        g = x @ y.T
        g /= x.shape[1]
        g += 1.0
        return g * g * g

    values = [_mmd2_unbiased(k(x, x), k(y, y), k(x, y)) for x, y in zip(a, b, strict=True)]
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


#: events in which a feature must be defined (finite) for a classifier to train on it
MIN_DEFINED = 20


def classifier_auc(
    generated: np.ndarray,
    reference: np.ndarray,
    seed: int,
    *,
    schema: Schema | None = None,
    features: FeatureSet = "columns",
    max_events: int = DEFAULT_MAX_EVENTS,
    n_threads: int | None = 1,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """Classifier two-sample test: ROC AUC of a gradient-boosted classifier on held-out events.

    ``generated`` and ``reference`` are ``(n, n_features)``; the larger is subsampled to the
    size of the smaller (at most ``max_events`` each) so the classes are balanced. Each class
    is split 50/50 into train and test halves from ``seed``: the classifier learns on
    ``n // 2`` events per class (early stopping on 10% of them) and the AUC is measured on the
    other half. ``features``: ``"columns"`` the columns as given; ``"observables"`` (needs
    ``schema``) plus the derived observables of :mod:`eventgen.observables`; ``"physics"`` (needs
    ``schema``) :func:`physics_features`. Features defined in fewer than :data:`MIN_DEFINED` of the
    events the classifier trains on are dropped; elsewhere NaN marks an undefined value, which the
    trees handle. Weights
    ``(n_gen,)`` / ``(n_ref,)`` are the classifier's sample weights, normalised to a mean of 1
    per class, and weight the AUC; the error then uses Kish's effective sizes. Returns
    ``(auc, error)`` with the Hanley–McNeil standard error; 0.5 means indistinguishable,
    1 perfectly separable.

    ``n_threads`` caps the classifier's OpenMP threads (None: all cores). The default of 1 is
    deliberate: gradient boosting's thread barriers collapse when another process shares the
    cores (on 2 busy cores, 50k events took 20 s on 2 threads and 0.4 s on 1).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    a, b = _pair(generated, reference)
    if features not in FEATURE_SETS:
        raise InputError(f"unknown features {features!r}; choose one of {list(FEATURE_SETS)}")
    if features != "columns" and schema is None:
        raise InputError(f"features={features!r} needs the schema; pass schema=...")
    wa = _check_weights(generated_weights, len(a), "generated_weights")
    wb = _check_weights(reference_weights, len(b), "reference_weights")
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), max_events)
    if n < 4:
        raise InputError(f"classifier_auc needs at least 4 events per sample, got {len(a)} and {len(b)}")
    ia, ib = rng.choice(len(a), n, replace=False), rng.choice(len(b), n, replace=False)
    a, b = a[ia], b[ib]
    if features != "columns":
        assert schema is not None  # checked above
        a, b = (_feature_matrix(x, schema, features) for x in (a, b))
    half = n // 2
    x_train = np.vstack([a[:half], b[:half]])
    # a feature defined in too few of the events the classifier trains on has nothing to teach
    # (and none at all would break the trees' binning): dropped
    defined = np.isfinite(x_train).sum(axis=0) >= MIN_DEFINED
    x_train = x_train[:, defined]
    x_test = np.vstack([a[half:], b[half:]])[:, defined]
    y_train = np.r_[np.ones(half), np.zeros(half)]
    y_test = np.r_[np.ones(n - half), np.zeros(n - half)]
    w_train = w_test = None
    n_pos, n_neg = n - half, n - half
    if wa is not None or wb is not None:
        ones = np.ones(n)
        wa_, wb_ = (ones if w is None else w[i] for w, i in ((wa, ia), (wb, ib)))
        w_train = np.r_[_unit_mean(wa_[:half]), _unit_mean(wb_[:half])]
        w_test = np.r_[_unit_mean(wa_[half:]), _unit_mean(wb_[half:])]
        n_pos, n_neg = _kish(wa_[half:]), _kish(wb_[half:])
    clf = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.1,
        early_stopping=True,
        n_iter_no_change=15,
        validation_fraction=0.1,
        random_state=int(rng.integers(2**31)),
    )
    with threadpool_limits(n_threads, user_api="openmp"):
        clf.fit(x_train, y_train, sample_weight=w_train)
        auc = float(roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1], sample_weight=w_test))
    return auc, _hanley_mcneil(auc, max(n_pos, 2), max(n_neg, 2))


def physics_features(events: np.ndarray, schema: Schema) -> tuple[np.ndarray, list[str]]:
    """What a physicist looks at, as classifier features ``(n_events, n_features)`` float64, and their names.

    The schema's columns, each object's implied mass and the ΔR of every object pair
    (:func:`eventgen.observables.object_masses`, :func:`~eventgen.observables.pair_delta_r`), and
    the derived observables m_jj, m_jjj, m_4j, H_T, m_lj and m_ll (MET is a column already); NaN
    where undefined (absent objects). On tt̄ 28 + 6 + 15 + 6 = 55 features.
    """
    from eventgen.observables import physics_table  # it checks the events' shape

    return physics_table(events, schema)


def _feature_matrix(events: np.ndarray, schema: Schema, features: FeatureSet) -> np.ndarray:
    if features == "physics":
        return physics_features(events, schema)[0]
    return np.hstack([events, _observable_matrix(events, schema)])


# --------------------------------------------------------------------------- prior-art figures


def holes_fraction(phi1: np.ndarray, phi2: np.ndarray, bins: int = 400) -> float:
    """The prior art's "holes" test: fraction of empty bins of a ``bins × bins`` histogram.

    ``phi1``, ``phi2`` ``(n_events,)`` are the azimuths of the two leading jets of events where
    both jets exist, histogrammed over ``[−π, π]²``. For ``n`` uniform events the expected
    fraction is ``(1 − 1/bins²)^n ≈ exp(−n / bins²)``; compare a generated sample with a
    reference sample of the same size.
    """
    x, y = _sample_1d(phi1, "phi1", allow_empty=True), _sample_1d(phi2, "phi2", allow_empty=True)
    if x.shape != y.shape:
        raise InputError(f"phi1 and phi2 need one value per event each, got {x.size} and {y.size}")
    rng_ = [[-np.pi, np.pi], [-np.pi, np.pi]]
    counts, _, _ = np.histogram2d(x, y, bins=bins, range=rng_)
    return float(np.mean(counts == 0))


def physicality(
    events: np.ndarray, schema: Schema, pt_min: dict[str, float] | None = None
) -> dict[str, float]:
    """Fractions of events passing the prior art's physicality checks.

    Returns ``{"energy": ..., "ordering": ..., "zero_fill": ..., "all": ...}``: E ≥ pT·cosh η
    for present objects (relative tolerance 1e-4), pT ordering within each family, and
    absent objects exactly zero in every column (with ``pt_min`` per family, a present
    object below its family's threshold counts as a failed zero fill).
    """
    ok_energy = np.ones(len(events), bool)
    ok_order = np.ones(len(events), bool)
    ok_zero = np.ones(len(events), bool)
    for family, (objects, _count) in schema.families().items():
        prev = None
        threshold = (pt_min or {}).get(family, 0.0)
        for o in objects:
            pt = events[:, o.pt]
            present = pt > 0
            ok_zero &= ~present | (pt >= threshold)
            if o.e >= 0 and o.eta >= 0:
                need = pt * np.cosh(events[:, o.eta])
                ok_energy &= ~present | (events[:, o.e] >= need * (1 - 1e-4))
            cols = [c for c in (o.e, o.pt, o.eta, o.phi) if c >= 0]
            ok_zero &= present | np.all(events[:, cols] == 0, axis=1)
            if prev is not None:
                ok_order &= prev >= pt
            prev = pt
    return {
        "energy": float(ok_energy.mean()),
        "ordering": float(ok_order.mean()),
        "zero_fill": float(ok_zero.mean()),
        "all": float((ok_energy & ok_order & ok_zero).mean()),
    }


def memorisation(
    generated: np.ndarray,
    train: np.ndarray,
    heldout: np.ndarray,
    seed: int,
    *,
    n_boot: int = 50,
    max_events: int = 20_000,
) -> dict[str, Any]:
    """Does the generator copy its training events? Nearest-neighbour distances, train vs held out.

    All samples are ``(n, n_features)``, standardised with the training sample's mean and std.
    The training and held-out samples are subsampled to the same size (the smaller of the two,
    at most ``max_events``): nearest-neighbour distances shrink as a sample grows, so with
    unequal sizes a fresh sample would look closer to the larger one. (If the training sample
    is larger than the held-out one, copies of dropped training events count as fresh: hold out
    at least as many events as were trained on.) ``generated`` is subsampled to ``max_events``.

    Returns ``{"ratio": [value, error], "closer_to_train": [value, error], "median_d_train",
    "median_d_heldout", "n_reference"}``: ratio = median distance to the nearest training
    event / median distance to the nearest held-out event (≈ 1 for a fresh sample from the
    same distribution, 0 for replayed training events), error from ``n_boot`` bootstrap
    resamples of the generated events; ``closer_to_train`` is the fraction of generated events
    strictly closer to the training sample (≈ 0.5 for a fresh sample), binomial error.
    """
    _check_n_boot(n_boot)
    g, t = _pair(generated, train, names=("generated", "train"))
    _, h = _pair(generated, heldout, names=("generated", "heldout"))
    rng = np.random.default_rng(seed)
    m = min(len(t), len(h), max_events)
    mean, std = _nan_moments(t)
    t = (t[rng.choice(len(t), m, replace=False)] - mean) / std
    h = (h[rng.choice(len(h), m, replace=False)] - mean) / std
    g = (_subsample(g, max_events, rng) - mean) / std
    d_train, d_held = _nearest_distances(g, t), _nearest_distances(g, h)
    med_held = float(np.median(d_held))
    ratio = float(np.median(d_train)) / med_held if med_held > 0 else math.nan
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(g), len(g))
        denom = np.median(d_held[i])
        boots.append(float(np.median(d_train[i]) / denom) if denom > 0 else math.nan)
    closer = float(np.mean(d_train < d_held))
    return {
        "ratio": [ratio, _spread(boots)],
        "closer_to_train": [closer, math.sqrt(closer * (1 - closer) / len(g))],
        "median_d_train": float(np.median(d_train)),
        "median_d_heldout": med_held,
        "n_reference": int(m),
    }


# --------------------------------------------------------------------------- everything at once


def compare(
    generated: np.ndarray,
    reference: np.ndarray,
    schema: Schema,
    seed: int,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    bins: int = 50,
    n_boot: int = 10,
    features: FeatureSet = "physics",
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """All metrics of ``generated`` against ``reference``, both ``(n_events, n_columns)`` in schema order.

    Both samples are first subsampled to the same size ``n = min(n_gen, n_ref, max_events)``.
    Call it twice, generated vs reference half A and reference half B vs half A, to give every
    number its truth-vs-truth scale. Returns a JSON-serialisable dict (undefined values, such
    as χ²/ndf with one filled bin or an observable no event has, are ``None``)::

        {"n_events": n,
         "columns": {name: {"w1": [v, e], "chi2_ndf": [v, e], "de_chi2": v,     # per column
                            "central_range": {"generated": [lo, hi], "reference": [lo, hi]},
                            "width_ratio": [v, e]}},     # of the 10-90% ranges (width_ratio)
         "observables": {name: {...same keys...}},       # eventgen.observables, defined values
         "mean_column_w1": v,                            # mean of the per-column W1/σ
         "frechet": [v, e], "mmd": [v, e],
         "classifier_auc": [v, e],                       # on ``features`` (default: physics_features)
         "classifier_auc_columns": [v, e],               # on the columns alone (diagnostic)
         "classifier": {"features": name, "n_train": m, "n_test": m},   # events per class
         "holes": v,                                     # of generated, None without 2 jets
         "physicality": {"energy", "ordering", "zero_fill", "all"}}   # of generated

    Count columns get integer-centred bins for both χ² figures. Weights ``(n_gen,)`` /
    ``(n_ref,)`` weight the 1-D metrics and the classifier (module docstring).
    """
    a, b = _pair(generated, reference)
    if a.shape[1] != len(schema):
        raise InputError(
            f"events have {a.shape[1]} columns, schema {schema.name!r} has {len(schema)}; "
            "pass arrays in the schema's column order"
        )
    from eventgen.observables import derived_observables

    wa = _check_weights(generated_weights, len(a), "generated_weights")
    wb = _check_weights(reference_weights, len(b), "reference_weights")
    # one seed per draw, in order: subsampling, each column, each observable (<= 7), 4 multivariate
    seeds = iter(int(s) for s in np.random.SeedSequence(seed).generate_state(len(schema) + 16))
    rng = np.random.default_rng(next(seeds))
    n = min(len(a), len(b), max_events)
    ia, ib = np.sort(rng.choice(len(a), n, replace=False)), np.sort(rng.choice(len(b), n, replace=False))
    a, b = a[ia], b[ib]
    wa, wb = (None if w is None else w[i] for w, i in ((wa, ia), (wb, ib)))

    def one_d(
        x: np.ndarray, y: np.ndarray, wx: np.ndarray | None, wy: np.ndarray | None, discrete: bool
    ) -> dict[str, Any]:
        s = next(seeds)
        if x.size < 2 or y.size < 2:
            return {
                "w1": [None, None],
                "chi2_ndf": [None, None],
                "de_chi2": None,
                "central_range": None,
                "width_ratio": [None, None],
            }
        edges = histogram_edges(y, bins, discrete=discrete)
        de_edges = edges if discrete else histogram_edges(y, 25)
        ratio = width_ratio(x, y, s, n_boot=n_boot, generated_weights=wx, reference_weights=wy)
        return {
            "central_range": {
                "generated": list(central_range(x, wx)),
                "reference": list(central_range(y, wy)),
            },
            "width_ratio": _json(ratio),
            "w1": _json(
                wasserstein(x, y, s, n_boot=n_boot, max_events=n, generated_weights=wx, reference_weights=wy)
            ),
            "chi2_ndf": _json(chi2_ndf(x, y, edges, generated_weights=wx, reference_weights=wy)),
            "de_chi2": _json(prior_art_chi2(x, y, de_edges, generated_weights=wx, reference_weights=wy)),
        }

    columns = {
        c.name: one_d(a[:, i], b[:, i], wa, wb, c.kind == "count") for i, c in enumerate(schema.columns)
    }
    obs_a = derived_observables(a, schema, keep_undefined=True)
    obs_b = derived_observables(b, schema, keep_undefined=True)
    observables = {}
    for name in obs_a:
        da, db = np.isfinite(obs_a[name]), np.isfinite(obs_b[name])
        observables[name] = one_d(
            obs_a[name][da],
            obs_b[name][db],
            None if wa is None else wa[da],
            None if wb is None else wb[db],
            False,
        )
    w1s = [v["w1"][0] for v in columns.values() if v["w1"][0] is not None]

    def auc(on: FeatureSet) -> tuple[float, float]:
        return classifier_auc(
            a,
            b,
            next(seeds),
            schema=schema,
            features=on,
            max_events=n,
            generated_weights=wa,
            reference_weights=wb,
        )

    return {
        "n_events": int(n),
        "columns": columns,
        "observables": observables,
        "mean_column_w1": _json(float(np.mean(w1s)) if w1s else math.nan),
        "frechet": _json(frechet_distance(a, b, next(seeds), n_boot=n_boot, max_events=n)),
        "mmd": _json(mmd(a, b, next(seeds))),
        "classifier_auc": _json(auc(features)),
        "classifier_auc_columns": _json(auc("columns")),
        "classifier": {"features": features, "n_train": n // 2, "n_test": n - n // 2},
        "holes": _json(_holes_of(a, schema)),
        "physicality": physicality(a, schema),
    }


# --------------------------------------------------------------------------- helpers


def _check_weights(weights: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """``weights`` as float64 ``(n,)``, checked: finite, non-negative, a positive sum (None stays None)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(f"{name} must have one weight per event, shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise InputError(
            f"{name} must be finite and non-negative with a positive sum; drop those events first"
        )
    return w


def _subsample_weighted(
    x: np.ndarray, weights: np.ndarray | None, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_subsample` of ``x`` ``(m,)`` and of its weights alike."""
    w = _check_weights(weights, len(x), "weights")
    if n < 1:
        raise InputError(f"max_events must be positive, got {n}")
    if len(x) <= n:
        return x, w
    i = rng.choice(len(x), n, replace=False)
    return x[i], None if w is None else w[i]


def _weighted_std(x: np.ndarray, w: np.ndarray | None) -> float:
    if w is None:
        return float(np.std(x))
    mean = np.average(x, weights=w)
    return float(np.sqrt(np.average((x - mean) ** 2, weights=w)))


def _unit_mean(w: np.ndarray) -> np.ndarray:
    return w * (len(w) / w.sum()) if w.sum() > 0 else np.ones_like(w)


def _kish(w: np.ndarray) -> int:
    """Kish's effective sample size ``(Σw)² / Σw²`` of weights ``w``."""
    s2 = float((w * w).sum())
    return round(float(w.sum()) ** 2 / s2) if s2 > 0 else 0


def _sample_1d(x: np.ndarray, name: str, *, allow_empty: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise InputError(f"{name} must be a 1-D sample of shape (n_events,), got shape {x.shape}")
    if x.size == 0 and not allow_empty:
        raise InputError(f"{name} is empty; pass at least one event")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains NaN or infinite values; drop or clean those events first")
    return x


def _pair(
    generated: np.ndarray, reference: np.ndarray, names: tuple[str, str] = ("generated", "reference")
) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(n, n_features)`` float64 samples with the same number of features, checked."""
    out = []
    for x, name in zip((generated, reference), names, strict=True):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise InputError(f"{name} must be an (n_events, n_features) array, got shape {x.shape}")
        if len(x) == 0:
            raise InputError(f"{name} is empty; pass at least one event")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{name} contains NaN or infinite values; drop or clean those events first")
        out.append(x)
    if out[0].shape[1] != out[1].shape[1]:
        raise InputError(
            f"{names[0]} has {out[0].shape[1]} features but {names[1]} has {out[1].shape[1]}; "
            "pass samples with the same columns in the same order"
        )
    return out[0], out[1]


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` rows of ``x``, drawn without replacement (all of them, in order, if fewer)."""
    if n < 1:
        raise InputError(f"max_events must be positive, got {n}")
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def _nan_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``np.nanmean`` and ``np.nanstd`` ``(n_features,)``; 0 and 1 for all-NaN or constant columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (an undefined observable)
        mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    return np.nan_to_num(mean), np.where(std > 0, std, 1.0)


def _standardised_pair(
    generated: np.ndarray, reference: np.ndarray, max_events: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    a, b = _pair(generated, reference)
    a, b = _subsample(a, max_events, rng), _subsample(b, max_events, rng)
    mean, std = _nan_moments(b)
    return (a - mean) / std, (b - mean) / std


def _histograms(
    generated: np.ndarray,
    reference: np.ndarray,
    bins: int | np.ndarray,
    generated_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(sum of weights, sum of squared weights)`` per common bin of both samples, values outside
    the edges folded into the edge bins (unit weights: counts, counts)."""
    a, b = _sample_1d(generated, "generated"), _sample_1d(reference, "reference")
    wa = _check_weights(generated_weights, a.size, "generated_weights")
    wb = _check_weights(reference_weights, b.size, "reference_weights")
    if isinstance(bins, int | np.integer):
        edges = histogram_edges(b, int(bins))
    else:
        edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise InputError("bins must be a positive number of bins or increasing edges (n_bins + 1,)")
    n_bins = edges.size - 1

    def counts(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
        if w is None:
            n = np.bincount(idx, minlength=n_bins).astype(np.float64)
            return n, n
        return np.bincount(idx, w, minlength=n_bins), np.bincount(idx, w * w, minlength=n_bins)

    return counts(a, wa), counts(b, wb)


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu = a.mean(axis=0) - b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sum(np.sqrt(np.clip(cross, 0.0, None))))
    return float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def _sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(n_x, n_y)`` between the rows of ``x`` and ``y`` (in place)."""
    d2 = x @ y.T
    d2 *= -2.0
    d2 += (x**2).sum(axis=1)[:, None]
    d2 += (y**2).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _nearest_distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Euclidean distance ``(n_queries,)`` of each query row to its nearest row of ``points``.

    scikit-learn's exact nearest-neighbour search finds the neighbour; the distance to it is
    recomputed directly, so a query equal to a point gets exactly 0.
    """
    from sklearn.neighbors import NearestNeighbors

    nearest = NearestNeighbors(n_neighbors=1).fit(points).kneighbors(queries, return_distance=False)[:, 0]
    return np.sqrt(((queries - points[nearest]) ** 2).sum(axis=1))


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    m = kxx.shape[0]
    off = m * (m - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean())


def _hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC from ``n_pos`` and ``n_neg`` test events."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def _observable_matrix(events: np.ndarray, schema: Schema) -> np.ndarray:
    """Derived observables as extra features ``(n_events, n_observables)``, NaN where undefined."""
    from eventgen.observables import derived_observables

    if events.shape[1] != len(schema):
        raise InputError(f"events have {events.shape[1]} columns, schema {schema.name!r} has {len(schema)}")
    obs = derived_observables(events, schema, keep_undefined=True)
    return np.column_stack(list(obs.values())) if obs else np.empty((len(events), 0))


def _holes_of(events: np.ndarray, schema: Schema) -> float:
    jets = schema.families().get("j", ([], -1))[0]
    if len(jets) < 2 or jets[0].phi < 0 or jets[1].phi < 0:
        return math.nan
    both = (events[:, jets[0].pt] > 0) & (events[:, jets[1].pt] > 0)
    return holes_fraction(events[both, jets[0].phi], events[both, jets[1].phi])


def _check_n_boot(n_boot: int) -> None:
    if n_boot < 2:
        raise InputError(f"n_boot must be at least 2 bootstrap resamples to give an error, got {n_boot}")


def _spread(values: list[float]) -> float:
    """Standard deviation of bootstrap values (NaN ones ignored; NaN with fewer than two)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if v.size >= 2 else math.nan


def _json(x: float | tuple[float, float]) -> Any:
    """A float or ``[value, error]`` with non-finite numbers as None, for strict JSON."""
    if isinstance(x, tuple):
        return [_json(v) for v in x]
    return float(x) if math.isfinite(x) else None
