"""Normalised samples: cross-section, N and the per-event weight in every file, the weight column,
Parquet statistics and HDF5 units."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from eventgen.bundle import Bundle
from eventgen.cli import main
from eventgen.errors import ConfigError, OutputError
from eventgen.generation import generate
from eventgen.io import EventWriter, read_events, read_metadata
from eventgen.normalisation import Normalisation, training_cross_section
from eventgen.run import load_run_job
from eventgen.schema import get_schema

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests" / "data" / "bundle"
SIGMA, SIGMA_ERR = 197.57787515510114, 3.0383968913475794  # pb, from the training sample's simulation


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(BUNDLE)


@pytest.fixture(scope="module")
def bundle_without_cross_section(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture bundle as if fitted on a file that records no cross-section."""
    path = tmp_path_factory.mktemp("nox") / "bundle"
    shutil.copytree(BUNDLE, path)
    meta = json.loads((path / "bundle.json").read_text())
    del meta["provenance"]["data_provenance"]["cross_section"]
    (path / "bundle.json").write_text(json.dumps(meta))
    return path


def _normalisation(path: Path) -> dict:
    return read_metadata(path)["provenance"]["normalisation"]


def test_the_bundle_knows_its_training_cross_section(bundle: Bundle) -> None:
    assert training_cross_section(bundle.metadata) == (SIGMA, SIGMA_ERR)
    assert training_cross_section({}) is None
    assert training_cross_section({"provenance": {"data_provenance": {"cross_section": {"pb": -1}}}}) is None


@pytest.mark.parametrize("suffix", ["parquet", "h5", "root"])
def test_every_format_carries_the_normalisation(bundle: Bundle, tmp_path: Path, suffix: str) -> None:
    if suffix == "root":
        pytest.importorskip("uproot")
    out = tmp_path / f"g.{suffix}"
    generate(bundle, 3000, out, seed=2, device="cpu")
    assert _normalisation(out) == {
        "cross_section": SIGMA,
        "cross_section_error": SIGMA_ERR,
        "unit": "pb",
        "n_events": 3000,
        "sum_of_weights": 3000.0,
        "event_weight": SIGMA / 3000,
        "event_weight_times": None,
        "weight_column": None,
    }


def test_weight_column_holds_sigma_over_n(bundle: Bundle, tmp_path: Path) -> None:
    plain, weighted = tmp_path / "plain.parquet", tmp_path / "w.parquet"
    generate(bundle, 3000, plain, seed=2, device="cpu")
    args = ["generate", str(BUNDLE), "-n", "3000", "-o", str(weighted), "--seed", "2", "--device", "cpu"]
    assert main([*args, "--weight-column", "xsec_weight", "-q"]) == 0
    table = read_events(weighted)
    assert table.schema.names == [*bundle.schema.names, "xsec_weight"]
    np.testing.assert_array_equal(table.data[:, :-1], read_events(plain).data)  # the same events
    w = table.column("xsec_weight")
    np.testing.assert_array_equal(w, np.float32(SIGMA / 3000))
    assert w.sum(dtype=np.float64) == pytest.approx(SIGMA, rel=1e-6)
    field = pq.read_schema(weighted).field("xsec_weight")
    assert field.metadata[b"unit"] == b"pb"
    assert _normalisation(weighted)["weight_column"] == "xsec_weight"


def test_weighted_sampling_normalises_by_the_sum_of_weights(bundle: Bundle, tmp_path: Path) -> None:
    sampling = {"selection": "weighted"}
    single = tmp_path / "w.h5"
    generate(bundle, 9000, single, seed=3, sampling=sampling, weight_column="xs", device="cpu")
    table = read_events(single)
    weights, xs = table.column("weight"), table.column("xs")
    norm = _normalisation(single)
    assert norm["event_weight_times"] == "weight" and norm["n_events"] == 9000
    assert norm["sum_of_weights"] == pytest.approx(weights.sum(dtype=np.float64), rel=1e-12)
    assert norm["event_weight"] == pytest.approx(SIGMA / norm["sum_of_weights"], rel=1e-15)
    np.testing.assert_allclose(xs, SIGMA * weights / norm["sum_of_weights"], rtol=1e-6)
    assert xs.sum(dtype=np.float64) == pytest.approx(SIGMA, rel=1e-6)
    with h5py.File(single) as f:
        assert f["events/xs"].attrs["unit"] == "pb"
    # shards carry the whole run's N and sum of weights, not their own
    shards = tmp_path / "ds"
    generate(
        bundle, 9000, shards, seed=3, sampling=sampling, weight_column="xs", shard_size=4000, device="cpu"
    )
    parts = sorted(shards.glob("part-*.parquet"))
    assert len(parts) == 3
    assert all(_normalisation(p) == norm for p in parts)
    np.testing.assert_array_equal(np.concatenate([read_events(p).data for p in parts]), table.data)
    manifest = json.loads((shards / "_manifest.json").read_text())
    assert manifest["run"]["normalisation"] == norm


