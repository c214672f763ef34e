"""ROOT output through uproot: the tree, its branches, values, metadata, shards, and the missing extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from eventgen.bundle import Bundle
from eventgen.cli import main
from eventgen.errors import InputError, OutputError
from eventgen.formats import ROOT_METADATA, ROOT_TREE
from eventgen.generation import generate
from eventgen.io import count_events, read_events, read_metadata, sample_events, write_events
from eventgen.schema import get_schema

uproot = pytest.importorskip("uproot")

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests" / "data" / "bundle"
TTBAR = get_schema("ttbar")


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(BUNDLE)


@pytest.fixture(scope="module")
def parquet_events(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Parquet output of the run that the ROOT files below repeat."""
    out = tmp_path_factory.mktemp("pq") / "g.parquet"
    generate(bundle, 5_000, out, seed=4, device="cpu")
    return out


def _parquet_columns(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {name: table[name].to_numpy() for name in table.column_names}


def test_generate_writes_a_tree_uproot_reads(tmp_path: Path, parquet_events: Path, capsys) -> None:
    out = tmp_path / "e.root"
    assert main(["generate", str(BUNDLE), "-n", "5000", "-o", str(out), "--seed", "4", "-q"]) == 0
    expected = _parquet_columns(parquet_events)
    with uproot.open(out) as f:
        assert sorted(f.keys(cycle=False)) == sorted([ROOT_TREE, ROOT_METADATA])
        assert f.classname_of(ROOT_TREE) == "TTree" and f.classname_of(ROOT_METADATA) == "TObjString"
        tree = f[ROOT_TREE]
        assert tree.keys() == TTBAR.names  # one branch per column, in schema order, nothing else
        assert tree.num_entries == 5000
        assert all(tree[name].interpretation.from_dtype == np.dtype(">f4") for name in TTBAR.names)
        arrays = tree.arrays(library="np")
        meta = json.loads(str(f[ROOT_METADATA]))
    assert arrays.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(arrays[name], values)
    parquet_meta = read_metadata(parquet_events)
    assert meta == parquet_meta == read_metadata(out)
    assert meta["provenance"]["seed"] == 4 and meta["provenance"]["n_events"] == 5000
    table = read_events(out)  # eventgen reads what it wrote, schema from the metadata
    assert table.schema == TTBAR and count_events(out) == 5000
    np.testing.assert_array_equal(table.data, read_events(parquet_events).data)


def test_sharded_root_dataset_equals_the_single_file(
    bundle: Bundle, tmp_path: Path, parquet_events: Path
) -> None:
    out = tmp_path / "ds"
    generate(bundle, 5_000, out, seed=4, shard_size=2_000, fmt="root", device="cpu")
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == [
        "part-00000.root",
        "part-00001.root",
        "part-00002.root",
    ]
    assert manifest["run"]["format"] == "root"
    parts = [read_events(out / s["file"]).data for s in manifest["shards"]]
    np.testing.assert_array_equal(np.concatenate(parts), read_events(parquet_events).data)
    with uproot.open(out / "part-00001.root") as f:
        assert f[ROOT_TREE].num_entries == 2000
        assert json.loads(str(f[ROOT_METADATA]))["provenance"]["first_event"] == 2000
    assert len(sample_events(out, 5_000, seed=1)) == 5_000
    # resume: a lost shard is written again, identical
    lost = (out / "part-00002.root").read_bytes()
    (out / "part-00002.root").unlink()
    manifest["shards"] = manifest["shards"][:2]
    (out / "_manifest.json").write_text(json.dumps(manifest))
    generate(bundle, 5_000, out, seed=4, shard_size=2_000, fmt="root", device="cpu", resume=True)
    np.testing.assert_array_equal(
        read_events(out / "part-00002.root").data, read_events(parquet_events).data[4000:]
    )
    assert len(lost) > 0


@pytest.mark.parametrize("compression", ["zstd", "lz4", "zlib", "lzma", None])
def test_compressions_round_trip(tmp_path: Path, rng: np.random.Generator, compression: str | None) -> None:
    events = rng.normal(size=(3000, len(TTBAR))).astype(np.float32)
    events[:, 5] = 0.0  # compressible
    path = tmp_path / "e.root"
    write_events(path, events, TTBAR, {"seed": 1}, compression=compression)
    np.testing.assert_array_equal(read_events(path).data, events)


def test_unknown_compression_is_refused_before_writing(tmp_path: Path, rng: np.random.Generator) -> None:
    events = rng.normal(size=(10, len(TTBAR))).astype(np.float32)
    with pytest.raises(
        OutputError, match="ROOT files take compression zstd, lz4, zlib, lzma or none, not 'gzip9'"
    ):
        write_events(tmp_path / "e.root", events, TTBAR, compression="gzip9")
    assert list(tmp_path.iterdir()) == []


def test_reads_flat_trees_written_elsewhere(tmp_path: Path, rng: np.random.Generator) -> None:
    met = rng.exponential(50.0, 100)
    njet = rng.integers(0, 5, 100).astype(np.int32)
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("tree", {"met": met.dtype, "njet": njet.dtype}).extend({"met": met, "njet": njet})
        f["other"] = {"x": met}  # an RNTuple, not a TTree: ignored
    table = read_events(path)
    assert table.schema.names == ["met", "njet"] and table.metadata == {}
    np.testing.assert_array_equal(table.data, np.column_stack([met, njet]).astype(np.float32))

    jagged = tmp_path / "jagged.root"
    import awkward as ak

    with uproot.recreate(jagged) as f:
        f.mktree("Events", {"jet_pt": "var * float64"}).extend({"jet_pt": ak.Array([[1.0, 2.0], [], [3.0]])})
    with pytest.raises(InputError, match="does not hold one number per event"):
        read_events(jagged)

    two = tmp_path / "two.root"
    with uproot.recreate(two) as f:
        f.mktree("a", {"x": met.dtype}).extend({"x": met})
        f.mktree("b", {"x": met.dtype}).extend({"x": met})
    with pytest.raises(InputError, match="has no TTree 'Events' and 2 other TTrees"):
        read_events(two)


def _without_uproot(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process where ``import uproot`` fails, as when the extra is not installed."""
    code = "import sys; sys.modules['uproot'] = None; from eventgen.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize("output", [["-o", "e.root"], ["-o", "ds", "--format", "root"]])
def test_without_uproot_one_line_names_the_extra(tmp_path: Path, output: list[str]) -> None:
    result = _without_uproot("generate", str(BUNDLE), "-n", "100", *output, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].endswith("writing ROOT files needs uproot; install it with pip install 'eventgen[root]'")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_without_uproot_reading_names_the_extra(tmp_path: Path, rng: np.random.Generator) -> None:
    write_events(tmp_path / "e.root", rng.normal(size=(10, len(TTBAR))).astype(np.float32), TTBAR)
    result = _without_uproot(
        "evaluate", "--generated", "e.root", "--reference", "e.root", "-o", "r", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "eventgen evaluate: error: reading ROOT files needs uproot; install it with pip install 'eventgen[root]'"
    ]
