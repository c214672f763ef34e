from __future__ import annotations

import numpy as np
import pytest

from eventgen.cleanup import PhysicsCleanup, wrap_phi
from eventgen.errors import BundleError, InputError
from eventgen.metrics import physicality
from eventgen.schema import get_schema

TTBAR = get_schema("ttbar")


def _physical_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """ttbar-like events that satisfy every rule: zero-filled, ordered, E >= pT cosh(eta)."""
    x = np.zeros((n, len(TTBAR)), np.float32)
    x[:, 0] = rng.exponential(50, n)
    x[:, 1] = rng.uniform(-np.pi, np.pi, n)
    for family, (objects, count_col) in TTBAR.families().items():
        n_obj = rng.integers(0, len(objects) + 3, n)
        pts = np.sort(rng.exponential(40, (n, len(objects))) + (20 if family == "j" else 10), axis=1)[:, ::-1]
        for k, o in enumerate(objects):
            on = k < n_obj
            eta = rng.uniform(-2.5, 2.5, n)
            x[on, o.pt] = pts[on, k]
            x[on, o.eta] = eta[on]
            x[on, o.phi] = rng.uniform(-np.pi, np.pi, on.sum())
            x[on, o.e] = pts[on, k] * np.cosh(eta[on]) * rng.uniform(1.0, 1.2, on.sum())
        x[:, count_col] = n_obj
    return x


def test_physical_events_are_left_unchanged(rng: np.random.Generator) -> None:
    x = _physical_events(rng, 2000)
    cleanup = PhysicsCleanup().fit(x, TTBAR)
    y = cleanup.apply(x.copy())
    np.testing.assert_allclose(y, x, rtol=1e-6)
    assert physicality(x, TTBAR, cleanup.pt_min_)["all"] == 1.0


def test_noisy_events_become_physical(rng: np.random.Generator) -> None:
    x = _physical_events(rng, 2000)
    cleanup = PhysicsCleanup().fit(x, TTBAR)
    noisy = x + rng.normal(0, 3, x.shape).astype(np.float32)
    assert physicality(noisy, TTBAR, cleanup.pt_min_)["all"] < 0.05
    y = cleanup.apply(noisy)
    checks = physicality(y, TTBAR, cleanup.pt_min_)
    assert checks == {"energy": 1.0, "ordering": 1.0, "zero_fill": 1.0, "all": 1.0}
    phis = y[:, TTBAR.indices_of_kind("phi")]
    assert np.all((phis > -np.pi) & (phis <= np.pi))
    for _family, (objects, count_col) in TTBAR.families().items():
        n_present = sum((y[:, o.pt] > 0).astype(int) for o in objects)
        count = y[:, count_col]
        assert np.all(count == np.round(count))
        assert np.all(np.where(n_present < len(objects), count == n_present, count >= n_present))


def test_state_round_trip(rng: np.random.Generator) -> None:
    x = _physical_events(rng, 500)
    a = PhysicsCleanup().fit(x, TTBAR)
    b = PhysicsCleanup.from_state(a.get_state(), TTBAR)
    noisy = x + rng.normal(0, 5, x.shape).astype(np.float32)
    np.testing.assert_array_equal(a.apply(noisy.copy()), b.apply(noisy.copy()))


@pytest.mark.parametrize("phi", [-np.pi, np.pi, 3 * np.pi, -7.0, 0.5, 1e-7])
def test_wrap_phi(phi: float) -> None:
    w = wrap_phi(np.array([phi]))[0]
    assert -np.pi < w <= np.pi
    assert wrap_phi(np.array([phi], np.float32))[0] > np.float32(-np.pi)
    assert np.isclose(np.cos(w), np.cos(phi)) and np.isclose(np.sin(w), np.sin(phi), atol=1e-9)


def test_fit_rejects_wrong_width(rng: np.random.Generator) -> None:
    with pytest.raises(InputError, match="schema 'ttbar' has 28 columns"):
        PhysicsCleanup().fit(np.zeros((3, 5), np.float32), TTBAR)


def test_state_of_another_schema_or_with_foreign_columns_is_refused(rng: np.random.Generator) -> None:
    from eventgen.errors import BundleError

    state = PhysicsCleanup().fit(_physical_events(rng, 200), TTBAR).get_state()
    with pytest.raises(
        BundleError,
        match=r"array 'families' has shape \(2,\), expected \(1,\) \(the object families of schema 'zll'\)",
    ):
        PhysicsCleanup.from_state(state, get_schema("zll"))
    far = {**state, "eta_cols": state["eta_cols"] + 10**9}  # once indexed rows out of bounds
    with pytest.raises(BundleError, match=r"clean-up state is invalid: array 'eta_cols' is \[1000000004, "):
        PhysicsCleanup.from_state(far, TTBAR)
    with pytest.raises(BundleError, match=r"array 'count_max' has shape \(1,\), expected \(2,\)"):
        PhysicsCleanup.from_state({**state, "count_max": state["count_max"][:1]}, TTBAR)


