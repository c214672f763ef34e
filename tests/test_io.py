from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import eventgen.io
from eventgen.errors import ConfigError, InputError, OutputError
from eventgen.formats import FORMATS, EventFormat, format_names
from eventgen.io import (
    EventTable,
    EventWriter,
    count_events,
    iter_events,
    read_events,
    read_metadata,
    sample_events,
    write_events,
)
from eventgen.schema import Schema, get_schema

TTBAR = get_schema("ttbar")
WRITABLE_SUFFIXES = [FORMATS[name].suffix.lstrip(".") for name in format_names(writable=True)]


@pytest.fixture
def events(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(3000, len(TTBAR))).astype(np.float32)


@pytest.mark.parametrize("suffix", WRITABLE_SUFFIXES)
def test_write_read_round_trip_is_exact(tmp_path, events: np.ndarray, suffix: str) -> None:
    path = tmp_path / f"e.{suffix}"
    write_events(path, events, TTBAR, {"seed": 7})
    table = read_events(path)
    assert table.schema == TTBAR
    assert table.metadata == {"seed": 7}
    np.testing.assert_array_equal(table.data, events)
    assert count_events(path) == len(events)
    assert read_metadata(path)["schema"]["name"] == "ttbar"


@pytest.mark.parametrize("suffix", WRITABLE_SUFFIXES)
@pytest.mark.parametrize("batch", [1, 999, 5000])
def test_streaming_writer_and_chunked_reader(tmp_path, events: np.ndarray, suffix: str, batch: int) -> None:
    path = tmp_path / f"e.{suffix}"
    with EventWriter(path, TTBAR, row_group_size=1024) as w:
        for start in range(0, 2100, batch):
            w.write(events[start : min(start + batch, 2100)])
        assert not path.exists()  # nothing at the final name before the commit
    chunks = list(iter_events(path, chunk_size=700))
    assert max(len(c) for c in chunks) <= 700
    np.testing.assert_array_equal(np.concatenate(chunks), events[:2100])


def test_files_open_without_eventgen(tmp_path, events: np.ndarray) -> None:
    write_events(tmp_path / "e.parquet", events, TTBAR)
    write_events(tmp_path / "e.h5", events, TTBAR)
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == TTBAR.names
    assert pq.read_table(tmp_path / "e.parquet").schema.field("met").type == "float"
    with h5py.File(tmp_path / "e.h5") as f:
        assert list(f["events"].keys()) == TTBAR.names
        np.testing.assert_array_equal(f["events/j1_pt"][:], events[:, 3])


def test_failed_write_leaves_nothing_and_keeps_existing_file(tmp_path, events: np.ndarray) -> None:
    path = tmp_path / "e.parquet"
    write_events(path, events[:10], TTBAR)
    with pytest.raises(RuntimeError), EventWriter(path, TTBAR, overwrite=True) as w:
        w.write(events)
        raise RuntimeError("killed")
    np.testing.assert_array_equal(read_events(path).data, events[:10])
    assert [p.name for p in tmp_path.iterdir()] == ["e.parquet"]


def test_refuses_to_overwrite(tmp_path, events: np.ndarray) -> None:
    path = tmp_path / "e.h5"
    write_events(path, events, TTBAR)
    with pytest.raises(OutputError, match="exists already.*--overwrite"):
        write_events(path, events, TTBAR)
    write_events(path, events[:5], TTBAR, overwrite=True)
    assert count_events(path) == 5


def test_csv_import_with_and_without_header(tmp_path, events: np.ndarray) -> None:
    deepevents = get_schema("deepevents")
    np.savetxt(tmp_path / "ttb.csv", events[:50, :26], delimiter=",")
    table = read_events(tmp_path / "ttb.csv")
    assert table.schema == deepevents
    np.testing.assert_allclose(table.data, events[:50, :26], rtol=1e-6)
    header = ",".join(TTBAR.names[::-1])
    np.savetxt(tmp_path / "rev.csv", events[:50, ::-1], delimiter=",", header=header, comments="")
    np.testing.assert_allclose(read_events(tmp_path / "rev.csv", TTBAR).data, events[:50], rtol=1e-6)


