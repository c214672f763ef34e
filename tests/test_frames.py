"""Tests of eventgen.frames: event tables as pandas DataFrames and as vector-ready Awkward Arrays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from eventgen.errors import ConfigError
from eventgen.io import EventTable, as_event_table, read_events
from eventgen.observables import derived_observables
from eventgen.schema import Column, Schema

ak = pytest.importorskip("awkward")
pd = pytest.importorskip("pandas")
vector = pytest.importorskip("vector")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def ttbar() -> EventTable:
    return read_events(DATA / "ttbar_small.parquet")


@pytest.fixture(scope="module")
def zll() -> EventTable:
    return read_events(DATA / "zll_small.parquet")


def test_to_pandas_round_trip_is_exact(ttbar: EventTable) -> None:
    frame = ttbar.to_pandas()
    assert list(frame.columns) == ttbar.schema.names
    assert (frame.dtypes == np.float32).all() and frame.shape == ttbar.data.shape
    np.testing.assert_array_equal(frame.to_numpy(), ttbar.data)
    back = as_event_table(frame)  # the built-in schema is recognised by the column names
    assert back.schema == ttbar.schema
    np.testing.assert_array_equal(back.data, ttbar.data)
    frame.iloc[0, 0] = -1.0  # the frame is a copy
    assert ttbar.data[0, 0] != -1.0


@pytest.mark.parametrize("sample", ["ttbar", "zll"])
def test_to_awkward_keeps_present_objects_in_rank_order(sample: str, request: pytest.FixtureRequest) -> None:
    table: EventTable = request.getfixturevalue(sample)
    events = table.to_awkward()
    assert len(events) == len(table)
    for family, name in (("j", "jets"), ("l", "leptons")):
        objects = table.schema.families().get(family, ([], -1))[0]
        if not objects:
            assert name not in events.fields
            continue
        collection = events[name]
        assert collection.fields == ["energy", "pt", "eta", "phi"]
        assert f"{len(table)} * var * Momentum4D[energy: float32, pt: float32" in str(collection.type)
        pt = table.data[:, [o.pt for o in objects]]
        present = pt > 0
        np.testing.assert_array_equal(ak.to_numpy(ak.num(collection)), present.sum(axis=1))
        for field, column in (("energy", "e"), ("pt", "pt"), ("eta", "eta"), ("phi", "phi")):
            flat = table.data[:, [getattr(o, column) for o in objects]][present]
            np.testing.assert_array_equal(ak.to_numpy(ak.flatten(collection[field])), flat)
        assert ak.all(ak.num(collection) == 0) or ak.all(collection.pt > 0)  # no absent (zero) objects
    counts = [c.name for c in table.schema.columns if c.kind == "count"]
    for name in counts:
        np.testing.assert_array_equal(ak.to_numpy(events[name]), table.column(name))


def test_met_is_a_record(ttbar: EventTable) -> None:
    met = ttbar.to_awkward().met
    assert str(met.type) == f"{len(ttbar)} * Momentum2D[pt: float32, phi: float32]"
    np.testing.assert_array_equal(ak.to_numpy(met.pt), ttbar.column("met"))
    np.testing.assert_array_equal(ak.to_numpy(met.phi), ttbar.column("met_phi"))


def _float64_vectors(collection: ak.Array) -> ak.Array:
    """What an analysis writes: the fields in float64, zipped as vector Momentum4D records."""
    return ak.zip(
        {f: ak.values_astype(collection[f], np.float64) for f in collection.fields}, with_name="Momentum4D"
    )


@pytest.mark.parametrize(
    ("sample", "name", "observable"), [("ttbar", "jets", "m_jj"), ("zll", "leptons", "m_ll")]
)
def test_vector_masses_equal_the_observables(
    sample: str, name: str, observable: str, request: pytest.FixtureRequest
) -> None:
    """With ``vector.register_awkward()``, pair masses are eventgen's ``m_jj`` and ``m_ll``."""
    table: EventTable = request.getfixturevalue(sample)
    vector.register_awkward()
    objects = table.to_awkward()[name]
    pairs = _float64_vectors(objects[ak.num(objects) >= 2])
    mass = ak.to_numpy((pairs[:, 0] + pairs[:, 1]).mass)
    expected = derived_observables(table.data, table.schema)[observable]
    assert len(mass) == len(expected) > 100
    np.testing.assert_allclose(mass, expected, rtol=1e-9, atol=1e-6)
    direct = objects[ak.num(objects) >= 2]  # the records as returned are vectors too (float32 arithmetic)
    np.testing.assert_allclose(
        ak.to_numpy((direct[:, 0] + direct[:, 1]).mass), expected, rtol=2e-3, atol=0.05
    )


def test_other_columns_stay_flat_fields() -> None:
    """A schema with a weight, an object mass column and a family without a collection name."""
    schema = Schema(
        "custom",
        (
            Column("b1_pt", "pt", "GeV", "b1"),
            Column("b1_eta", "eta", "", "b1"),
            Column("b1_phi", "phi", "rad", "b1"),
            Column("b1_m", "generic", "GeV", "b1"),
            Column("x1_pt", "pt", "GeV", "x1"),
            Column("met", "pt", "GeV"),
            Column("weight", "generic"),
        ),
    )
    data = np.array([[30.0, 0.5, 1.0, 4.7, 0.0, 12.0, 2.0], [0.0, 0.0, 0.0, 0.0, 8.0, 3.0, 0.5]], np.float32)
    events = EventTable(data, schema).to_awkward()
    assert events.fields == ["bjets", "x", "met", "weight"]
    assert events.bjets.fields == ["pt", "eta", "phi", "m"]
    assert ak.to_list(events.bjets.m) == [[pytest.approx(4.7)], []]
    assert ak.to_list(events.x.pt) == [[], [8.0]]  # a plain record: vector needs eta, phi and E or m
    assert "Momentum4D" in str(events.bjets.type) and "Momentum4D" not in str(events.x.type)
    assert ak.to_list(events.met) == [12.0, 3.0]  # no met_phi: a plain column
    assert ak.to_list(events.weight) == [2.0, 0.5]
    vector.register_awkward()
    assert ak.to_list(events.bjets.mass) == [[pytest.approx(4.7)], []]  # vector reads m as the mass


@pytest.mark.parametrize(("module", "method"), [("pandas", "to_pandas"), ("awkward", "to_awkward")])
def test_without_the_extra_the_error_names_it(
    ttbar: EventTable, module: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(
        ConfigError, match=rf"EventTable.{method} needs {module}, which is not installed; "
    ) as e:
        getattr(ttbar, method)()
    assert str(e.value).endswith(f"pip install 'eventgen[{module}]'")
