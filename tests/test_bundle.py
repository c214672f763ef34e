"""Fitting a bundle on the committed ttbar sample, saving, loading, and refusing unsafe bundles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from eventgen.bundle import Bundle, describe_bundle, read_bundle_metadata
from eventgen.errors import BundleError, ConfigError, OutputError
from eventgen.fitting import BufferSettings, fit
from eventgen.io import read_events
from eventgen.model import ModelSettings
from eventgen.sampling import SamplingSettings
from eventgen.train import TrainSettings

SMALL_MODEL = ModelSettings(latent_dim=6, hidden=32, depth=2)
SHORT_TRAINING = TrainSettings(epochs=2, batch_size=256, device="cpu", threads=1)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    table = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet")
    fitted = fit(table, model_settings=SMALL_MODEL, train_settings=SHORT_TRAINING, seed=3)
    fitted.save(tmp_path_factory.mktemp("b") / "bundle")
    return fitted


def test_fit_gives_a_complete_bundle(bundle: Bundle) -> None:
    assert bundle.schema.name == "ttbar"
    assert bundle.buffer.mu_.shape == (3000, SMALL_MODEL.latent_dim)
    training = bundle.metadata["training"]
    assert len(training["history"]) == 2 and training["seed"] == 3
    best = min(training["history"], key=lambda h: h["val_loss"])  # the best-validation epoch's losses
    assert training["best_epoch"] == best["epoch"] and training["best"] == best
    assert f"best {best['epoch']}: val loss {best['val_loss']:.5g}" in describe_bundle(
        bundle.path, read_bundle_metadata(bundle.path)
    )
    assert bundle.metadata["provenance"]["data_provenance"]["seed"] == 11  # the simulation's provenance
    assert len(bundle.hash) == 64


def test_save_load_round_trip(bundle: Bundle, tmp_path: Path) -> None:
    loaded = Bundle.load(bundle.path)
    assert loaded.hash == bundle.hash and loaded.schema == bundle.schema
    for key, value in bundle.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.buffer.mu_, bundle.buffer.mu_)
    np.testing.assert_array_equal(loaded.buffer.sigma_, bundle.buffer.sigma_)
    z = bundle.buffer.sample_range(0, 100, seed=1)[0]
    np.testing.assert_array_equal(loaded.buffer.sample_range(0, 100, seed=1)[0], z)
    x = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet").data[:50]
    np.testing.assert_array_equal(loaded.preprocessor.transform(x), bundle.preprocessor.transform(x))
    with pytest.raises(OutputError, match="exists already"):
        bundle.save(bundle.path)


def test_same_seed_gives_identical_weights_and_buffer() -> None:
    table = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet")
    table.data = table.data[:600]
    a, b = (fit(table, model_settings=SMALL_MODEL, train_settings=SHORT_TRAINING, seed=9) for _ in range(2))
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(a.buffer.mu_, b.buffer.mu_)
    np.testing.assert_array_equal(a.buffer.sigma_, b.buffer.sigma_)


def _copy(bundle: Bundle, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(bundle.path, target)
    return target


def test_pickle_payload_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = _copy(bundle, tmp_path)
    np.savez(target / "buffer.npz", mu=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(BundleError, match="pickled object.*refuses"):
        Bundle.load(target)
    (target / "model.npz").write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(BundleError, match="model.npz"):
        Bundle.load(target)


def test_corrupt_and_foreign_bundles_are_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = _copy(bundle, tmp_path)
    (target / "model.npz").write_bytes((target / "model.npz").read_bytes()[:100])
    with pytest.raises(BundleError, match="corrupt"):
        Bundle.load(target)
    meta = json.loads((bundle.path / "bundle.json").read_text())
    (target / "bundle.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(BundleError, match="not an eventgen bundle"):
        Bundle.load(target)
    (target / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable bundle.json"):
        Bundle.load(target)
    with pytest.raises(BundleError, match="not a directory"):
        Bundle.load(tmp_path / "nothing")


def test_weighted_buffer_settings_need_a_column() -> None:
    with pytest.raises(ConfigError, match="needs buffer.weight_column"):
        BufferSettings(SamplingSettings(selection="weighted"))
    with pytest.raises(
        ConfigError, match="^fit.yaml: buffer: selection 'weighted' needs buffer.weight_column"
    ):
        BufferSettings.from_mapping({"selection": "weighted"}, "fit.yaml: buffer")


def test_buffer_section_is_flat() -> None:
    got = BufferSettings.from_mapping(
        {"mode": "kde", "alpha": 2, "bandwidth": "silverman", "weight_column": "met", "weight_power": 2}
    )
    assert got == BufferSettings(SamplingSettings(mode="kde", alpha=2.0, bandwidth="silverman"), "met", 2)
    assert BufferSettings.from_mapping(None) == BufferSettings()
    with pytest.raises(ConfigError, match=r"unknown key buffer.modes; valid keys are \['mode', 'alpha'"):
        BufferSettings.from_mapping({"modes": "kde"})
    with pytest.raises(ConfigError, match="^buffer: mode='bufer' is unknown; choose one of buffer, kde"):
        BufferSettings.from_mapping({"mode": "bufer"})
    with pytest.raises(ConfigError, match="weight_power must be a finite number, found 'two'"):
        BufferSettings.from_mapping({"weight_power": "two"})
    with pytest.raises(ConfigError, match="buffer must be a mapping"):
        BufferSettings.from_mapping("kde")  # type: ignore[arg-type]


def test_sampling_settings_are_stored_once(bundle: Bundle) -> None:
    meta = json.loads((bundle.path / "bundle.json").read_text())
    assert meta["sampling"] == SamplingSettings().to_dict() == bundle.buffer.settings.to_dict()
    assert meta["format_version"] == 4 and "buffer_params" not in meta
    assert "buffer_settings" not in meta["training"]
    assert meta["training"]["buffer_weights"] == {"column": None, "power": 1.0}
    with np.load(bundle.path / "buffer.npz") as state:
        assert set(state.files) == {"state_version", "mu", "sigma"}
    assert Bundle.load(bundle.path).buffer.settings == bundle.buffer.settings


def test_invalid_stored_sampling_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = _copy(bundle, tmp_path)
    meta = json.loads((target / "bundle.json").read_text())
    (target / "bundle.json").write_text(json.dumps({**meta, "sampling": {**meta["sampling"], "mode": "vae"}}))
    with pytest.raises(BundleError, match="invalid sampling settings .*mode='vae' is unknown"):
        Bundle.load(target)
    (target / "bundle.json").write_text(json.dumps({**meta, "sampling": {**meta["sampling"], "beta": 1}}))
    with pytest.raises(BundleError, match="corrupt or from an incompatible eventgen"):
        Bundle.load(target)


def test_format_version_1_still_loads(bundle: Bundle, tmp_path: Path) -> None:
    """Version 1 kept the settings as ``buffer_params`` in bundle.json and again in buffer.npz."""
    target = _copy(bundle, tmp_path)
    meta = json.loads((target / "bundle.json").read_text())
    settings = meta.pop("sampling")
    (target / "bundle.json").write_text(json.dumps({**meta, "format_version": 1, "buffer_params": settings}))
    with np.load(target / "buffer.npz") as data:
        state = {k: data[k] for k in data.files}
    state.update(
        {k: np.asarray(v) for k, v in settings.items() if v is not None}, state_version=np.asarray(1)
    )
    np.savez(target / "buffer.npz", **state)
    loaded = Bundle.load(target)
    assert loaded.buffer.settings == bundle.buffer.settings and "buffer_params" not in loaded.metadata
    z = bundle.buffer.sample_range(0, 100, seed=1)[0]
    np.testing.assert_array_equal(loaded.buffer.sample_range(0, 100, seed=1)[0], z)
    meta["format_version"] = 5
    (target / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format version 5, this eventgen reads 1, 2, 3 and 4"):
        Bundle.load(target)


FIXTURE = Path(__file__).parent / "data" / "bundle"


def _fixture_copy(tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(FIXTURE, tmp_path / "bundle"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"hidden": 10**9},
            r"model.npz' is invalid: array 'encoder.0.weight' has shape \(64, 28\), expected \(1000000000, 28\)",
        ),
        ({"latent_dim": 10**9}, r"array 'to_mu.weight' has shape \(8, 64\), expected \(1000000000, 64\)"),
        ({"depth": 10**9}, "holds 14 arrays, too few for a model of depth 1000000000"),
        ({"depth": 3}, r"lacks \['encoder.3.linear.weight'"),
        ({"residual": False}, r"lacks \['encoder.2.weight'"),
    ],
)
def test_model_settings_that_do_not_match_the_weights_are_refused_before_allocating(
    tmp_path: Path, change: dict[str, int], match: str
) -> None:
    target = _fixture_copy(tmp_path)
    meta = json.loads((target / "bundle.json").read_text())
    meta["model_settings"].update(change)
    (target / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=match):
        Bundle.load(target)


def test_n_features_must_match_the_schema(tmp_path: Path) -> None:
    target = _fixture_copy(tmp_path)
    meta = json.loads((target / "bundle.json").read_text())
    (target / "bundle.json").write_text(json.dumps({**meta, "n_features": 10**9}))
    with pytest.raises(BundleError, match="n_features 1000000000 is not the schema's 28 columns"):
        Bundle.load(target)


def test_npz_files_that_are_not_plain_archives_are_refused(tmp_path: Path) -> None:
    target = _fixture_copy(tmp_path)
    with np.load(FIXTURE / "cleanup.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez_compressed(target / "cleanup.npz", **arrays)
    with pytest.raises(
        BundleError,
        match=r"cleanup.npz' is invalid: array 'families' is compressed \(np.savez .*eventgen fit",
    ):
        Bundle.load(target)
    (target / "cleanup.npz").write_text("families: j, l\n")
    with pytest.raises(BundleError, match=r"cleanup.npz' is corrupt \(not an .npz archive\)"):
        Bundle.load(target)
    np.save(target / "bare.npy", arrays["pt_min"])
    (target / "bare.npy").rename(target / "cleanup.npz")
    with pytest.raises(BundleError, match="is a bare array, not an .npz archive"):
        Bundle.load(target)


def test_members_larger_than_the_file_are_refused(tmp_path: Path) -> None:
    target = _fixture_copy(tmp_path)
    raw = bytearray((target / "preprocess.npz").read_bytes())
    entry = raw.index(b"PK\x01\x02")  # the central directory record of the first member
    raw[entry + 20 : entry + 28] = (10**9).to_bytes(4, "little") * 2  # compressed and full size
    (target / "preprocess.npz").write_bytes(bytes(raw))
    with pytest.raises(
        BundleError, match=r"preprocess.npz' is corrupt \(its members declare \d+ bytes, the file has"
    ):
        Bundle.load(target)