def test_apply_rejects_wrong_width(rng: np.random.Generator) -> None:
    cleanup = PhysicsCleanup().fit(_physical_events(rng, 200), TTBAR)
    with pytest.raises(InputError, match=r"events have shape \(3, 5\), schema 'ttbar' has 28 columns"):
        cleanup.apply(np.zeros((3, 5), np.float32))


def test_energies_stop_at_the_largest_of_training(rng: np.random.Generator) -> None:
    """An object above its family's largest training energy is brought down to it at fixed η
    (and mass): in e+e- that energy is the beam's. Older states have no limit."""
    x = _physical_events(rng, 2000)
    cleanup = PhysicsCleanup().fit(x, TTBAR)
    l1 = {q: TTBAR.index(f"l1_{q}") for q in ("e", "pt", "eta")}
    e_max = cleanup.e_max_["l"]
    assert e_max == x[:, [l1["e"], TTBAR.index("l2_e")]].max()
    rows = np.zeros((2, len(TTBAR)), np.float32)
    rows[:, l1["pt"]], rows[:, l1["eta"]] = [e_max / np.cosh(0.5) * 1.01, 20.0], 0.5
    rows[:, l1["e"]] = [1.0, 1.0]  # muon codes
    out = cleanup.apply(rows.copy(), representation="mass")
    assert out[0, l1["e"]] == np.float32(e_max) and out[0, l1["eta"]] == np.float32(0.5)
    momentum = np.float64(out[0, l1["pt"]]) * np.cosh(np.float64(out[0, l1["eta"]]))
    np.testing.assert_allclose(momentum, np.sqrt(e_max**2 - 0.105658**2), rtol=1e-6)  # a muon still
    assert out[1, l1["e"]] < e_max  # below the limit: untouched
    state = cleanup.get_state()
    low = PhysicsCleanup.from_state({**state, "e_max": np.array([state["e_max"][0], 50.0])}, TTBAR)
    wild = rows.copy()
    wild[:, l1["pt"]], wild[:, l1["eta"]] = 3e38, [2.4, -2.4]  # 50 GeV at pT >= 10 needs |eta| < 2.3
    out = low.apply(wild, representation="mass")
    assert np.all(out[:, l1["e"]] == np.float32(50.0)) and np.all(
        out[:, l1["pt"]] == np.float32(low.pt_min_["l"])
    )
    assert np.all(np.abs(out[:, l1["eta"]]) < 2.4) and out[0, l1["eta"]] > 0 > out[1, l1["eta"]]
    assert physicality(out, TTBAR, low.pt_min_)["all"] == 1.0
    energy = rows.copy()
    energy[0, l1["e"]] = 1.5 * e_max
    out = cleanup.apply(energy.copy(), representation="energy")
    assert out[0, l1["e"]] == np.float32(e_max)
    np.testing.assert_allclose(out[0, l1["pt"]], rows[0, l1["pt"]] / 1.5, rtol=1e-6)  # E/pT kept
    state = {k: v for k, v in cleanup.get_state().items() if k != "e_max"}
    older = PhysicsCleanup.from_state(state, TTBAR)
    assert older.apply(energy.copy(), representation="energy")[0, l1["e"]] == np.float32(1.5 * e_max)
    with pytest.raises(BundleError, match="array 'e_max' has values down to -1"):
        PhysicsCleanup.from_state({**cleanup.get_state(), "e_max": np.array([-1.0, 5.0])}, TTBAR)


def test_rebuilt_energies_carry_float32_rounding_noise(rng: np.random.Generator) -> None:
    """E is rebuilt from pT and η each moved within half a float32 step, deterministically."""
    n = 20_000
    rows = np.zeros((n, len(TTBAR)), np.float32)
    pt, eta = TTBAR.index("l1_pt"), TTBAR.index("l1_eta")
    rows[:, pt], rows[:, eta], rows[:, TTBAR.index("l1_e")] = (
        rng.uniform(20, 45, n),
        rng.uniform(-2, 2, n),
        -1.0,
    )
    cleanup = PhysicsCleanup().fit(_physical_events(rng, 500), TTBAR)
    a, b = (
        cleanup.apply(rows.copy(), representation="mass"),
        cleanup.apply(rows.copy(), representation="mass"),
    )
    np.testing.assert_array_equal(a, b)
    exact = np.sqrt(
        0.000511**2 + (rows[:, pt].astype(np.float64) * np.cosh(rows[:, eta].astype(np.float64))) ** 2
    )
    off = (a[:, TTBAR.index("l1_e")] - exact.astype(np.float32)) / np.spacing(exact.astype(np.float32))
    assert np.abs(off).max() <= 4 and 0.2 < np.mean(off != 0) < 0.9  # a spread of float32 steps, not none
