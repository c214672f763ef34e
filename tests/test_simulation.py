"""Tests of eventgen.simulation: settings validation, determinism and physics properties.

The settings tests need no Pythia; the others are marked ``pythia`` and skip without it.
Samples are small (a few hundred events) so the module runs in well under a minute.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventgen.config import from_mapping
from eventgen.errors import ConfigError
from eventgen.jobs import load_simulate_job
from eventgen.schema import BUILTIN_SCHEMAS
from eventgen.simulation import (
    PYTHIA_SEED_MAX,
    SimulationSettings,
    pythia_seed,
    schema_for,
    simulate,
    simulate_shard,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHARD = 40


# --- settings (no Pythia needed) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"process": "wz"}, "unknown process 'wz'"),
        ({"jet_algorithm": "siscone"}, "unknown jet_algorithm"),
        ({"jet_r": 0.0}, "jet_r must be > 0"),
        ({"jet_pt_min": -1.0}, "jet_pt_min must be >= 0"),
        ({"lepton_pt_min": -5.0}, "lepton_pt_min must be >= 0"),
        ({"jet_eta_max": -2.5}, "jet_eta_max must be > 0"),
        ({"lepton_iso_dr": 0.0}, "lepton_iso_dr must be > 0"),
        ({"lepton_iso_max": -0.1}, "lepton_iso_max must be > 0"),
        ({"met_eta_max": 0.0}, "met_eta_max must be > 0"),
        ({"ecm": -13000.0}, "ecm must be a positive energy"),
        ({"min_leptonic_w": 3}, "min_leptonic_w must be 0, 1 or 2"),
        ({"pythia": "PartonLevel:MPI = off"}, "pythia must be a list"),
    ],
)
def test_invalid_settings_raise(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SimulationSettings(**changes)


def test_for_process_fills_process_defaults() -> None:
    ttbar, zll = SimulationSettings.for_process("ttbar"), SimulationSettings.for_process("zll")
    assert (ttbar.ecm, ttbar.min_leptonic_w) == (13000.0, 1)
    assert (zll.ecm, zll.min_leptonic_w) == (91.1876, 0)
    assert SimulationSettings(process="zll").ecm_gev == 91.1876
    wjets = SimulationSettings.for_process("wjets")
    assert (wjets.ecm, wjets.min_leptonic_w) == (13000.0, 0)
    with pytest.raises(ConfigError, match="unknown process"):
        SimulationSettings.for_process("higgs")  # type: ignore[arg-type]


@pytest.mark.parametrize("process", ["ttbar", "zll", "wjets"])
def test_config_files_map_onto_settings(process: str) -> None:
    job = load_simulate_job(str(CONFIGS / f"simulate-{process}.yaml"), n_events=123, seed=None)
    assert job.settings == SimulationSettings.for_process(process)  # type: ignore[arg-type]
    assert (job.n_events, job.seed, job.output) == (123, 1, f"{process}.parquet")


def test_unknown_config_key_names_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key simulate\.jet_radius; valid keys are"):
        from_mapping(SimulationSettings, {"jet_radius": 0.4}, "simulate")


def test_schema_for_and_seeds() -> None:
    assert schema_for("ttbar") is BUILTIN_SCHEMAS["ttbar"] and len(schema_for("ttbar")) == 28
    assert len(schema_for("zll")) == 9
    assert schema_for("wjets") is BUILTIN_SCHEMAS["ttbar"]
    seeds = [pythia_seed(7, k) for k in range(100)]
    assert all(1 <= s <= PYTHIA_SEED_MAX for s in seeds)
    assert len(set(seeds)) == 100 and pythia_seed(7, 0) != pythia_seed(8, 0)
    assert seeds == [pythia_seed(7, k) for k in range(100)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard_size": 0}, "shard_size"),
        ({"workers": 0}, "workers"),
        ({"workers": 2, "executor": ThreadPoolExecutor(1)}, "either workers .* or an executor, not both"),
    ],
)
def test_simulate_argument_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate(SimulationSettings(), 10, seed=0, **kwargs)


# --- simulation (Pythia) -----------------------------------------------------------------


@pytest.fixture(scope="session")
def ttbar() -> tuple[np.ndarray, dict[str, Any]]:
    pytest.importorskip("pythia8mc")
    return simulate(SimulationSettings.for_process("ttbar"), 200, seed=11, workers=2, shard_size=SHARD)


@pytest.fixture(scope="session")
def zll() -> tuple[np.ndarray, dict[str, Any]]:
    pytest.importorskip("pythia8mc")
    return simulate(SimulationSettings.for_process("zll"), 400, seed=11, workers=1, shard_size=100)


@pytest.fixture(scope="session")
def wjets() -> tuple[np.ndarray, dict[str, Any]]:
    pytest.importorskip("pythia8mc")
    return simulate(SimulationSettings.for_process("wjets"), 200, seed=11, workers=1, shard_size=100)


def _objects(events: np.ndarray, process: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per family ("j", "l"), in rank order: ``(present (n_events,), kin (n_events, 4) e/pt/eta/phi)``."""
    schema = schema_for(process)  # type: ignore[arg-type]
    families: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for obj in schema.objects():
        family, rank = obj.name[0], int(obj.name[1:])
        count = events[:, schema.index("n_jets" if family == "j" else "n_leptons")]
        families.setdefault(family, []).append((count >= rank, events[:, [obj.e, obj.pt, obj.eta, obj.phi]]))
    return families


