from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from eventgen.errors import InputError, OutputError
from eventgen.io import EventWriter, count_events, iter_events, read_events, read_metadata, write_events
from eventgen.schema import get_schema

TTBAR = get_schema("ttbar")


@pytest.fixture
def events(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(3000, len(TTBAR))).astype(np.float32)


@pytest.mark.parametrize("suffix", ["parquet", "h5"])
def test_write_read_round_trip_is_exact(tmp_path, events: np.ndarray, suffix: str) -> None:
    path = tmp_path / f"e.{suffix}"
    write_events(path, events, TTBAR, {"seed": 7})
    table = read_events(path)
    assert table.schema == TTBAR
    assert table.metadata == {"seed": 7}
    np.testing.assert_array_equal(table.data, events)
    assert count_events(path) == len(events)
    assert read_metadata(path)["schema"]["name"] == "ttbar"


@pytest.mark.parametrize("suffix", ["parquet", "h5"])
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