def test_bad_inputs_give_clear_errors(tmp_path, events: np.ndarray) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_events(tmp_path / "missing.parquet")
    write_events(tmp_path / "e.h5", events, TTBAR)
    data = (tmp_path / "e.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read hdf5 file .* truncated"):
        read_events(tmp_path / "cut.h5")
    write_events(tmp_path / "e.parquet", events, TTBAR)
    data = (tmp_path / "e.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read parquet file .* truncated"):
        read_events(tmp_path / "cut.parquet")
    bad = events.copy()
    bad[17, TTBAR.index("l1_eta")] = np.inf
    write_events(tmp_path / "inf.parquet", bad, TTBAR)
    with pytest.raises(InputError, match="NaN/inf values, first in column 'l1_eta' of event 17"):
        read_events(tmp_path / "inf.parquet")
    write_events(tmp_path / "zll.parquet", events[:, :9], get_schema("zll"))
    with pytest.raises(InputError, match=r"lacks columns \['met', 'met_phi'"):
        read_events(tmp_path / "zll.parquet", TTBAR)
    with pytest.raises(OutputError, match="cannot tell the format"):
        write_events(tmp_path / "e.txt", events, TTBAR)
    with pytest.raises(OutputError, match="folder .* does not exist"):
        write_events(tmp_path / "no" / "e.h5", events, TTBAR)
    with pytest.raises(OutputError, match=r"expected \(n, 28\)"), EventWriter(tmp_path / "x.h5", TTBAR) as w:
        w.write(events[:, :5])
    (tmp_path / "text.csv").write_text("a,b\n1,x\n")
    with pytest.raises(InputError, match="non-numeric"):
        read_events(tmp_path / "text.csv")


def _write_foreign(fmt: EventFormat, path, events: np.ndarray, schema: Schema) -> None:
    """A file of an import-only format as other tools write it (one writer per such format)."""
    writers = {
        "csv": lambda: np.savetxt(
            path, events, fmt="%.9g", delimiter=",", header=",".join(schema.names), comments=""
        )
    }
    assert fmt.name in writers, f"add how to write a {fmt.label} file to this test"
    writers[fmt.name]()


@pytest.mark.parametrize("name", format_names())
def test_every_registered_format_round_trips(tmp_path, events: np.ndarray, name: str) -> None:
    check_round_trip(FORMATS[name], tmp_path, events)


def check_round_trip(fmt: EventFormat, tmp_path, events: np.ndarray) -> None:
    """Write (or, for an import-only format, make) a file and read it back every way there is."""
    path = tmp_path / f"e{fmt.suffix}"
    if fmt.writable:
        write_events(path, events, TTBAR, {"seed": 7})
        assert read_metadata(path) == {"schema": TTBAR.to_dict(), "provenance": {"seed": 7}}
        assert read_events(path).schema == TTBAR
    else:
        _write_foreign(fmt, path, events, TTBAR)
        assert read_metadata(path) == {}
    assert fmt.columns(path) == TTBAR.names
    assert count_events(path) == fmt.count(path) == len(events)
    table = read_events(path, TTBAR)
    assert table.data.dtype == np.float32
    np.testing.assert_array_equal(table.data, events)
    chunks = list(iter_events(path, chunk_size=700, schema=TTBAR))
    assert [len(c) for c in chunks] == [700, 700, 700, 700, 200]
    np.testing.assert_array_equal(np.concatenate(chunks), events)
    columns = ["l2_phi", "met"]  # any columns, in the order asked for
    got = np.concatenate(list(fmt.chunks(path, columns, 1000)))
    np.testing.assert_array_equal(got, events[:, [TTBAR.index(c) for c in columns]])
    for suffix in fmt.suffixes:  # every suffix of the format names it
        other = tmp_path / f"other{suffix.upper()}"
        other.write_bytes(path.read_bytes())
        np.testing.assert_array_equal(read_events(other, TTBAR).data, events)


class _NPZ(EventFormat):
    """A format of this test only, to show that a new format is one class: a .npz file holding
    the events column-major (``data``), the column names and the metadata."""

    name, label, suffixes = "npz", "NumPy zip", (".npz",)

    def _load(self, path, key: str) -> np.ndarray:
        with np.load(path) as f:
            return f[key]

    def columns(self, path) -> list[str]:
        return [str(n) for n in self._load(path, "columns")]

    def metadata(self, path) -> str:
        return str(self._load(path, "metadata"))

    def count(self, path) -> int:
        return int(self._load(path, "data").shape[1])

    def chunks(self, path, columns: list[str], chunk_size: int):
        names = self.columns(path)
        data = self._load(path, "data")[[names.index(c) for c in columns]]
        for start in range(0, data.shape[1], chunk_size):
            yield np.ascontiguousarray(data[:, start : start + chunk_size].T)

    def writer(self, path, schema: Schema, metadata: str, compression, row_group_size: int):
        return _NPZWriter(path, schema.names, metadata)


class _NPZWriter:
    def __init__(self, path, names: list[str], metadata: str) -> None:
        self.path, self.names, self.metadata, self.parts = path, names, metadata, []

    def write(self, columns: np.ndarray) -> None:
        self.parts.append(columns.copy())

    def close(self) -> None:
        with open(self.path, "wb") as f:
            np.savez(f, data=np.concatenate(self.parts, axis=1), columns=self.names, metadata=self.metadata)

    def abort(self) -> None:
        pass