@pytest.mark.pythia
@pytest.mark.parametrize("sample", ["ttbar", "zll", "wjets"])
def test_shape_dtype_and_provenance(sample: str, request: pytest.FixtureRequest) -> None:
    events, prov = request.getfixturevalue(sample)
    n = 400 if sample == "zll" else 200
    assert events.shape == (n, len(schema_for(sample))) and events.dtype == np.float32  # type: ignore[arg-type]
    assert np.isfinite(events).all()
    assert prov["n_events"] == n and prov["seed"] == 11 and prov["settings"]["process"] == sample
    assert prov["n_accepted"] == n and prov["n_tried"] >= n
    assert (
        prov["cross_section"]["pb"] > 0 and 0 < prov["cross_section"]["pb_err"] < prov["cross_section"]["pb"]
    )
    assert prov["versions"]["pythia8mc"] and prov["versions"]["fastjet"]
    assert any(line.startswith("Beams:eCM") for line in prov["pythia_lines"])


@pytest.mark.pythia
def test_identical_for_any_worker_count_executor_and_per_shard(
    ttbar: tuple[np.ndarray, dict[str, Any]],
) -> None:
    events, _ = ttbar
    settings = SimulationSettings.for_process("ttbar")
    again, _ = simulate(settings, 80, seed=11, workers=1, shard_size=SHARD)
    np.testing.assert_array_equal(again, events[:80])
    with ThreadPoolExecutor(1) as pool:  # any executor
        on_pool, _ = simulate(settings, 80, seed=11, shard_size=SHARD, executor=pool)
    np.testing.assert_array_equal(on_pool, events[:80])
    shard, info = simulate_shard(settings, SHARD, seed=11, shard_index=2)
    np.testing.assert_array_equal(shard, events[2 * SHARD : 3 * SHARD])
    assert info["pythia_seed"] == pythia_seed(11, 2)


@pytest.mark.pythia
def test_different_seeds_differ(zll: tuple[np.ndarray, dict[str, Any]]) -> None:
    other, _ = simulate(SimulationSettings.for_process("zll"), 100, seed=12, workers=1, shard_size=100)
    assert not np.array_equal(other, zll[0][:100])


@pytest.mark.pythia
@pytest.mark.parametrize("sample", ["ttbar", "zll", "wjets"])
def test_objects_are_physical_and_zero_filled(sample: str, request: pytest.FixtureRequest) -> None:
    events, _ = request.getfixturevalue(sample)
    for family, objects in _objects(events, sample).items():
        for rank, (present, kin) in enumerate(objects, start=1):
            assert (np.all(kin == 0, axis=1) == ~present).all(), f"{family}{rank}: zero-filling vs count"
            e, pt, eta, _ = kin[present].T.astype(np.float64)
            assert (pt > 0).all()
            assert (e >= pt * np.cosh(eta) * (1 - 1e-5)).all()
            if rank > 1:  # pT ordering: the previous object is present and at least as hard
                before_present, before = objects[rank - 2]
                assert before_present[present].all() and (before[present, 1] >= kin[present, 1]).all()
    phis = [i for i, name in enumerate(schema_for(sample).names) if name.endswith("phi")]  # type: ignore[arg-type]
    assert ((events[:, phis] > -np.float32(np.pi)) & (events[:, phis] <= np.float32(np.pi))).all()


