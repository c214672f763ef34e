"""Evaluation report and baselines on the committed ttbar sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from eventgen.baselines import baseline_events
from eventgen.errors import ConfigError, InputError
from eventgen.evaluation import evaluate, headline
from eventgen.fitting import fit
from eventgen.io import EventTable, read_events, sample_events, write_events
from eventgen.metrics import physicality
from eventgen.model import ModelSettings
from eventgen.report import write_report
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
    for name in ("smear", "kde", "gmm"):
        events = baseline_events(name, train.data, bundle, 600, seed=2, n_components=5)
        assert events.shape == (600, 28) and np.isfinite(events).all()
        assert physicality(events, bundle.schema, bundle.cleanup.pt_min_)["all"] == 1.0
        result = evaluate(EventTable(events, train.schema), test, train, seed=3, max_events=600)
        ratios[name] = result["memorisation"]["generated"]["ratio"][0]
    assert ratios["smear"] < 0.5 < ratios["kde"]  # a replaying generator is exposed
    with pytest.raises(ConfigError, match="unknown baseline 'flow'"):
        baseline_events("flow", train.data, bundle, 10, seed=0)  # type: ignore[arg-type]


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
