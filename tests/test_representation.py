"""The mass representation and the canonical frame: exact round trips, the clean-up's inverse, the draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventgen.cleanup import PhysicsCleanup
from eventgen.components import BLOCK
from eventgen.errors import BundleError, ConfigError, InputError
from eventgen.io import EventTable, read_events
from eventgen.metrics import physicality
from eventgen.observables import derived_observables
from eventgen.preprocess import Preprocessor
from eventgen.representation import (
    beam_energy,
    event_frames,
    from_beam,
    from_pair,
    level_codes,
    symmetry_draws,
    to_beam,
    to_frame,
    to_masses,
    to_pair,
    wrap,
)
from eventgen.schema import LEPTON_MASSES, Schema, get_schema

TTBAR = get_schema("ttbar")
OPTIONS = [(r, f) for r in ("energy", "mass", "dilepton", "ee_dilepton") for f in ("lab", "canonical")]


@pytest.fixture(scope="module", params=["ttbar_small.parquet", "zll_small.parquet"])
def table(request: pytest.FixtureRequest) -> EventTable:
    return read_events(Path(__file__).parent / "data" / request.param)


def _mass2(events: np.ndarray, schema: Schema, obj: str) -> np.ndarray:
    e, pt, eta = (events[:, schema.index(f"{obj}_{q}")].astype(np.float64) for q in ("e", "pt", "eta"))
    return e**2 - (pt * np.cosh(eta)) ** 2


def test_files_of_builtin_schemas_declare_the_lepton_masses(table: EventTable) -> None:
    assert table.schema.family_masses == {"l": LEPTON_MASSES}
    assert Schema.from_dict(table.schema.to_dict()) == table.schema
    assert "masses" not in get_schema("deepevents").to_dict()  # schemas without masses serialise as before


@pytest.mark.parametrize(("representation", "frame"), OPTIONS)
def test_round_trip_reproduces_events(table: EventTable, representation: str, frame: str) -> None:
    x = table.data
    pre = Preprocessor("physics", representation, frame).fit(x, table.schema)  # type: ignore[arg-type]
    y = pre.transform(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    frames = pre.event_frames(x)
    back = pre.inverse_transform(y, frames)
    np.testing.assert_array_equal(back == 0, x == 0)  # absent objects exactly 0, present ones not
    # a dilepton's leptons are rebuilt from the pair's float32 columns, which costs a few bits
    rtol = 1e-5 if representation in ("dilepton", "ee_dilepton") else 1e-6
    np.testing.assert_allclose(back, x, rtol=rtol, atol=2e-6)
    if frame == "canonical":
        assert set(np.unique(frames[:, 1])) == set(np.unique(frames[:, 2])) == {-1.0, 1.0}  # both mirrors
    # the same through the clean-up's compiled inverse (E rebuilt there, frames applied there)
    cleanup = PhysicsCleanup().fit(x, table.schema)
    rows = np.ascontiguousarray(pre.inverse_features(y))
    events = cleanup.apply(rows, representation=pre.representation, frames=frames)
    # objects of equal pT (back-to-back Z leptons) may come back in either order after rounding
    tied = _pt_ties(x, table.schema)
    assert tied.mean() < 0.5  # 17% of the zll events, none of the ttbar ones
    np.testing.assert_allclose(events[~tied], x[~tied], rtol=rtol, atol=2e-6)


def _pt_ties(x: np.ndarray, schema: Schema) -> np.ndarray:
    """Events in which two present objects of one family have the same pT to float32 precision."""
    tied = np.zeros(len(x), dtype=bool)
    for objects, _ in schema.families().values():
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                tied |= (x[:, a.pt] > 0) & np.isclose(x[:, a.pt], x[:, b.pt], rtol=1e-6, atol=0.0)
    return tied


def test_leptons_keep_their_flavour_through_the_mass_codes(table: EventTable, lepton_flavours: Any) -> None:
    x = table.data
    pre = Preprocessor("physics", "mass", "canonical").fit(x, table.schema)
    cleanup = PhysicsCleanup().fit(x, table.schema)
    events = cleanup.apply(
        np.ascontiguousarray(pre.inverse_features(pre.transform(x))),
        representation="mass",
        frames=pre.event_frames(x),
    )
    for obj in ("l1", "l2"):
        present = events[:, table.schema.index(f"{obj}_pt")] > 0
        electron, muon, resolved = lepton_flavours(events, table.schema, obj)
        assert np.all((electron | muon)[present]) and resolved[present].mean() > 0.5
        was_muon = _mass2(x, table.schema, obj) > 0.5 * sum(m**2 for m in LEPTON_MASSES)
        np.testing.assert_array_equal(muon[present & resolved], was_muon[present & resolved])


def test_mass_codes_are_robust_to_float32_rounding(rng: np.random.Generator) -> None:
    """Leptons built in float64 and stored as float32 keep their flavour where float32 resolves it.

    The muon's E - pT cosh(eta) = m^2 / 2E is ~6e-5 GeV at 93 GeV, several float32 steps; the
    electron's mass computed from the float32 columns is rounding noise of that size.
    """
    n = 2000
    x = np.zeros((n, len(TTBAR)))
    pt, eta = rng.uniform(10, 60, n), rng.uniform(-1, 1, n)
    mass = np.where(rng.random(n) < 0.5, *LEPTON_MASSES)
    for q, values in (("e", np.sqrt(mass**2 + (pt * np.cosh(eta)) ** 2)), ("pt", pt), ("eta", eta)):
        x[:, TTBAR.index(f"l1_{q}")] = values
    stored = x.astype(np.float32).astype(np.float64)
    noise = np.sqrt(np.abs(_mass2(stored, TTBAR, "l1")))[mass == LEPTON_MASSES[0]]
    assert noise.max() > 10 * LEPTON_MASSES[0]  # the electron mass itself is lost in float32
    to_masses(stored, TTBAR)
    np.testing.assert_array_equal(
        stored[:, TTBAR.index("l1_e")], np.where(mass == LEPTON_MASSES[0], -1.0, 1.0)
    )
    np.testing.assert_array_equal(stored[:, TTBAR.index("l2_e")], 0.0)  # absent: exactly 0
    np.testing.assert_array_equal(level_codes(3), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(level_codes(1), [0.0])


def test_canonical_frame_divides_out_the_symmetries(table: EventTable, rng: np.random.Generator) -> None:
    x = table.data.astype(np.float64)
    schema = table.schema
    objects = [o for o in schema.objects() if o.phi >= 0]
    canonical = x.copy()
    to_frame(canonical, event_frames(x, schema), schema)
    pts = canonical[:, [o.pt for o in objects]]
    order = np.argsort(-pts, axis=1, kind="stable")
    rows = np.arange(len(x))
    lead, second = (np.array([o.phi for o in objects])[order[:, k]] for k in (0, 1))
    np.testing.assert_allclose(canonical[rows, lead], 0.0, atol=1e-12)
    assert np.all(canonical[rows, second] >= 0)
    assert np.all(canonical[rows, np.array([o.eta for o in objects])[order[:, 0]]] >= 0)
    np.testing.assert_array_equal(canonical[x == 0], 0.0)  # absent objects stay 0
    # a turned and mirrored copy of an event has the same canonical form
    psi = rng.uniform(-np.pi, np.pi, len(x))
    signs = np.where(rng.random((len(x), 2)) < 0.5, -1.0, 1.0)
    turned = x.copy()
    phi_cols, eta_cols = schema.indices_of_kind("phi"), schema.indices_of_kind("eta")
    present = {o.phi: o.pt for o in objects}
    for c in phi_cols:
        moved = wrap(signs[:, [0]][:, 0] * x[:, c] + psi)
        turned[:, c] = np.where(x[:, present[c]] > 0, moved, 0.0) if c in present else moved
    turned[:, eta_cols] *= signs[:, [1]]
    again = turned.copy()
    to_frame(again, event_frames(turned, schema), schema)
    determined = (pts > 0).sum(axis=1) >= 2  # with fewer objects the frame is not unique
    assert determined.mean() > 0.8
    np.testing.assert_allclose(again[determined], canonical[determined], atol=1e-9)


def test_symmetry_draws_depend_only_on_the_position() -> None:
    whole = symmetry_draws(7, 0, 3 * BLOCK + 5)
    parts = np.concatenate(
        [symmetry_draws(7, a, b) for a, b in [(0, 10), (10, BLOCK + 1), (BLOCK + 1, 3 * BLOCK + 5)]]
    )
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(symmetry_draws(7, 100, 200), whole[100:200])
    assert not np.array_equal(symmetry_draws(8, 0, 100), whole[:100])
    assert np.all((whole[:, 0] > -np.pi) & (whole[:, 0] <= np.pi))
    assert set(np.unique(whole[:, 1:])) == {-1.0, 1.0}
    n = len(whole)  # fixed seed: uniform ψ and fair signs within 5 standard deviations
    assert abs(whole[:, 0].mean()) < 5 * np.pi / np.sqrt(3 * n)
    assert np.all(np.abs(whole[:, 1:].mean(axis=0)) < 5 / np.sqrt(n))


def test_energy_is_rebuilt_after_the_eta_clip_and_codes_are_not_clamped(lepton_flavours: Any) -> None:
    x = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet").data
    cleanup = PhysicsCleanup().fit(x, TTBAR)
    eta, l1 = TTBAR.index("j1_eta"), TTBAR.index("l1_e")
    rows = np.zeros((2, len(TTBAR)), np.float32)
    rows[:, TTBAR.index("j1_pt")] = 50.0
    rows[:, eta] = 2 * cleanup.eta_max_[eta]  # beyond the training range: clipped
    rows[:, TTBAR.index("j1_e")] = 10.0  # the jet's mass
    rows[:, TTBAR.index("l1_pt")] = 40.0
    rows[:, l1] = [-1.0, 0.9]  # codes: an electron, a muon
    out = cleanup.apply(rows.copy(), representation="mass")
    assert np.all(out[:, eta] == np.float32(cleanup.eta_max_[eta]))
    np.testing.assert_allclose(np.sqrt(_mass2(out, TTBAR, "j1")), 10.0, rtol=1e-3)
    electron, muon, resolved = lepton_flavours(out, TTBAR, "l1")
    assert resolved.all() and electron[0] and muon[1] and not muon[0] and not electron[1]
    energy = cleanup.apply(rows.copy())  # the same rows read as energies: E >= pT cosh(eta)
    assert np.all(
        energy[:, l1]
        == energy[:, TTBAR.index("l1_pt")] * np.float32(np.cosh(energy[:, TTBAR.index("l1_eta")]))
    )


def test_clean_up_turns_rows_into_their_frames(table: EventTable) -> None:
    x = table.data
    cleanup = PhysicsCleanup().fit(x, table.schema)
    frames = np.zeros((len(x), 3))
    frames[:, 0], frames[:, 1], frames[:, 2] = 3.0, -1.0, -1.0
    out = cleanup.apply(x.copy(), frames=frames)
    phi = table.schema.indices_of_kind("phi")
    eta = table.schema.indices_of_kind("eta")
    present = x[:, phi] != 0
    expected = wrap(3.0 - x[:, phi].astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(out[:, phi][present], expected[present], atol=1e-6)
    np.testing.assert_array_equal(out[:, eta], -x[:, eta])
    assert physicality(out, table.schema)["all"] == 1.0
    with pytest.raises(InputError, match=r"frames must be a C-contiguous float64 array of shape \(\d+, 3\)"):
        cleanup.apply(x.copy(), frames=frames[:-1])
    with pytest.raises(InputError, match="unknown representation 'momentum'; choose one of"):
        cleanup.apply(x.copy(), representation="momentum")  # type: ignore[arg-type]


def test_state_round_trip_and_checks(table: EventTable, tmp_path: Path) -> None:
    x = table.data
    pre = Preprocessor("physics", "mass", "canonical").fit(x, table.schema)
    state = pre.get_state()
    np.savez(tmp_path / "p.npz", **state)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as stored:
        for schema in (None, table.schema):
            again = Preprocessor.from_state(dict(stored), schema)
            assert (again.representation, again.frame) == ("mass", "canonical")
            np.testing.assert_array_equal(again.transform(x), pre.transform(x))
            np.testing.assert_array_equal(
                again.inverse_transform(pre.transform(x), pre.event_frames(x)),
                pre.inverse_transform(pre.transform(x), pre.event_frames(x)),
            )
    legacy = Preprocessor().fit(x, table.schema).get_state()
    assert "representation" not in legacy and "schema" not in legacy
    assert Preprocessor.from_state(legacy).representation == "energy"
    with pytest.raises(
        BundleError, match="array 'representation' names an unknown representation 'momentum'"
    ):
        Preprocessor.from_state({**state, "representation": np.asarray("momentum")})
    with pytest.raises(BundleError, match="array 'schema' is not a schema written by eventgen"):
        Preprocessor.from_state({**state, "schema": np.asarray("{not json")})
    other = Schema(table.schema.name, table.schema.columns)  # no declared masses
    with pytest.raises(BundleError, match="array 'schema' is not the bundle's schema"):
        Preprocessor.from_state(state, other)
    with pytest.raises(BundleError, match=r"lacks \['frame', 'schema'\]"):
        Preprocessor.from_state({k: v for k, v in state.items() if k not in ("frame", "schema")})
    with pytest.raises(ConfigError, match=r"unknown frame 'rest'; choose one of \['lab', 'canonical'\]"):
        Preprocessor("physics", "mass", "rest").fit(x, table.schema)  # type: ignore[arg-type]


def test_schema_masses_are_checked() -> None:
    columns = TTBAR.to_dict()["columns"]
    with pytest.raises(ConfigError, match="declares masses of 'x', which is not an object family"):
        Schema.from_dict({"columns": columns, "masses": {"x": [1.0]}})
    with pytest.raises(ConfigError, match="masses of 'l' must be a non-empty, increasing list"):
        Schema.from_dict({"columns": columns, "masses": {"l": [0.1, 0.01]}})
    with pytest.raises(ConfigError, match="'masses' must map families to lists of masses"):
        Schema.from_dict({"columns": columns, "masses": ["l"]})


def test_dilepton_columns_are_the_pair_and_come_back_exactly() -> None:
    table = read_events(Path(__file__).parent / "data" / "zll_small.parquet")
    x, schema = table.data.astype(np.float64), table.schema
    masses = x.copy()
    to_masses(masses, schema)
    pair = masses.copy()
    to_pair(pair, schema)
    l1, l2 = schema.index("l1_pt"), schema.index("l2_pt")
    both = (x[:, l1] > 0) & (x[:, l2] > 0)
    assert 0.5 < both.mean() < 1.0  # single-lepton events stay as they are
    np.testing.assert_array_equal(pair[~both], masses[~both])
    m_ll = derived_observables(table.data, schema, keep_undefined=True)["m_ll"]
    np.testing.assert_allclose(pair[both, l1], m_ll[both], rtol=1e-4, atol=1e-3)  # the pair's mass
    assert np.all(np.abs(pair[both][:, schema.index("l2_eta")]) <= 1.0)  # cos θ*
    back = pair.copy()
    from_pair(back, schema)
    # l1 is the lepton whose direction was stored: the same lepton, exactly
    np.testing.assert_allclose(back, masses, rtol=1e-9, atol=1e-9)


def test_ee_dilepton_columns_are_energies_below_the_beam_and_come_back_exactly() -> None:
    table = read_events(Path(__file__).parent / "data" / "zll_small.parquet")
    x, schema = table.data.astype(np.float64), table.schema
    masses = x.copy()
    to_masses(masses, schema)
    energy = beam_energy(masses, schema)
    # the largest lepton energy, rebuilt from pT, η and the declared mass: the beam energy
    assert (
        abs(energy - 91.1876 / 2) < 1e-5
        and energy >= x[:, [schema.index("l1_e"), schema.index("l2_e")]].max()
    )
    pair = masses.copy()
    to_beam(pair, schema, energy)
    l1, l2 = (schema.objects()[i] for i in (0, 1))
    both = (x[:, l1.pt] > 0) & (x[:, l2.pt] > 0)
    np.testing.assert_array_equal(pair[~both], masses[~both])  # single-lepton events stay as they are
    shortfall = pair[both][:, [l1.pt, l2.pt]]
    np.testing.assert_allclose(energy - shortfall, x[both][:, [l1.e, l2.e]], rtol=1e-6)
    assert shortfall.min() >= 0.0 and np.mean(shortfall < 1e-4) > 0.1  # many leptons on the beam energy
    acollinearity = pair[both, l2.eta]
    assert np.all((acollinearity >= 0) & (acollinearity <= np.pi)) and np.median(acollinearity) < 0.01
    np.testing.assert_array_equal(pair[both][:, [l1.eta, l1.phi]], masses[both][:, [l1.eta, l1.phi]])
    back = pair.copy()
    from_beam(back, schema, energy)
    np.testing.assert_allclose(back, masses, rtol=1e-9, atol=1e-9)  # the same leptons, in the same slots


def test_ee_dilepton_needs_a_lepton_and_keeps_its_beam_energy() -> None:
    table = read_events(Path(__file__).parent / "data" / "zll_small.parquet")
    no_leptons = table.data[table.data[:, table.schema.index("n_leptons")] == 0]
    with pytest.raises(ConfigError, match="no training event has a lepton: use representation 'mass'"):
        Preprocessor("quantile", "ee_dilepton", "canonical").fit(no_leptons, table.schema)
    pre = Preprocessor("quantile", "ee_dilepton", "canonical").fit(table.data, table.schema)
    state = pre.get_state()
    again = Preprocessor.from_state(state, table.schema)
    assert again.beam_energy_ == pre.beam_energy_
    np.testing.assert_array_equal(
        again.inverse_features(pre.transform(table.data)), pre.inverse_features(pre.transform(table.data))
    )
    with pytest.raises(BundleError, match=r"lacks \['beam_energy'\]"):
        Preprocessor.from_state({k: v for k, v in state.items() if k != "beam_energy"}, table.schema)
    with pytest.raises(BundleError, match="array 'beam_energy' has values down to -45.6, expected > 0"):
        Preprocessor.from_state({**state, "beam_energy": np.array(-45.6)}, table.schema)
    with pytest.raises(BundleError, match="array 'beam_energy' has 1 NaN"):
        Preprocessor.from_state({**state, "beam_energy": np.array(np.nan)}, table.schema)


def test_dilepton_needs_leptons_with_masses_and_a_count() -> None:
    schema = get_schema("deepevents")
    x = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet").data[:, : len(schema)]
    with pytest.raises(
        ConfigError, match="dilepton representation needs two leptons.*use representation 'mass'"
    ):
        Preprocessor("physics", "dilepton", "lab").fit(x, schema)  # type: ignore[arg-type]


@pytest.mark.parametrize("representation", ["dilepton", "ee_dilepton"])
@pytest.mark.parametrize("method", ["quantile", "physics"])
def test_dilepton_inverse_of_wild_decoder_output_is_finite_and_quiet(
    method: str, representation: str
) -> None:
    """Decoded rows far outside the training range (a Gaussian tail, an untrained model) become
    physical events without overflow warnings (the test run turns warnings into errors)."""
    table = read_events(Path(__file__).parent / "data" / "zll_small.parquet")
    pre = Preprocessor(method, representation, "canonical").fit(table.data, table.schema)  # type: ignore[arg-type]
    wild = np.random.default_rng(3).normal(0.0, 30.0, (4000, len(table.schema))).astype(np.float32)
    rows = np.ascontiguousarray(pre.inverse_features(wild))
    events = PhysicsCleanup().fit(table.data, table.schema).apply(rows, representation=pre.representation)
    assert np.isfinite(events).all() and physicality(events, table.schema)["all"] == 1.0