@pytest.mark.pythia
def test_ttbar_statistics(ttbar: tuple[np.ndarray, dict[str, Any]]) -> None:
    events, prov = ttbar
    names = schema_for("ttbar").names
    n_jets, n_leptons = events[:, names.index("n_jets")], events[:, names.index("n_leptons")]
    assert (n_leptons >= 1).mean() > 0.6  # one W -> e/mu nu is required; cuts and isolation lose some
    assert 3.0 < n_jets.mean() < 6.0
    assert (events[:, names.index("met")] > 0).all()
    assert 100 < prov["cross_section"]["pb"] < 400  # LO 13 TeV ttbar (~500 pb) x P(>= 1 W -> e/mu nu) ~ 0.38


@pytest.mark.pythia
def test_wjets_statistics(wjets: tuple[np.ndarray, dict[str, Any]]) -> None:
    events, prov = wjets
    names = schema_for("wjets").names
    n_jets, n_leptons = events[:, names.index("n_jets")], events[:, names.index("n_leptons")]
    assert 0.5 < (n_leptons == 1).mean() and (n_leptons == 2).mean() < 0.1  # one W -> e/mu nu
    assert 0.8 < n_jets.mean() < 2.5 and (n_jets >= 1).mean() > 0.6  # W + 1 parton, pTHat > 30 GeV
    one = n_leptons >= 1  # the lepton + MET transverse mass has its Jacobian peak below m_W
    met, met_phi, pt, phi = (
        events[one, names.index(n)].astype(np.float64) for n in ("met", "met_phi", "l1_pt", "l1_phi")
    )
    mt = np.sqrt(2 * met * pt * (1 - np.cos(phi - met_phi)))
    assert 50 < np.median(mt) < 85 and (mt < 100).mean() > 0.85
    assert 1000 < prov["cross_section"]["pb"] < 20000  # LO W(-> e/mu nu) + jet, pTHat > 30 GeV


@pytest.mark.pythia
def test_leptonic_w_veto_lowers_the_cross_section() -> None:
    pytest.importorskip("pythia8mc")
    settings = SimulationSettings.for_process("ttbar")
    _, vetoed = simulate_shard(settings, 60, seed=3, shard_index=0)
    _, inclusive = simulate_shard(SimulationSettings(min_leptonic_w=0), 60, seed=3, shard_index=0)
    ratio = vetoed["sigma_mb"] / inclusive["sigma_mb"]
    assert 0.25 < ratio < 0.55  # 1 - (1 - BR(W -> e/mu nu))^2 = 0.385


@pytest.mark.pythia
def test_zll_dilepton_mass_near_z_peak(zll: tuple[np.ndarray, dict[str, Any]]) -> None:
    events, _ = zll
    both = events[:, -1] >= 2
    assert both.mean() > 0.7
    e1, pt1, eta1, phi1, e2, pt2, eta2, phi2 = events[both, :8].T.astype(np.float64)
    px = pt1 * np.cos(phi1) + pt2 * np.cos(phi2)
    py = pt1 * np.sin(phi1) + pt2 * np.sin(phi2)
    pz = pt1 * np.sinh(eta1) + pt2 * np.sinh(eta2)
    mass = np.sqrt(np.maximum((e1 + e2) ** 2 - px**2 - py**2 - pz**2, 0))
    assert 88 < np.median(mass) < 92
    assert (np.abs(mass - 91.19) < 5).mean() > 0.7


@pytest.mark.pythia
def test_unknown_pythia_line_raises() -> None:
    pytest.importorskip("pythia8mc")
    with pytest.raises(ConfigError, match="Pythia does not understand the setting 'Foo:bar = 1'"):
        simulate_shard(SimulationSettings(pythia=("Foo:bar = 1",)), 5, seed=0, shard_index=0)
