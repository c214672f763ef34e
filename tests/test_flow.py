"""SplineFlow: seeded training, sampling independent of batch size and threads, exact densities, checked state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from eventgen.errors import BundleError, ConfigError, EventgenError, InputError
from eventgen.flow import CHUNK, STATE_NAMES, SplineFlow, parameter_count

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 600, d: int = 3) -> np.ndarray:
    """Two correlated, shifted and scaled clusters: something for a flow to learn."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, d)) + np.where(rng.random((n, 1)) < 0.5, -2.0, 2.0)
    x[:, 1] += 0.5 * x[:, 0]
    return (x * [3.0, 0.5, 10.0][:d] + [1.0, -2.0, 50.0][:d]).astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> SplineFlow:
    return SplineFlow(3, transforms=2, hidden=16).fit(_data(), 4, seed=2)


def test_training_is_seeded_and_keeps_the_best_epoch(fitted: SplineFlow) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the caller's setting does not matter: training runs on `threads`
        again = SplineFlow(3, transforms=2, hidden=16).fit(_data(), 4, seed=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(again.get_state()["params"], fitted.get_state()["params"])
    other = SplineFlow(3, transforms=2, hidden=16).fit(_data(), 4, seed=3)
    assert not np.array_equal(other.get_state()["params"], fitted.get_state()["params"])
    assert [h["epoch"] for h in fitted.history_] == [0, 1, 2, 3]
    val = [h["val_nll"] for h in fitted.history_]
    assert fitted.best_epoch_ == int(np.argmin(val))
    assert val[-1] < val[0]  # it learns


def test_global_torch_stream_is_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SplineFlow(2, transforms=1, hidden=4).fit(_data(50, 2), 1, seed=9)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_sampling_does_not_depend_on_batch_size_or_threads(fitted: SplineFlow) -> None:
    noise = np.random.default_rng(1).standard_normal((2 * CHUNK + 100, 3)).astype(np.float32)
    whole = fitted.sample(noise)
    assert whole.shape == noise.shape and whole.dtype == np.float32 and np.all(np.isfinite(whole))
    np.testing.assert_array_equal(fitted.sample(noise[:100]), whole[:100])
    np.testing.assert_array_equal(fitted.sample(noise[:CHUNK]), whole[:CHUNK])
    parts = [fitted.sample(noise[lo : lo + CHUNK]) for lo in range(0, len(noise), CHUNK)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            np.testing.assert_array_equal(fitted.sample(noise), whole)
    finally:
        torch.set_num_threads(before)


def test_sample_inverts_the_density(fitted: SplineFlow) -> None:
    """sample(u) maps back to u through the flow, and log_prob is zuko's, in data units."""
    u = np.random.default_rng(2).standard_normal((500, 3)).astype(np.float32)
    x = fitted.sample(u)
    y = torch.from_numpy((x - fitted.shift_) / fitted.scale_)
    with torch.inference_mode():
        back = fitted.flow_().transform(y).numpy()
        reference = (
            fitted.flow_().log_prob(y).double().numpy() - np.log(fitted.scale_.astype(np.float64)).sum()
        )
    np.testing.assert_allclose(back, u, atol=2e-4)
    np.testing.assert_allclose(fitted.log_prob(x), reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_identity_flow_is_a_gaussian(fitted: SplineFlow, temperature: float) -> None:
    """With every parameter 0 each spline is the identity: N(shift, (T * scale)^2), known to scipy."""
    state = fitted.get_state()
    state["params"] = np.zeros_like(state["params"])
    flow = SplineFlow.from_state(state)
    x = np.random.default_rng(3).normal(0.0, 20.0, (300, 3))
    x[0] = 1e4  # far outside the splines' range: finite
    cov = np.diag((temperature * fitted.scale_.astype(np.float64)) ** 2)
    expected = stats.multivariate_normal(fitted.shift_.astype(np.float64), cov).logpdf(x.astype(np.float32))
    np.testing.assert_allclose(flow.log_prob(x, temperature), expected, rtol=1e-5)
    u = np.random.default_rng(4).standard_normal((10, 3)).astype(np.float32)
    np.testing.assert_allclose(flow.sample(u), u * fitted.scale_ + fitted.shift_, rtol=1e-5, atol=1e-5)


def test_noise_widths_are_used(fitted: SplineFlow) -> None:
    x = _data()
    plain = SplineFlow(3, transforms=2, hidden=16).fit(x, 2, seed=2)
    for noise in (0.1, np.full(3, 0.1), np.full(x.shape, 0.1)):
        noisy = SplineFlow(3, transforms=2, hidden=16).fit(x, 2, seed=2, noise=noise)
        assert not np.array_equal(noisy.get_state()["params"], plain.get_state()["params"])
    same = [SplineFlow(3, transforms=2, hidden=16).fit(x, 2, seed=2, noise=n) for n in (0.1, np.full(3, 0.1))]
    np.testing.assert_array_equal(same[0].get_state()["params"], same[1].get_state()["params"])


def test_state_round_trip_is_plain_arrays(fitted: SplineFlow, tmp_path) -> None:
    state = fitted.get_state(prefix="f_")
    assert list(state) == [f"f_{k}" for k in STATE_NAMES]
    for k in ("features", "transforms", "hidden", "bins"):
        assert state[f"f_{k}"].dtype == np.int64 and state[f"f_{k}"].shape == ()
    for k in ("shift", "scale", "params"):
        assert state[f"f_{k}"].dtype == np.float32
    assert state["f_params"].shape == (parameter_count(3, 2, 16, 8),)
    assert parameter_count(3, 2, 16, 8) == sum(p.numel() for p in fitted.flow_.parameters())
    np.savez(tmp_path / "flow.npz", **state)
    with np.load(tmp_path / "flow.npz", allow_pickle=False) as data:
        loaded = SplineFlow.from_state({k: data[k] for k in data.files}, prefix="f_")
    u = np.random.default_rng(5).standard_normal((50, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.sample(u), fitted.sample(u))
    np.testing.assert_array_equal(loaded.log_prob(u), fitted.log_prob(u))
    assert repr(loaded) == "SplineFlow(features=3, transforms=2, hidden=16, bins=8)"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"params": None}, r"flow state lacks \['params'\]"),
        ({"extra": np.zeros(2)}, r"array 'extra' is not part of a flow state"),
        (
            {"params": "short"},
            r"array 'params' has shape \(\d+,\), expected \(\d+,\) \(the hyperparameters\)",
        ),
        ({"hidden": np.asarray(17)}, r"array 'params' has shape"),
        ({"hidden": np.asarray(10**6)}, r"array 'hidden' has values up to 1e\+06, expected <= 4096"),
        ({"features": np.asarray(1)}, r"array 'features' is 1, expected >= 2"),
        ({"bins": np.asarray(2.0)}, r"array 'bins' has dtype float64, expected int"),
        ({"scale": "negative"}, r"array 'scale' has values down to .*, expected > 0"),
        ({"shift": "nan"}, r"array 'shift' has 1 NaN"),
        ({"shift": "object"}, r"array 'shift' has dtype object, expected float"),
        ({"transforms": np.asarray(3)}, r"array 'transforms' is 3, but the settings give 2"),
    ],
)
def test_tampered_state_is_refused(fitted: SplineFlow, change: dict, match: str) -> None:
    state: dict = fitted.get_state()
    for key, value in change.items():
        if value is None:
            del state[key]
        elif not isinstance(value, str):
            state[key] = value
        elif value == "short":
            state[key] = state[key][:-1]
        elif value == "negative":
            state[key] = -state[key]
        elif value == "nan":
            state[key] = state[key].copy()
            state[key][0] = np.nan
        else:
            state[key] = state[key].astype(object)
    expected = {"transforms": 2} if "transforms" in change else None
    with pytest.raises(BundleError, match=match):
        SplineFlow.from_state(state, expected=expected)


