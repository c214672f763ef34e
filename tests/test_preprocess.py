"""Tests of eventgen.preprocess: exact round trips per column kind, state storage, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest

from eventgen.errors import BundleError, ConfigError, InputError
from eventgen.preprocess import PREPROCESS_METHODS, Preprocessor
from eventgen.schema import BUILTIN_SCHEMAS, COLUMN_KINDS, Schema

TTBAR = BUILTIN_SCHEMAS["ttbar"]
# one column of every kind, each with awkward values (zeros, large values, negatives)
ALL_KINDS = Schema.from_dict({"name": "all", "columns": [{"name": k, "kind": k} for k in COLUMN_KINDS]})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def fake_ttbar(rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    """A ttbar-like array ``(n, 28)``: lognormal pts, 2-4 jets and 0-2 leptons, zero-filled absent objects."""
    x = np.zeros((n, len(TTBAR)), dtype=np.float32)
    x[:, 0] = rng.lognormal(np.log(50), 0.7, n)
    x[:, 1] = rng.uniform(-np.pi, np.pi, n)
    n_jets, n_leptons = rng.integers(2, 5, n), rng.integers(0, 3, n)
    for k, present in enumerate([n_jets > i for i in range(4)] + [n_leptons > i for i in range(2)]):
        pt = rng.lognormal(np.log(60), 0.6, n) + 20
        eta = rng.normal(0, 1.5, n)
        obj = np.stack([pt * np.cosh(eta) * 1.01, pt, eta, rng.uniform(-np.pi, np.pi, n)], axis=1)
        x[:, 2 + 4 * k : 6 + 4 * k] = np.where(present[:, None], obj, 0.0)
    x[:, -2], x[:, -1] = n_jets, n_leptons
    return x


def all_kinds(rng: np.random.Generator, n: int = 1000) -> np.ndarray:
    e = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(4, 1.5, n))
    pt = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(3, 1, n))
    e[:2], pt[:2] = 6.5e4, 1.2e4  # large values
    x = np.stack(
        [
            e,
            pt,
            rng.normal(0, 2, n),
            rng.uniform(-np.pi, np.pi, n),
            rng.integers(0, 9, n),
            rng.normal(-3e3, 1e3, n),
        ],
        axis=1,
    )
    return x.astype(np.float32)


@pytest.mark.parametrize("method", PREPROCESS_METHODS)
@pytest.mark.parametrize("kind", COLUMN_KINDS)
def test_round_trip_every_kind(rng: np.random.Generator, method: str, kind: str) -> None:
    x = all_kinds(rng)
    j = ALL_KINDS.kinds.index(kind)
    p = Preprocessor(method).fit(x, ALL_KINDS)
    y = p.transform(x)
    back = p.inverse_transform(y)
    assert y.dtype == np.float32 and back.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(back[:, j], x[:, j], rtol=5e-6, atol=1e-6 * np.abs(x[:, j]).max())


@pytest.mark.parametrize("method", PREPROCESS_METHODS)
def test_round_trip_ttbar_keeps_zeros(rng: np.random.Generator, method: str) -> None:
    x = fake_ttbar(rng)
    back = (
        Preprocessor(method).fit(x, TTBAR).inverse_transform(Preprocessor(method).fit(x, TTBAR).transform(x))
    )
    np.testing.assert_allclose(back, x, rtol=5e-6, atol=1e-3)
    zero = x == 0
    assert zero.any()
    assert np.abs(back[zero]).max() < 1e-3  # absent objects come back as zero to well below a MeV


def test_physics_standardises_and_separates_absent_objects(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng, 5000)
    y = Preprocessor().fit(x, TTBAR).transform(x)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-4)
    for j in TTBAR.indices_of_kind("pt"):
        zero = x[:, j] == 0
        if zero.any():
            assert np.ptp(y[zero, j]) == 0  # all absent objects share one value
            assert y[zero, j].max() < y[~zero, j].min() - 1.0  # a gap of more than a standard deviation


def test_maxabs_is_the_prior_art(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng)
    y = Preprocessor("maxabs").fit(x, TTBAR).transform(x)
    np.testing.assert_allclose(np.abs(y).max(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y, x / np.abs(x).max(axis=0), rtol=1e-6)


@pytest.mark.parametrize("method", PREPROCESS_METHODS)
def test_constant_and_zero_columns_pass_through(rng: np.random.Generator, method: str) -> None:
    x = all_kinds(rng)
    x[:, 0] = 0.0  # an energy column without any present object
    x[:, 4] = 3.0  # a constant count
    p = Preprocessor(method).fit(x, ALL_KINDS)
    y = p.transform(x)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(p.inverse_transform(y)[:, [0, 4]], x[:, [0, 4]])


@pytest.mark.parametrize("method", PREPROCESS_METHODS)
def test_state_round_trip_without_pickle(rng: np.random.Generator, method: str) -> None:
    x = fake_ttbar(rng)
    p = Preprocessor(method).fit(x, TTBAR)
    buffer = io.BytesIO()
    np.savez(buffer, **p.get_state())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        q = Preprocessor.from_state(dict(stored))
    assert q.method == method
    np.testing.assert_array_equal(q.transform(x), p.transform(x))
    y = p.transform(x)
    np.testing.assert_array_equal(q.inverse_transform(y), p.inverse_transform(y))


def test_transform_of_new_data_is_the_fitted_map(rng: np.random.Generator) -> None:
    p = Preprocessor().fit(fake_ttbar(rng), TTBAR)
    x_new = fake_ttbar(rng, 10)
    np.testing.assert_array_equal(p.transform(x_new), p.transform(np.concatenate([x_new, x_new]))[:10])


def test_nan_names_the_column(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng)
    x[5, TTBAR.index("j2_eta")] = np.nan
    with pytest.raises(InputError, match="has 1 NaN/inf values, first in column 'j2_eta' of event 5"):
        Preprocessor().fit(x, TTBAR)
    p = Preprocessor().fit(fake_ttbar(rng), TTBAR)
    x[5, TTBAR.index("j2_eta")] = np.inf
    with pytest.raises(InputError, match="'j2_eta'"):
        p.transform(x)


def test_wrong_number_of_columns(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng)
    with pytest.raises(InputError, match=r"shape \(n_events, 28\).*found shape \(2000, 27\)"):
        Preprocessor().fit(x[:, :-1], TTBAR)
    p = Preprocessor().fit(x, TTBAR)
    with pytest.raises(InputError, match=r"found shape \(2000, 27\)"):
        p.transform(x[:, :-1])
    with pytest.raises(InputError, match=r"found shape \(28,\)"):
        p.inverse_transform(x[0])


def test_transform_before_fit() -> None:
    with pytest.raises(InputError, match=r"transform called before fit; call fit\(x, schema\) first"):
        Preprocessor().transform(np.zeros((3, 28), dtype=np.float32))
    with pytest.raises(InputError, match="get_state called before fit"):
        Preprocessor().get_state()


def test_negative_energy_is_refused(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng)
    x[0, TTBAR.index("met")] = -1.5
    with pytest.raises(InputError, match=r"column 'met' has negative values \(min -1.5\).*kind 'generic'"):
        Preprocessor().fit(x, TTBAR)
    Preprocessor("maxabs").fit(x, TTBAR)  # the prior art's scaling does not care


def test_unknown_method_and_empty_input(rng: np.random.Generator) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown preprocessing method 'log'; choose one of \['physics', 'maxabs', 'quantile'\]",
    ):
        Preprocessor("log").fit(fake_ttbar(rng), TTBAR)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="0 events"):
        Preprocessor().fit(np.zeros((0, 28), dtype=np.float32), TTBAR)


def test_corrupt_state(rng: np.random.Generator) -> None:
    state = Preprocessor().fit(fake_ttbar(rng), TTBAR).get_state()
    with pytest.raises(BundleError, match=r"lacks \['mean'\]"):
        Preprocessor.from_state({k: v for k, v in state.items() if k != "mean"})
    with pytest.raises(BundleError, match="unknown method 'zscore'"):
        Preprocessor.from_state({**state, "method": "zscore"})
    with pytest.raises(BundleError, match="differ in length"):
        Preprocessor.from_state({**state, "std": state["std"][:-1]})  # type: ignore[index]


def test_state_must_fit_the_schema(rng: np.random.Generator) -> None:
    state = Preprocessor().fit(fake_ttbar(rng), TTBAR).get_state()
    assert Preprocessor.from_state(state, TTBAR).columns_.tolist() == TTBAR.names
    with pytest.raises(
        BundleError, match=r"array 'columns' has shape \(28,\), expected \(6,\) \(schema 'all'\)"
    ):
        Preprocessor.from_state(state, ALL_KINDS)
    flipped = {**state, "log_mask": ~state["log_mask"]}  # type: ignore[operator]
    with pytest.raises(
        BundleError, match=r"array 'log_mask' is \[False, True, .*'physics' on schema 'ttbar'"
    ):
        Preprocessor.from_state(flipped, TTBAR)
    nan_mean = {**state, "mean": np.full(28, np.nan)}  # once gave all-zero events silently
    with pytest.raises(BundleError, match="array 'mean' has 28 NaN"):
        Preprocessor.from_state(nan_mean, TTBAR)
    with pytest.raises(BundleError, match=r"array 'std' has values down to -1, expected > 0"):
        Preprocessor.from_state({**state, "std": -np.ones(28)}, TTBAR)


def test_quantile_keeps_a_shared_value_exact(rng: np.random.Generator) -> None:
    """Events at exactly one value (a Z without radiation) come back at exactly that value from
    anywhere in their interval of the normal; others stay continuous."""
    n = 5000
    peak = np.float32(91.1876)
    x = all_kinds(rng, n)
    at_peak = rng.random(n) < 0.4
    x[:, 5] = np.where(at_peak, peak, peak - rng.exponential(5.0, n).astype(np.float32))
    p = Preprocessor("quantile").fit(x, ALL_KINDS)
    y = p.transform(x)
    lo, hi = y[at_peak, 5].min(), y[at_peak, 5].max()
    assert lo == hi  # one value ...
    inside = np.full((101, 6), y[0])
    inside[:, 5] = lo + np.linspace(-0.3, 1.0, 101)  # ... standing for an interval of the normal
    assert np.all(p.inverse_transform(inside)[:, 5] == peak)
    below = p.inverse_transform(y[~at_peak])[:, 5]
    np.testing.assert_allclose(below, x[~at_peak, 5], rtol=1e-5)


def test_quantile_state_is_checked(rng: np.random.Generator) -> None:
    x = fake_ttbar(rng)
    state = Preprocessor("quantile").fit(x, TTBAR).get_state()
    assert state["quantiles"].shape == (1000, 28)  # type: ignore[union-attr]
    again = Preprocessor.from_state(state, TTBAR)
    np.testing.assert_array_equal(again.transform(x), Preprocessor.from_state(state).transform(x))
    falling = state["quantiles"][::-1].copy()  # type: ignore[index]
    with pytest.raises(BundleError, match="'quantiles' must hold at least 2 non-decreasing quantiles"):
        Preprocessor.from_state({**state, "quantiles": falling}, TTBAR)
    with pytest.raises(BundleError, match=r"lacks \['quantiles'\]"):
        Preprocessor.from_state({k: v for k, v in state.items() if k != "quantiles"}, TTBAR)
    with pytest.raises(BundleError, match=r"lacks \['schema'\]"):
        Preprocessor.from_state({k: v for k, v in state.items() if k != "schema"})