def test_a_new_format_is_one_registered_class(tmp_path, events: np.ndarray, monkeypatch) -> None:
    from eventgen.cli import build_parser

    monkeypatch.setitem(FORMATS, "npz", _NPZ())
    assert "npz" in format_names(writable=True)
    check_round_trip(FORMATS["npz"], tmp_path, events)
    args = build_parser().parse_args(["generate", "b", "-n", "5", "-o", "x", "--format", "npz"])
    assert args.format == "npz"
    (tmp_path / "ds").mkdir()
    write_events(tmp_path / "ds" / "part-00000.npz", events[:1000], TTBAR)
    write_events(tmp_path / "ds" / "part-00001.parquet", events[1000:], TTBAR)
    np.testing.assert_array_equal(
        np.sort(sample_events(tmp_path / "ds", 3000, seed=1).data, axis=0), np.sort(events, axis=0)
    )
    with pytest.raises(InputError, match=r"use \.parquet, \.h5, \.root, \.csv or \.npz$"):
        read_events(tmp_path / "e.txt")


def test_messages_list_the_registered_formats(tmp_path, events: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"cannot tell the format .* use \.parquet, \.h5, \.root or \.csv$"):
        read_events(tmp_path / "e.txt")
    with pytest.raises(
        OutputError, match=r"writes Parquet, HDF5 or ROOT, not CSV; use a \.parquet, \.h5 or \.root name"
    ):
        write_events(tmp_path / "e.csv", events, TTBAR)
    with pytest.raises(ConfigError, match="unknown format 'feather'; use parquet, hdf5 or root"):
        write_events(tmp_path / "e.parquet", events, TTBAR, fmt="feather")
    # an explicit format wins over the suffix
    write_events(tmp_path / "named.data", events, TTBAR, fmt="hdf5")
    with h5py.File(tmp_path / "named.data") as f:
        np.testing.assert_array_equal(f["events/met"][:], events[:, 0])
    (tmp_path / "ds").mkdir()
    for name in ("part-0.parquet", "part-1.h5", "notes.txt", "_manifest.json.bak", ".hidden.parquet"):
        (tmp_path / "ds" / name).write_bytes(b"")
    assert [p.name for p in eventgen.io.dataset_files(tmp_path / "ds")] == ["part-0.parquet", "part-1.h5"]


def test_event_table_checks_events_from_python(events: np.ndarray) -> None:
    bad = events.copy()
    bad[42, TTBAR.index("j3_pt")] = np.nan
    bad[50, 0] = np.inf
    with pytest.raises(InputError, match="table has 2 NaN/inf values, first in column 'j3_pt' of event 42"):
        EventTable(bad, TTBAR)
    with pytest.raises(InputError, match=r"shape \(n_events, 28\) .* found shape \(3000, 27\)"):
        EventTable(events[:, :27], TTBAR)
    with pytest.raises(InputError, match="found shape .* of <U1"):
        EventTable(np.full((2, 28), "x"), TTBAR)
    table = EventTable(events.astype(np.float64), TTBAR, {"seed": 1})
    assert len(table) == 3000 and table.metadata == {"seed": 1}
    np.testing.assert_array_equal(table.column("j1_pt"), events[:, 3])


def test_events_are_checked_once_on_their_way_into_training(tmp_path, monkeypatch) -> None:
    from eventgen.fitting import fit
    from eventgen.model import ModelSettings
    from eventgen.train import TrainSettings

    checked: list[tuple[int, ...]] = []
    original = eventgen.io.check_finite

    def spy(x: np.ndarray, *args, **kwargs) -> None:
        checked.append(x.shape)
        original(x, *args, **kwargs)

    for module in ("eventgen.io", "eventgen.preprocess", "eventgen.train"):
        monkeypatch.setattr(f"{module}.check_finite", spy)
    schema = get_schema("zll")
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(size=(300, len(schema)))).astype(np.float32)
    settings = {
        "model_settings": ModelSettings(latent_dim=2, hidden=8, depth=1),
        "train_settings": TrainSettings(epochs=1, batch_size=100, device="cpu", threads=1),
    }
    write_events(tmp_path / "e.parquet", x, schema)
    fit(read_events(tmp_path / "e.parquet"), **settings)  # from a file: the reader checks
    assert checked == [(300, len(schema))]
    checked.clear()
    fit(EventTable(x, schema), **settings)  # from Python: the table checks
    assert checked == [(300, len(schema))]


def test_reading_checks_every_chunk_and_sampling_every_event(tmp_path, events: np.ndarray) -> None:
    bad = events.copy()
    bad[2500, 3] = np.nan
    write_events(tmp_path / "nan.h5", bad, TTBAR)
    chunks = iter_events(tmp_path / "nan.h5", chunk_size=1000)
    assert len(next(chunks)) == len(next(chunks)) == 1000
    with pytest.raises(
        InputError, match="nan.h5' has 1 NaN/inf values, first in column 'j1_pt' of event 2500"
    ):
        next(chunks)
    with pytest.raises(InputError, match="first in column 'j1_pt' of event 2500"):
        sample_events(tmp_path / "nan.h5", 10, seed=0)  # even when the bad event is not drawn