def test_errors(fitted: SplineFlow) -> None:
    with pytest.raises(EventgenError, match=r"call fit\(x, epochs\) first"):
        SplineFlow(3).sample(np.zeros((1, 3)))
    with pytest.raises(
        InputError, match=r"noise has shape \(2, 4\) and dtype float64; pass a numeric \(n, 3\) array"
    ):
        fitted.sample(np.zeros((2, 4)))
    with pytest.raises(InputError, match="x contains NaN or inf"):
        fitted.log_prob(np.full((2, 3), np.inf))
    with pytest.raises(ConfigError, match=r"features=1 is invalid; pass an integer in \[2, 4096\]"):
        SplineFlow(1).fit(np.zeros((10, 1)), 1)
    with pytest.raises(ConfigError, match="epochs=0 is invalid"):
        SplineFlow(3).fit(_data(), 0)
    with pytest.raises(ConfigError, match="validation=1.0 is invalid"):
        SplineFlow(3).fit(_data(), 1, validation=1.0)
    with pytest.raises(InputError, match="x has 1 rows; a flow needs at least 2"):
        SplineFlow(3).fit(_data()[:1], 1)
    with pytest.raises(InputError, match=r"noise has shape \(2,\)"):
        SplineFlow(3).fit(_data(), 1, noise=np.ones(2))
    with pytest.raises(InputError, match="noise has negative"):
        SplineFlow(3).fit(_data(), 1, noise=-1.0)