def test_resume_keeps_the_run_normalisation(bundle: Bundle, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate(bundle, 5000, out, seed=1, shard_size=2000, weight_column="xs", device="cpu")
    first = read_events(out / "part-00000.parquet").column("xs")
    (out / "part-00002.parquet").unlink()
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:2]
    (out / "_manifest.json").write_text(json.dumps(manifest))
    generate(bundle, 5000, out, seed=1, shard_size=2000, weight_column="xs", device="cpu", resume=True)
    np.testing.assert_array_equal(read_events(out / "part-00002.parquet").column("xs")[:1], first[:1])
    assert _normalisation(out / "part-00002.parquet")["n_events"] == 5000
    with pytest.raises(OutputError, match=r"the run differs in \['n_events', 'normalisation'\]"):
        generate(bundle, 6000, out, seed=1, shard_size=2000, weight_column="xs", device="cpu", resume=True)


def test_without_a_cross_section(bundle_without_cross_section: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.parquet"
    assert main(["generate", str(bundle_without_cross_section), "-n", "100", "-o", str(out), "-q"]) == 0
    norm = _normalisation(out)
    assert (
        norm["cross_section"] is None and norm["cross_section_error"] is None and norm["event_weight"] is None
    )
    assert norm["n_events"] == 100
    other = tmp_path / "x.parquet"
    argv = [
        "generate",
        str(bundle_without_cross_section),
        "-n",
        "100",
        "-o",
        str(other),
        "--weight-column",
        "w",
    ]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "eventgen generate: error: --weight-column 'w' needs the training sample's cross-section, and the "
        "bundle has none (it was fitted on events that record none, as eventgen simulate writes them); "
        "leave out --weight-column and normalise by hand"
    ]
    assert not other.exists()


@pytest.mark.parametrize(
    ("name", "sampling", "match"),
    [
        ("met", None, "--weight-column 'met' names a column the events have already"),
        (
            "weight",
            {"selection": "weighted"},
            "--weight-column 'weight' names a column the events have already",
        ),
        ("", None, "the weight column needs a name"),
    ],
)
def test_weight_column_name_errors(bundle: Bundle, tmp_path: Path, name: str, sampling, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate(bundle, 10, tmp_path / "g.parquet", sampling=sampling, weight_column=name, device="cpu")
    assert list(tmp_path.iterdir()) == []


def test_normalisation_round_trips_through_its_record() -> None:
    norm = Normalisation(SIGMA, SIGMA_ERR, 10, 9.5, weighted=True, weight_column="xs")
    assert Normalisation.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    assert norm.event_weight == SIGMA / 9.5
    assert Normalisation(None, None, 10, 10.0).to_dict()["event_weight"] is None


def test_buffer_weight_sum_is_the_sum_of_the_written_weights(bundle: Bundle) -> None:
    from eventgen.sampling import SamplingSettings

    buffer = bundle.buffer.with_settings(SamplingSettings(selection="weighted"), seed=0)
    for n in (1, 4095, 4096, 10_001):
        _, weights = buffer.sample_range(0, n, 8)
        assert buffer.weight_sum(n, 8) == pytest.approx(weights.sum(dtype=np.float64), rel=1e-12)
    assert bundle.buffer.weight_sum(123, 8) == 123.0


def test_parquet_row_group_statistics_let_filters_skip_row_groups(tmp_path: Path) -> None:
    schema = get_schema("ttbar")
    events = np.zeros((4000, len(schema)), np.float32)
    events[:, 0] = np.arange(4000)  # met rises: row group k holds 1000k .. 1000k + 999
    path = tmp_path / "e.parquet"
    with EventWriter(path, schema, row_group_size=1000) as writer:
        for start in range(0, 4000, 500):
            writer.write(events[start : start + 500])
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 4
    stats = [meta.row_group(k).column(0).statistics for k in range(4)]
    assert all(s is not None and s.has_min_max for s in stats)
    assert [(s.min, s.max) for s in stats] == [(1000.0 * k, 1000.0 * k + 999) for k in range(4)]
    (fragment,) = pads.dataset(path).get_fragments()
    kept = fragment.split_by_row_group(pc.field("met") >= 2500)
    assert [rg.id for f in kept for rg in f.row_groups] == [2, 3]  # row groups 0 and 1 are skipped


def test_hdf5_columns_carry_their_units(tmp_path: Path) -> None:
    schema = get_schema("ttbar")
    path = tmp_path / "e.h5"
    with EventWriter(path, schema) as writer:
        writer.write(np.ones((10, len(schema)), np.float32))
    with h5py.File(path) as f:
        for column in schema.columns:
            assert f["events"][column.name].attrs["unit"] == column.unit
            assert f["events"][column.name].attrs["kind"] == column.kind
        assert f["events/met"].attrs["unit"] == "GeV"


def test_run_config_takes_a_weight_column(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("generate: {n_events: 10, weight_column: xsec_weight}\n")
    assert load_run_job(str(config)).generate.weight_column == "xsec_weight"
    config.write_text("generate: {n_events: 10, weight_column: [a, b]}\n")
    with pytest.raises(ConfigError, match="generate.weight_column must be a string"):
        load_run_job(str(config))
