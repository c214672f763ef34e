"""Evaluation report and baselines on the committed ttbar sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from eventgen.baselines import baseline_events, ceiling_events
from eventgen.errors import ConfigError, InputError
from eventgen.evaluation import SchemaMismatchError, evaluate, headline
from eventgen.fitting import fit
from eventgen.io import EventTable, read_events, sample_events, write_events
from eventgen.metrics import compare, physicality
from eventgen.model import ModelSettings
from eventgen.report import write_report
from eventgen.schema import Column, Schema
from eventgen.train import TrainSettings

DATA = Path(__file__).parent / "data" / "ttbar_small.parquet"


@pytest.fixture(scope="module")
def split() -> tuple[EventTable, EventTable]:
    table = read_events(DATA)
    return EventTable(table.data[:1500], table.schema), EventTable(table.data[1500:], table.schema)


@pytest.fixture(scope="module")
def bundle(split: tuple[EventTable, EventTable]):
    settings = TrainSettings(epochs=3, batch_size=256, device="cpu", threads=1)
    return fit(
        split[0], model_settings=ModelSettings(latent_dim=6, hidden=32, depth=2), train_settings=settings
    )


def test_truth_against_truth_looks_like_truth(split: tuple[EventTable, EventTable]) -> None:
    train, test = split
    result = evaluate(EventTable(test.data[::-1].copy(), test.schema), test, train, seed=1, max_events=700)
    g, t = result["generated"], result["truth"]
    assert abs(t["classifier_auc"][0] - 0.5) < 4 * t["classifier_auc"][1] + 0.02
    assert abs(result["memorisation"]["truth"]["ratio"][0] - 1) < 0.15
    assert {"columns", "observables", "mmd", "frechet", "holes", "physicality"} <= set(g)
    assert headline(result)[0][0].startswith("classifier AUC")


@pytest.mark.slow
def test_baselines_are_physical_and_smearing_is_flagged(bundle, split: tuple[EventTable, EventTable]) -> None:
    train, test = split
    ratios = {}
    for name in ("smear", "kde", "gmm", "flow"):
        events = baseline_events(name, train.data, bundle, 600, seed=2, n_components=5, flow_epochs=3)
        assert events.shape == (600, 28) and np.isfinite(events).all()
        assert physicality(events, bundle.schema, bundle.cleanup.pt_min_)["all"] == 1.0
        result = evaluate(EventTable(events, train.schema), test, train, seed=3, max_events=600)
        ratios[name] = result["memorisation"]["generated"]["ratio"][0]
    assert ratios["smear"] < 0.5 < ratios["kde"]  # a replaying generator is exposed
    assert ratios["flow"] > 0.5  # a density model that does not copy
    with pytest.raises(ConfigError, match="unknown baseline 'vae'"):
        baseline_events("vae", train.data, bundle, 10, seed=0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def noisy(split: tuple[EventTable, EventTable]) -> tuple[EventTable, dict]:
    """Held-out events scaled by 1.1 and their evaluation against the held-out events."""
    test = split[1]
    events = EventTable((test.data * 1.1).astype(np.float32), test.schema)
    return events, evaluate(events, test, None, seed=0, max_events=500)


def test_report_files(
    tmp_path: Path, split: tuple[EventTable, EventTable], noisy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the report without the plots extra
    test, (events, result) = split[1], noisy
    report = write_report(
        result, tmp_path / "rep", generated=events, reference=test, extra_rows=[("same", result)]
    )
    text = report.read_text()
    assert "| metric | eventgen | same | truth vs truth |" in text
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["generated"]["classifier_auc"][0] > 0.5
    assert not list((tmp_path / "rep").glob("**/*.png"))
    assert "<img" not in (tmp_path / "rep" / "report.html").read_text()


@pytest.mark.slow
def test_report_plots(tmp_path: Path, split: tuple[EventTable, EventTable], noisy) -> None:
    for extra in ("matplotlib", "hist", "mplhep"):
        pytest.importorskip(extra)
    test, (events, result) = split[1], noisy
    write_report(result, tmp_path / "rep", generated=events, reference=test)
    pngs = [*test.schema.names, "m_jj", "m_jjj", "m_4j", "ht", "m_lj", "m_ll"]  # met: drawn as a column
    for png in pngs:
        assert (tmp_path / "rep" / "plots" / f"{png}.png").stat().st_size > 10_000
    assert sorted(p.stem for p in (tmp_path / "rep" / "plots").iterdir()) == sorted(pngs)  # no memorisation
    assert (tmp_path / "rep" / "report.html").read_text().count("<img ") == len(pngs)


def test_sample_events_reads_files_and_datasets_in_bounded_draws(tmp_path: Path) -> None:
    table = read_events(DATA)
    (tmp_path / "ds").mkdir()
    write_events(tmp_path / "ds" / "part-00000.parquet", table.data[:1000], table.schema)
    write_events(tmp_path / "ds" / "part-00001.h5", table.data[1000:], table.schema)
    drawn = sample_events(tmp_path / "ds", 500, seed=4)
    assert drawn.data.shape == (500, 28)
    rows = {r.tobytes() for r in table.data}
    assert all(r.tobytes() in rows for r in drawn.data)
    np.testing.assert_array_equal(sample_events(tmp_path / "ds", 500, seed=4).data, drawn.data)
    assert len(sample_events(DATA, 10**6, seed=0)) == 3000
    with pytest.raises(InputError, match="at least 20 held-out events"):
        evaluate(table, EventTable(table.data[:10], table.schema))


def test_truth_is_reused_only_for_the_same_reference(split: tuple[EventTable, EventTable]) -> None:
    train, test = split
    noisy = EventTable((test.data * 1.05).astype(np.float32), test.schema)
    first = evaluate(noisy, test, train, seed=5, max_events=400)
    again = evaluate(noisy, test, train, seed=5, max_events=400, truth_from=first)
    assert again == first
    with pytest.raises(InputError, match="another reference, seed or training sample"):
        evaluate(noisy, test, train, seed=6, max_events=400, truth_from=first)


# --------------------------------------------------------------------------- what a physicist sees


@pytest.fixture(scope="module")
def halves() -> tuple[np.ndarray, np.ndarray, Schema]:
    table = read_events(DATA)
    return table.data[:1500], table.data[1500:], table.schema


def test_wrong_object_masses_are_seen_only_with_the_physics_features(halves) -> None:
    a, b, schema = halves
    heavy = b.copy()
    heavy[:, schema.indices_of_kind("energy")] *= 1.05  # E off by 5%: every object gets a wrong mass
    wrong = compare(heavy, a, schema, seed=0, n_boot=2)
    assert wrong["classifier_auc"][0] > 0.95  # object masses among the features
    assert abs(wrong["classifier_auc_columns"][0] - 0.5) < 0.08  # the columns alone barely see it
    truth = compare(b, a, schema, seed=0, n_boot=2)
    for key in ("classifier_auc", "classifier_auc_columns"):
        assert abs(truth[key][0] - 0.5) < 4 * truth[key][1] + 0.01
    assert truth["classifier"] == {"features": "physics", "n_train": 750, "n_test": 750}


def test_a_weight_column_is_honoured(halves) -> None:
    a, b, schema = halves
    met = b[:, schema.index("met")]
    weights = np.where(met > np.median(met), 3.0, 1.0).astype(np.float32)  # a harder MET spectrum
    weighted_schema = Schema("ttbar-weighted", (*schema.columns, Column("weight", "generic")))
    generated = EventTable(np.column_stack([b, weights]), weighted_schema)
    reference = EventTable(a, schema)
    weighted = evaluate(generated, reference, seed=0, max_events=1500)
    plain = evaluate(EventTable(b, schema), reference, seed=0, max_events=1500)
    assert weighted["weighted"] == {"generated": True, "reference": False}
    w1 = weighted["generated"]["columns"]["met"]["w1"]
    assert w1[0] > 0.2 > 3 * plain["generated"]["columns"]["met"]["w1"][0]  # the weighted spectrum is harder
    assert weighted["generated"]["columns"]["met_phi"]["w1"][0] < 0.1  # weights unrelated to φ


def test_a_reference_of_another_schema_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eventgen.cli import main

    zll = Path(__file__).parent / "data" / "zll_small.parquet"
    ttbar = read_events(DATA)
    with pytest.raises(SchemaMismatchError, match=r"generated events have \['met', 'met_phi', 'j1_e'"):
        evaluate(ttbar, read_events(zll))
    out = tmp_path / "report"
    argv = ["evaluate", "--generated", str(DATA), "--reference", str(zll), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eventgen evaluate: error: the reference (schema 'zll')")
    assert "that the reference lacks" in err[0] and not out.exists()


def test_the_decoder_ceiling_reconstructs_held_out_half_b(
    split: tuple[EventTable, EventTable], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventgen.baselines
    from eventgen.bundle import Bundle

    bundle = Bundle.load(Path(__file__).parent / "data" / "bundle")
    train, test = split
    seen: list[np.ndarray] = []

    def spy(b: Bundle, heldout: np.ndarray) -> np.ndarray:
        seen.append(heldout.copy())
        return ceiling_events(b, heldout)

    monkeypatch.setattr(eventgen.baselines, "ceiling_events", spy)
    result = evaluate(test, test, train, bundle=bundle, seed=0, max_events=500)
    (given,) = seen
    assert given.shape == (500, 28)
    rows = {r.tobytes() for r in test.data}
    assert all(r.tobytes() in rows for r in given)  # held-out events, never the training events
    assert set(result["ceiling"]) == set(result["truth"])
    assert result["ceiling"]["physicality"]["all"] == 1.0
    assert {name for name, _, _ in headline(result)} >= {"classifier AUC (0.5 = indistinguishable)"}
    from eventgen.report import headline_table

    header, table = headline_table(result, [])
    assert header == ["metric", "eventgen", "decoder ceiling", "truth vs truth"]
    assert table[0][2] != "–" and table[-1][2] == "–"  # AUC given; C_T is not a ceiling's
