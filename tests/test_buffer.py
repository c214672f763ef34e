"""DensityBuffer: determinism, per-mode statistics, selection, log-density, state, estimator contract, errors."""

from __future__ import annotations

import itertools
import json

import numba
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.base import clone

from eventgen.buffer import BLOCK, DensityBuffer
from eventgen.components import COMPONENTS
from eventgen.errors import BundleError, ConfigError, EventgenError, InputError
from eventgen.sampling import MODES, SamplingSettings

FLOW = {"flow_transforms": 2, "flow_hidden": 8, "flow_epochs": 2}  # a small flow, quick to train
pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = [
    {"mode": "buffer"},
    {"mode": "buffer", "selection": "stratified"},
    {"mode": "buffer", "selection": "weighted"},
    {"mode": "kde"},
    {"mode": "kde", "bandwidth": "silverman", "selection": "stratified"},
    {"mode": "gmm", "n_components": 3},
    {"mode": "prior"},
    {"mode": "flow", "temperature": 0.8, **FLOW},
]


def _latents(rng: np.random.Generator, n: int = 600, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated clusters of buffer means and small, varied standard deviations."""
    centres = np.array([[-4.0] * d, [0.0] * d, [4.0] * d])
    mu = centres[rng.integers(0, 3, n)] + rng.normal(0.0, 0.5, (n, d))
    sigma = rng.uniform(0.05, 0.3, (n, d))
    return mu.astype(np.float32), sigma.astype(np.float32)


def _buffer(seed: int = 0, **settings) -> DensityBuffer:
    """An unfitted buffer with these sampling settings."""
    return DensityBuffer(SamplingSettings(**settings), seed=seed)


def _fitted(rng: np.random.Generator, settings: dict, n: int = 600, d: int = 4) -> DensityBuffer:
    mu, sigma = _latents(rng, n, d)
    weights = rng.uniform(0.1, 2.0, n) if settings.get("selection") == "weighted" else None
    return _buffer(seed=3, **settings).fit(mu, sigma, sample_weight=weights)


def _indexed_buffer(n_buffer: int, weights: np.ndarray | None = None, **settings) -> DensityBuffer:
    """1-d buffer whose samples reveal the component: mu_i = 10 i, a negligible spread."""
    mu = (10.0 * np.arange(n_buffer, dtype=np.float32))[:, None]
    sigma = np.full_like(mu, 1e-3)
    return _buffer(alpha=1.0, gamma=0.0, **settings).fit(mu, sigma, sample_weight=weights)


def _components(z: np.ndarray) -> np.ndarray:
    return np.rint(z[:, 0] / 10.0).astype(np.int64)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_split_invariance(rng: np.random.Generator, settings: dict) -> None:
    buffer = _fitted(rng, settings)
    stop = 3 * BLOCK + 123
    full, full_w = buffer.sample_range(0, stop, seed=11)
    cuts = [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 17, stop]
    parts = [buffer.sample_range(a, b, seed=11) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), full)
    if settings.get("selection") == "weighted":
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), full_w)
    else:
        assert full_w is None and all(p[1] is None for p in parts)
    middle, _ = buffer.sample_range(5000, 5003, seed=11)
    np.testing.assert_array_equal(middle, full[5000:5003])
    assert buffer.sample_range(7, 7, seed=11)[0].shape == (0, 4)


@pytest.mark.parametrize("settings", SETTINGS[:3] + SETTINGS[5:6], ids=["buffer", "strat", "weighted", "gmm"])
def test_thread_invariance(rng: np.random.Generator, settings: dict) -> None:
    buffer = _fitted(rng, settings)
    n = 5 * BLOCK + 7
    reference = buffer.sample_range(0, n, seed=5, n_threads=1)
    for threads in (2, 3):
        result = buffer.sample_range(0, n, seed=5, n_threads=threads)
        np.testing.assert_array_equal(result[0], reference[0])
        np.testing.assert_array_equal(result[1], reference[1])
    if numba.config.NUMBA_NUM_THREADS >= 2:
        before = numba.get_num_threads()
        try:
            outputs = []
            for threads in (1, 2):
                numba.set_num_threads(threads)
                outputs.append(buffer.sample_range(0, n, seed=5)[0])
                outputs.append(buffer.score_samples(outputs[-1][:300]))
        finally:
            numba.set_num_threads(before)
        np.testing.assert_array_equal(outputs[0], outputs[2])
        np.testing.assert_array_equal(outputs[1], outputs[3])


def test_seeds(rng: np.random.Generator) -> None:
    buffer = _fitted(rng, {"mode": "buffer"})
    a, _ = buffer.sample_range(0, 1000, seed=1)
    np.testing.assert_array_equal(a, buffer.sample_range(0, 1000, seed=1)[0])
    assert not np.any(np.all(a == buffer.sample_range(0, 1000, seed=2)[0], axis=1))
    np.testing.assert_array_equal(buffer.sample(1000, 1), a)
    first = buffer.sample(100, np.random.default_rng(9))
    np.testing.assert_array_equal(first, buffer.sample(100, np.random.default_rng(9)))
    assert buffer.sample(10).shape == (10, 4) and buffer.sample(10).dtype == np.float32
    out = np.empty((1000, 4), dtype=np.float32)
    z, _ = buffer.sample_range(0, 1000, seed=1, out=out)
    assert z is out
    np.testing.assert_array_equal(out, a)


# ------------------------------------------------------------------ statistics


def _assert_moments(z: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Sample mean within 5 standard errors, sample variance within 5 standard errors (Gaussian-ish)."""
    n = len(z)
    assert np.all(np.abs(z.mean(axis=0) - mean) < 5 * np.sqrt(var / n) + 1e-6)
    assert np.all(np.abs(z.var(axis=0) - var) < 5 * np.sqrt(2.0 / n) * var * 2 + 1e-6)


def test_single_component() -> None:
    mu = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    sigma = np.array([[0.1, 0.5, 1.0]], dtype=np.float32)
    buffer = _buffer(alpha=1.5, gamma=0.05).fit(mu, sigma)
    z = buffer.sample(200_000, 4)
    _assert_moments(z, mu[0], (1.5 * sigma[0] + 0.05) ** 2)
    assert np.abs(z.var(axis=0) / (1.5 * sigma[0] + 0.05) ** 2 - 1).max() < 0.02


@pytest.mark.parametrize("selection", ["uniform", "stratified"])
def test_buffer_mixture_moments(rng: np.random.Generator, selection: str) -> None:
    mu, sigma = _latents(rng)
    buffer = _buffer(alpha=0.8, gamma=0.1, selection=selection).fit(mu, sigma)
    z = buffer.sample(200_000, 8)
    mu64, scale = mu.astype(np.float64), 0.8 * sigma.astype(np.float64) + 0.1
    mean = mu64.mean(axis=0)
    _assert_moments(z, mean, (mu64**2 + scale**2).mean(axis=0) - mean**2)


def test_kde_moments(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng)
    buffer = _buffer(mode="kde").fit(mu, sigma)
    h = buffer.component_.h
    mu64 = mu.astype(np.float64)
    n, d = mu.shape
    np.testing.assert_allclose(h, mu64.std(axis=0, ddof=1) * n ** (-1 / (d + 4)), rtol=1e-12)
    silverman = _buffer(mode="kde", bandwidth="silverman").fit(mu, sigma).component_.h
    np.testing.assert_allclose(silverman / h, (4 / (d + 2)) ** (1 / (d + 4)))
    np.testing.assert_array_equal(_buffer(mode="kde", bandwidth=0.3).fit(mu, sigma).component_.h, 0.3)
    z = buffer.sample(200_000, 8)
    _assert_moments(z, mu64.mean(axis=0), mu64.var(axis=0) + h**2)


def test_gmm_moments(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng)
    buffer = _buffer(seed=1, mode="gmm", n_components=3).fit(mu, sigma)
    gmm = buffer.component_
    assert gmm.gmm_means.shape == (3, 4) and gmm.gmm_chol.shape == (3, 4, 4)
    z = buffer.sample(200_000, 8)
    mean = gmm.gmm_weights @ gmm.gmm_means
    np.testing.assert_allclose(mean, mu.mean(axis=0), atol=1e-3)
    cov = np.einsum("kab,kcb->kac", gmm.gmm_chol, gmm.gmm_chol)
    second = np.einsum("k,kaa->a", gmm.gmm_weights, cov + np.einsum("ka,kb->kab", *[gmm.gmm_means] * 2))
    _assert_moments(z, mean, second - mean**2)


def test_prior_moments(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng)
    z = _buffer(mode="prior").fit(mu, sigma).sample(200_000, 8)
    _assert_moments(z, np.zeros(4), np.ones(4))


# ------------------------------------------------------------------ selection


@pytest.mark.parametrize("n_buffer", [7, 1000, 5000])
@pytest.mark.parametrize("selection", ["uniform", "stratified"])
def test_not_grouped_by_component(n_buffer: int, selection: str) -> None:
    idx = _components(_indexed_buffer(n_buffer, selection=selection).sample(30_000, 2))
    assert 0 <= idx.min() and idx.max() < n_buffer
    steps = np.diff(idx)
    assert 0.3 < np.mean(steps > 0) < 0.7  # neither sorted nor cycling in order
    lag = np.corrcoef(idx[:-1], idx[1:])[0, 1]
    expected = -1.0 / n_buffer if selection == "stratified" else 0.0  # a pass draws without replacement
    assert abs(lag - expected) < 0.03


@pytest.mark.parametrize(("n_buffer", "n"), [(7, 10_000), (1000, 12_345), (5000, 9_000), (3, 3)])
def test_stratified_counts(n_buffer: int, n: int) -> None:
    idx = _components(_indexed_buffer(n_buffer, selection="stratified").sample(n, 6))
    counts = np.bincount(idx, minlength=n_buffer)
    assert counts.min() >= n // n_buffer and counts.max() <= -(-n // n_buffer)
    for p in range(n // n_buffer):  # every full pass is a permutation
        np.testing.assert_array_equal(np.sort(idx[p * n_buffer : (p + 1) * n_buffer]), np.arange(n_buffer))
    if n_buffer > 3:
        assert not np.array_equal(idx[:n_buffer], idx[n_buffer : 2 * n_buffer])


def test_weighted_reproduces_unweighted(rng: np.random.Generator) -> None:
    n_buffer = 2000
    mu = rng.normal(0.0, 1.0, (n_buffer, 1)).astype(np.float32)
    sigma = np.full_like(mu, 0.2)
    weights = np.exp(mu[:, 0].astype(np.float64))  # enhance the upper tail
    buffer = _buffer(alpha=1.0, gamma=0.0, selection="weighted").fit(mu, sigma, sample_weight=weights)
    z, w = buffer.sample_range(0, 200_000, seed=2)
    np.testing.assert_allclose(
        w, (weights.mean() / weights)[_drawn_components(weights, len(z), 2)], rtol=1e-6
    )
    edges = np.linspace(-2.5, 3.0, 23)
    expected = len(z) * np.diff(stats.norm.cdf(edges[:, None], mu[:, 0], 0.2).mean(axis=1))
    sum_w, _ = np.histogram(z[:, 0], edges, weights=w)
    sum_w2, _ = np.histogram(z[:, 0], edges, weights=w.astype(np.float64) ** 2)
    assert np.all(sum_w2 > 0)
    assert np.sum((sum_w - expected) ** 2 / sum_w2) / len(expected) < 2.0  # chi2 / ndf
    raw, _ = np.histogram(z[:, 0], edges)
    assert np.sum((raw - expected) ** 2 / np.maximum(raw, 1)) / len(expected) > 50.0


def _drawn_components(weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Components drawn by a weighted run: the same draw from a point-mass buffer with mu_i = i."""
    exact = _buffer(alpha=0.0, gamma=0.0, selection="weighted")
    n_buffer = len(weights)
    mu = np.arange(n_buffer, dtype=np.float32)[:, None]
    exact.fit(mu, np.ones((n_buffer, 1), dtype=np.float32), sample_weight=weights)
    return exact.sample_range(0, n, seed)[0][:, 0].astype(np.int64)


def test_zero_weights_never_drawn() -> None:
    weights = np.array([0.0, 1.0, 0.0, 3.0, 0.0])
    buffer = _indexed_buffer(5, selection="weighted", weights=weights)
    z, w = buffer.sample_range(0, 20_000, seed=1)
    counts = np.bincount(_components(z), minlength=5)
    assert counts[[0, 2, 4]].sum() == 0 and 0.2 < counts[1] / counts[3] < 0.45
    assert np.all(np.isfinite(w))


# ------------------------------------------------------------------ density


def _direct_logpdf(z: np.ndarray, means: np.ndarray, covs: np.ndarray, log_w: np.ndarray) -> np.ndarray:
    terms = [
        lw + stats.multivariate_normal(m, c).logpdf(z) for m, c, lw in zip(means, covs, log_w, strict=True)
    ]
    return logsumexp(np.stack(terms, axis=1), axis=1)


@pytest.mark.parametrize("mode", MODES)
def test_score_samples_against_scipy(rng: np.random.Generator, mode: str) -> None:
    mu, sigma = _latents(rng, n=40, d=3)
    flow = {**FLOW, "temperature": 0.7} if mode == "flow" else {}
    buffer = _buffer(mode=mode, alpha=0.7, gamma=0.1, n_components=2, **flow).fit(mu, sigma)
    z = rng.normal(0.0, 3.0, (50, 3))
    z[0] = 40.0  # far from every component: must stay finite, not -inf or nan
    equal = np.full(40, -np.log(40))
    if mode == "buffer":
        covs = np.stack([np.diag(s) for s in (0.7 * sigma.astype(np.float64) + 0.1) ** 2])
        expected = _direct_logpdf(z, mu.astype(np.float64), covs, equal)
    elif mode == "kde":
        h = buffer.component_.h
        expected = _direct_logpdf(z, mu.astype(np.float64), np.stack([np.diag(h**2)] * 40), equal)
    elif mode == "gmm":
        gmm = buffer.component_
        covs = np.einsum("kab,kcb->kac", gmm.gmm_chol, gmm.gmm_chol)
        expected = _direct_logpdf(z, gmm.gmm_means, covs, np.log(gmm.gmm_weights))
    elif mode == "prior":
        expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    elif mode == "flow":  # with every parameter 0, each spline is the identity: a Gaussian
        state = buffer.get_state()
        state["flow_params"] = np.zeros_like(state["flow_params"])
        buffer = DensityBuffer.from_state(state, buffer.settings)
        z = z.astype(np.float32)  # the flow computes in float32
        scale = buffer.settings.temperature * state["flow_scale"].astype(np.float64)
        expected = stats.multivariate_normal(state["flow_shift"], np.diag(scale**2)).logpdf(z)
    else:
        pytest.fail(f"no known answer for mode {mode!r}: add one here")
    got = buffer.score_samples(z)
    assert got.shape == (50,) and got.dtype == np.float64 and np.all(np.isfinite(got))
    tol = 1e-6 if mode == "flow" else 1e-9  # float32 inside the flow
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


# ------------------------------------------------------------------ state


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_state_round_trip(rng: np.random.Generator, settings: dict, tmp_path) -> None:
    buffer = _fitted(rng, settings)
    np.savez(tmp_path / "buffer.npz", **buffer.get_state())
    with np.load(tmp_path / "buffer.npz", allow_pickle=False) as data:
        loaded = DensityBuffer.from_state({k: data[k] for k in data.files}, buffer.settings, buffer.seed)
    assert loaded.get_params() == buffer.get_params()
    json.dumps(loaded.settings.to_dict())
    for a, b in zip(loaded.sample_range(0, 5000, seed=4), buffer.sample_range(0, 5000, seed=4), strict=True):
        np.testing.assert_array_equal(a, b)
    z = buffer.sample(20, 1)
    np.testing.assert_array_equal(loaded.score_samples(z), buffer.score_samples(z))


def test_latent_stats() -> None:
    mu = np.array([[1.0, -3.0], [0.0, 2.0]], dtype=np.float32)
    sigma = np.array([[0.5, 1.0], [1.0, 0.5]], dtype=np.float32)
    got = _buffer().fit(mu, sigma).latent_stats()
    assert got == pytest.approx({"avg_variance": 0.625, "avg_abs_mean": 1.5})


# ------------------------------------------------------- estimator contract


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_clone_refits_to_the_same_buffer(rng: np.random.Generator, settings: dict) -> None:
    mu, sigma = _latents(rng)
    weights = rng.uniform(0.1, 2.0, len(mu))
    buffer = _buffer(seed=3, **settings).fit(mu, sigma, sample_weight=weights)
    copy = clone(buffer)
    assert copy is not buffer and copy.get_params() == buffer.get_params() and "mu_" not in vars(copy)
    copy.fit(mu, sigma, sample_weight=weights)
    for a, b in zip(copy.sample_range(0, 5000, seed=4), buffer.sample_range(0, 5000, seed=4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_only_stores_and_fit_validates(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng, n=20)
    unchecked = DensityBuffer(settings="kde", seed=-1)  # type: ignore[arg-type]
    assert unchecked.get_params() == {"settings": "kde", "seed": -1}
    with pytest.raises(ConfigError, match="settings='kde' is not a SamplingSettings"):
        unchecked.fit(mu, sigma)
    with pytest.raises(ConfigError, match="seed=-1 is invalid"):
        unchecked.set_params(settings=SamplingSettings()).fit(mu, sigma)
    assert unchecked.set_params(seed=0).fit(mu, sigma).mu_.shape == (20, 4)
    with pytest.raises(ConfigError, match="no parameter 'mode'"):
        unchecked.set_params(mode="kde")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"alpha": 0.5, "gamma": 0.2}),
        ({}, {"selection": "weighted"}),
        ({"mode": "kde"}, {"mode": "kde", "selection": "stratified"}),
        ({"mode": "gmm", "n_components": 3}, {"mode": "gmm", "n_components": 3, "alpha": 2.0}),
        ({}, {"mode": "gmm", "n_components": 2}),
        ({"mode": "kde"}, {"mode": "kde", "bandwidth": 0.2}),
        ({}, {"mode": "prior"}),
    ],
)
def test_with_settings_equals_a_fresh_fit(rng: np.random.Generator, before: dict, after: dict) -> None:
    mu, sigma = _latents(rng)
    weights = rng.uniform(0.1, 2.0, len(mu))
    fitted = _buffer(seed=5, **before).fit(mu, sigma, sample_weight=weights)
    changed = fitted.with_settings(SamplingSettings(**after), seed=5)
    fresh = _buffer(seed=5, **after).fit(mu, sigma, sample_weight=weights)
    assert changed.get_params() == fresh.get_params() and changed.mu_ is fitted.mu_
    for a, b in zip(changed.sample_range(0, 5000, seed=2), fresh.sample_range(0, 5000, seed=2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fitted.settings == SamplingSettings(**before)  # the original is untouched


# ------------------------------------------------------------------ errors


def test_fit_errors(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng, n=20)
    with pytest.raises(ConfigError, match="selection='weighted' needs weights"):
        _buffer(selection="weighted").fit(mu, sigma)
    with pytest.raises(ConfigError, match="selection='weighted' needs weights"):
        _buffer().fit(mu, sigma).with_settings(SamplingSettings(selection="weighted"))
    with pytest.raises(EventgenError, match=r"call fit\(mu, sigma\) first"):
        _buffer().sample(10, 0)
    with pytest.raises(EventgenError, match=r"call fit\(mu, sigma\) first"):
        _buffer().get_state()
    with pytest.raises(EventgenError, match=r"call fit\(mu, sigma\) first"):
        _buffer().with_settings(SamplingSettings())
    with pytest.raises(InputError, match="mu has shape .* but sigma has shape"):
        _buffer().fit(mu, sigma[:10])
    with pytest.raises(InputError, match="sigma has shape"):
        _buffer().fit(mu, sigma[:, 0])
    with pytest.raises(InputError, match="mu contains NaN or inf"):
        _buffer().fit(np.where(mu > 3, np.nan, mu), sigma)
    with pytest.raises(InputError, match="sigma has entries <= 0"):
        _buffer().fit(mu, -sigma)
    for bad in (np.ones(19), -np.ones(20), np.zeros(20), np.full(20, np.inf)):
        with pytest.raises(InputError, match="weights"):
            _buffer(selection="weighted").fit(mu, sigma, sample_weight=bad)
    with pytest.raises(InputError, match="n_components=30 exceeds the 20 buffer events"):
        _buffer(mode="gmm", n_components=30).fit(mu, sigma)
    constant = mu.copy()
    constant[:, 1] = 1.0
    with pytest.raises(InputError, match=r"constant along latent dimension\(s\) \[1\]"):
        _buffer(mode="kde").fit(constant, sigma)


def test_sampling_errors(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng, n=20)
    buffer = _buffer().fit(mu, sigma)
    with pytest.raises(InputError, match="stop=5 is before start=9"):
        buffer.sample_range(9, 5, seed=0)
    with pytest.raises(ConfigError, match="seed=-1 is invalid"):
        buffer.sample_range(0, 5, seed=-1)
    with pytest.raises(InputError, match="start=-2 is invalid"):
        buffer.sample_range(-2, 5, seed=0)
    with pytest.raises(InputError, match="out has shape"):
        buffer.sample_range(0, 5, seed=0, out=np.empty((5, 4)))
    with pytest.raises(InputError, match="z has 3 columns but the buffer's latent space has 4"):
        buffer.score_samples(np.zeros((2, 3)))
    buffer.set_params(settings=SamplingSettings(mode="kde"))
    with pytest.raises(EventgenError, match=r"fitted with other settings .* call fit\(mu, sigma\) first"):
        buffer.sample(5, 0)
    point = _buffer(alpha=0.0, gamma=0.0).fit(mu, sigma)
    with pytest.raises(ConfigError, match="point mass"):
        point.score_samples(mu[:2])


def test_state_errors(rng: np.random.Generator) -> None:
    buffer = _fitted(rng, {"mode": "kde"})
    state = buffer.get_state()
    del state["h"]
    with pytest.raises(BundleError, match=r"buffer state lacks \['h'\]"):
        DensityBuffer.from_state(state, buffer.settings)
    state = _fitted(rng, {"mode": "buffer"}).get_state()
    with pytest.raises(BundleError, match="buffer state is invalid .*needs weights"):
        DensityBuffer.from_state(state, SamplingSettings(selection="weighted"))
    state["sigma"] = state["sigma"][:5]
    with pytest.raises(BundleError, match="buffer state is invalid"):
        DensityBuffer.from_state(state, SamplingSettings())
    state["state_version"] = np.asarray(99)
    with pytest.raises(BundleError, match="version 99"):
        DensityBuffer.from_state(state, SamplingSettings())


def test_stored_arrays_are_checked_before_sampling(rng: np.random.Generator) -> None:
    state = _fitted(rng, {"mode": "buffer"}).get_state()
    short = {**state, "sigma": state["sigma"][:100]}  # once read rows past the end of sigma
    with pytest.raises(BundleError, match=r"array 'sigma' has shape \(100, 4\), expected \(600, 4\)"):
        DensityBuffer.from_state(short, SamplingSettings())
    with pytest.raises(BundleError, match=r"array 'sigma' has values down to -\d.*, expected > 0"):
        DensityBuffer.from_state({**state, "sigma": -state["sigma"]}, SamplingSettings())
    with pytest.raises(
        BundleError, match=r"array 'mu' has shape \(600, 4\), expected \(N, 8\) \(the model's"
    ):
        DensityBuffer.from_state(state, SamplingSettings(), n_latent=8)
    gmm = _fitted(rng, {"mode": "gmm", "n_components": 3}).get_state()
    with pytest.raises(BundleError, match=r"gmm state is invalid: array 'gmm_means' has shape \(2, 4\)"):
        COMPONENTS["gmm"].from_state(
            SamplingSettings(mode="gmm", n_components=3),
            state["mu"],
            state["sigma"],
            {**gmm, "gmm_means": gmm["gmm_means"][:2]},
        )
    with pytest.raises(BundleError, match="array 'gmm_chol' has diagonal entries <= 0"):
        DensityBuffer.from_state(
            {**gmm, "gmm_chol": -gmm["gmm_chol"]}, SamplingSettings(mode="gmm", n_components=3)
        )
    with pytest.raises(
        BundleError, match=r"array 'gmm_weights' is for n_components=10000, more than the 600"
    ):
        DensityBuffer.from_state(gmm, SamplingSettings(mode="gmm", n_components=10_000))


# ------------------------------------------------------------------ flow


def test_flow_does_not_depend_on_threads(rng: np.random.Generator) -> None:
    """Buffer threads and torch's own threads: the same latent points, bit for bit."""
    import torch

    buffer = _fitted(rng, {"mode": "flow", **FLOW})
    n = 3 * BLOCK + 7
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference, _ = buffer.sample_range(0, n, seed=5, n_threads=1)
        threaded, _ = buffer.sample_range(0, n, seed=5, n_threads=3)
        torch.set_num_threads(2)
        both, _ = buffer.sample_range(0, n, seed=5, n_threads=2)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(threaded, reference)
    np.testing.assert_array_equal(both, reference)


def test_flow_is_fitted_with_the_bundle_only(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng, n=60)
    plain = _buffer(seed=1).fit(mu, sigma)
    with pytest.raises(ConfigError, match=r"fitted with mode 'buffer': fit it with 'buffer: \{mode: flow\}'"):
        plain.with_settings(SamplingSettings(mode="flow", **FLOW))
    flow = _buffer(seed=1, mode="flow", **FLOW).fit(mu, sigma)
    cooler = flow.with_settings(SamplingSettings(mode="flow", temperature=0.5, **FLOW))  # draw-time: kept
    assert cooler.component_.flow is not flow.component_.flow and cooler.settings.temperature == 0.5
    np.testing.assert_array_equal(cooler.get_state()["flow_params"], flow.get_state()["flow_params"])
    with pytest.raises(ConfigError, match="fitted with a flow trained with other settings"):
        flow.with_settings(SamplingSettings(mode="flow", **{**FLOW, "flow_epochs": 3}))
    assert flow.with_settings(SamplingSettings(mode="kde")).settings.mode == "kde"  # others still refit
    with pytest.raises(InputError, match="mode 'flow' needs a latent space of at least 2 dimensions"):
        _buffer(mode="flow", **FLOW).fit(mu[:, :1], sigma[:, :1])


def test_flow_targets_differ(rng: np.random.Generator) -> None:
    mu, sigma = _latents(rng, n=200)
    states = [
        _buffer(mode="flow", flow_target=target, **FLOW).fit(mu, sigma).get_state()["flow_params"]
        for target in ("mu", "mixture")
    ]
    assert not np.array_equal(*states)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("flow_params", "short", r"array 'flow_params' has shape \(\d+,\), expected"),
        ("flow_hidden", 9, r"array 'flow_hidden' is 9, but the settings give 8"),
        ("flow_features", 5, r"array 'flow_features' is 5, but the settings give 4"),
        ("flow_scale", "negative", r"array 'flow_scale' has values down to"),
        ("flow_extra", 0.0, r"array 'flow_extra' is not part of a flow state"),
    ],
)
def test_flow_state_is_checked(rng: np.random.Generator, key: str, value: object, match: str) -> None:
    buffer = _fitted(rng, {"mode": "flow", **FLOW})
    state = buffer.get_state()
    if value == "short":
        state[key] = state[key][:-1]
    elif value == "negative":
        state[key] = -state[key]
    else:
        state[key] = np.asarray(value)
    with pytest.raises(BundleError, match=f"buffer state is invalid: {match}"):
        DensityBuffer.from_state(state, buffer.settings)
    del state[key]
    if key != "flow_extra":
        with pytest.raises(BundleError, match=f"buffer state lacks \\['{key}'\\]"):
            DensityBuffer.from_state(state, buffer.settings)
