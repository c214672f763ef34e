"""Derived observables: analytic masses of constructed events, undefined values, schema coverage."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from eventgen.errors import InputError
from eventgen.io import read_events
from eventgen.observables import (
    TOP_MASS,
    derived_observables,
    four_vectors,
    invariant_mass,
    object_masses,
    pair_delta_r,
    physics_table,
)
from eventgen.schema import BUILTIN_SCHEMAS, Schema

TTBAR = BUILTIN_SCHEMAS["ttbar"]
ZLL = BUILTIN_SCHEMAS["zll"]


def make_events(schema: Schema, objects: list[dict[str, tuple[float, float, float]]]) -> np.ndarray:
    """Events ``(n, n_columns)`` float32 with massless objects ``{name: (pt, eta, phi)}``."""
    events = np.zeros((len(objects), len(schema)), dtype=np.float32)
    for row, objs in enumerate(objects):
        for name, (pt, eta, phi) in objs.items():
            for field, value in zip(
                ("e", "pt", "eta", "phi"), (pt * np.cosh(eta), pt, eta, phi), strict=True
            ):
                events[row, schema.index(f"{name}_{field}")] = value
    return events


def massless_mass(objs: list[tuple[float, float, float]]) -> float:
    """m² = Σ_{i<j} 2 pT_i pT_j (cosh Δη − cos Δφ) for massless objects."""
    m2 = sum(
        2 * p1 * p2 * (np.cosh(e1 - e2) - np.cos(f1 - f2))
        for (p1, e1, f1), (p2, e2, f2) in combinations(objs, 2)
    )
    return float(np.sqrt(m2))


@pytest.mark.parametrize("pt", [20.0, 50.0, 137.5])
def test_back_to_back_dijet_mass_is_twice_pt(pt: float) -> None:
    events = make_events(TTBAR, [{"j1": (pt, 0.0, 0.3), "j2": (pt, 0.0, 0.3 - np.pi)}])
    obs = derived_observables(events, TTBAR)
    np.testing.assert_allclose(obs["m_jj"], [2 * pt], rtol=1e-5)


@pytest.mark.parametrize(("eta1", "eta2", "dphi"), [(0.5, -1.2, 1.0), (2.0, 2.0, 2.5), (-0.3, 1.7, 0.1)])
def test_dijet_mass_matches_massless_formula(eta1: float, eta2: float, dphi: float) -> None:
    j1, j2 = (80.0, eta1, 0.2), (45.0, eta2, 0.2 + dphi)
    obs = derived_observables(make_events(TTBAR, [{"j1": j1, "j2": j2}]), TTBAR)
    np.testing.assert_allclose(obs["m_jj"], [massless_mass([j1, j2])], rtol=1e-4)


def test_trijet_mass_picks_combination_closest_to_top(rng: np.random.Generator) -> None:
    rows, expected = [], []
    for _ in range(20):
        jets = [
            (float(pt), float(eta), float(phi))
            for pt, eta, phi in zip(
                np.sort(rng.uniform(20, 150, 4))[::-1],
                rng.normal(0, 1.5, 4),
                rng.uniform(-np.pi, np.pi, 4),
                strict=True,
            )
        ]
        rows.append({f"j{k + 1}": jets[k] for k in range(4)})
        masses = [massless_mass([jets[i] for i in t]) for t in combinations(range(4), 3)]
        expected.append(min(masses, key=lambda m: abs(m - TOP_MASS)))
        assert len(set(np.round(masses, 3))) == 4  # the choice matters in these events
    obs = derived_observables(make_events(TTBAR, rows), TTBAR)
    np.testing.assert_allclose(obs["m_jjj"], expected, rtol=1e-4)


def test_fewer_jets_give_fewer_values_in_event_order() -> None:
    jets = [(100.0, 0.1, 0.0), (60.0, -0.5, 2.0), (40.0, 1.0, -2.0), (25.0, 0.0, 1.0)]
    rows = [{f"j{k + 1}": jets[k] for k in range(n)} for n in (0, 1, 2, 3, 4)]
    events = make_events(TTBAR, rows)
    obs = derived_observables(events, TTBAR)
    assert {k: v.size for k, v in obs.items()} == {
        "m_jj": 3,
        "m_jjj": 2,
        "m_4j": 1,
        "ht": 5,
        "m_lj": 0,
        "m_ll": 0,
        "met": 5,
    }
    np.testing.assert_allclose(obs["m_jj"], [massless_mass(jets[:2])] * 3, rtol=1e-4)
    np.testing.assert_allclose(obs["m_jjj"][0], massless_mass(jets[:3]), rtol=1e-4)  # only one triple
    np.testing.assert_allclose(obs["m_4j"], [massless_mass(jets)], rtol=1e-4)
    np.testing.assert_allclose(obs["ht"], [0, 100, 160, 200, 225], rtol=1e-6)

    full = derived_observables(events, TTBAR, keep_undefined=True)
    assert all(v.shape == (5,) for v in full.values())
    np.testing.assert_array_equal(np.isnan(full["m_jj"]), [True, True, False, False, False])
    np.testing.assert_array_equal(np.isnan(full["m_4j"]), [True, True, True, True, False])


def test_lepton_jet_and_dilepton_masses() -> None:
    l1, l2, j1 = (40.0, 0.3, 1.0), (30.0, -0.4, -2.0), (70.0, 1.1, 2.5)
    events = make_events(TTBAR, [{"j1": j1, "l1": l1, "l2": l2}, {"j1": j1}])
    events[:, TTBAR.index("met")] = [12.5, 30.0]
    obs = derived_observables(events, TTBAR)
    np.testing.assert_allclose(obs["m_lj"], [massless_mass([l1, j1])], rtol=1e-4)
    np.testing.assert_allclose(obs["m_ll"], [massless_mass([l1, l2])], rtol=1e-4)
    np.testing.assert_array_equal(obs["met"], [12.5, 30.0])

    z = derived_observables(make_events(ZLL, [{"l1": l1, "l2": l2}, {"l1": l1}]), ZLL)
    assert set(z) == {"m_ll"}
    np.testing.assert_allclose(z["m_ll"], [massless_mass([l1, l2])], rtol=1e-4)


@pytest.mark.parametrize("sample", ["ttbar", "zll"])
def test_the_compiled_table_matches_the_formulas_on_simulated_events(
    sample: str, request: pytest.FixtureRequest
) -> None:
    """Float32 events in, float64 arithmetic out: the kernel agrees with NumPy to rounding."""
    events = read_events(request.getfixturevalue(f"{sample}_path")).data
    schema = BUILTIN_SCHEMAS[sample]
    table, names = physics_table(events, schema)
    np.testing.assert_array_equal(table[:, : len(schema)], events.astype(np.float64))
    objects = [o for o in schema.objects() if min(o.e, o.eta, o.phi) >= 0]
    x = events.astype(np.float64)
    for o in objects:
        m = np.sqrt(np.maximum(x[:, o.e] ** 2 - (x[:, o.pt] * np.cosh(x[:, o.eta])) ** 2, 0.0))
        expected = np.where(x[:, o.pt] > 0, m, np.nan)
        np.testing.assert_allclose(table[:, names.index(f"m_{o.name}")], expected, rtol=1e-9, atol=1e-6)
        np.testing.assert_array_equal(
            object_masses(events, schema)[f"m_{o.name}"], table[:, names.index(f"m_{o.name}")]
        )
    for a, b in combinations(objects, 2):
        dphi = np.angle(np.exp(1j * (x[:, a.phi] - x[:, b.phi])))
        dr = np.hypot(x[:, a.eta] - x[:, b.eta], dphi)
        both = (x[:, a.pt] > 0) & (x[:, b.pt] > 0)
        got = pair_delta_r(events, schema)[f"dR_{a.name}_{b.name}"]
        np.testing.assert_allclose(got, np.where(both, dr, np.nan), rtol=1e-9, atol=1e-12)
    leptons = [o for o in objects if o.family == "l"][:2]
    p = sum(
        np.where((x[:, o.pt] > 0)[:, None], four_vectors(x[:, o.e], x[:, o.pt], x[:, o.eta], x[:, o.phi]), 0)
        for o in leptons
    )
    two = (x[:, leptons[0].pt] > 0) & (x[:, leptons[1].pt] > 0)
    np.testing.assert_allclose(
        table[:, names.index("m_ll")], np.where(two, invariant_mass(p), np.nan), rtol=1e-9
    )
    assert two.any() and np.isnan(table).any()


def test_invariant_mass_of_massive_particle_at_rest_and_boosted() -> None:
    m, pt, eta = 91.19, 30.0, 0.7
    p_mag = pt * np.cosh(eta)
    p = four_vectors(np.sqrt(m**2 + p_mag**2), pt, eta, 1.3)
    np.testing.assert_allclose(invariant_mass(p), m, rtol=1e-9)
    assert invariant_mass(four_vectors(1.0, 2.0, 0.0, 0.0)) == 0.0  # E < |p| clips to 0


def test_wrong_width_raises() -> None:
    with pytest.raises(InputError, match="schema 'ttbar' has 28 columns"):
        derived_observables(np.zeros((3, 5), np.float32), TTBAR)
