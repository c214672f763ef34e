"""Generation: files, determinism across batch sizes, threads and interruptions, shards, resume."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.dataset import MANIFEST
from eventgen.errors import BundleError, ConfigError, OutputError
from eventgen.fitting import BufferSettings, fit
from eventgen.generation import GenerateOptions, SharedBundle, generate, shared_bundle
from eventgen.io import read_events, read_metadata
from eventgen.metrics import physicality
from eventgen.model import ModelSettings
from eventgen.train import TrainSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    table = read_events(ROOT / "tests" / "data" / "ttbar_small.parquet")
    fitted = fit(
        table,
        model_settings=ModelSettings(latent_dim=8, hidden=64, depth=2),
        train_settings=TrainSettings(epochs=15, batch_size=128, device="cpu", threads=1),
        buffer_settings=BufferSettings(weight_column="met"),
        seed=5,
    )
    fitted.save(tmp_path_factory.mktemp("b") / "bundle")
    return fitted


def _dataset(path: Path) -> np.ndarray:
    manifest = json.loads((path / MANIFEST).read_text())
    return np.concatenate([read_events(path / s["file"]).data for s in manifest["shards"]])


@pytest.mark.parametrize("suffix", ["parquet", "h5"])
def test_writes_physical_events_with_metadata(bundle: Bundle, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"g.{suffix}"
    result = generate(bundle, 10_000, out, seed=3, device="cpu")
    table = read_events(out)
    assert table.data.shape == (10_000, 28) and table.schema == bundle.schema
    assert result.n_generated == 10_000
    meta = read_metadata(out)["provenance"]
    assert meta["bundle_hash"] == bundle.hash and meta["seed"] == 3
    assert meta["sampling"]["mode"] == "buffer" and meta["sampling"]["gamma"] == 0.05
    assert physicality(table.data, bundle.schema, bundle.cleanup.pt_min_)["all"] == 1.0


def test_generated_objects_have_physical_masses(bundle: Bundle, tmp_path: Path, lepton_flavours: Any) -> None:
    """The default representation: every mass >= 0 and finite, leptons electrons or muons."""
    assert (bundle.preprocessor.representation, bundle.preprocessor.frame) == ("mass", "canonical")
    generate(bundle, 20_000, tmp_path / "g.parquet", seed=2, device="cpu")
    events, schema = read_events(tmp_path / "g.parquet").data, bundle.schema
    assert physicality(events, schema, bundle.cleanup.pt_min_)["all"] == 1.0
    for o in schema.objects():
        e, pt, eta = (events[:, c].astype(np.float64) for c in (o.e, o.pt, o.eta))
        m2 = e**2 - (pt * np.cosh(eta)) ** 2
        present = pt > 0
        assert np.all(np.isfinite(m2)) and np.all(m2[present] >= -1e-6 * e[present] ** 2)
        if o.family == "l":
            electron, muon, _ = lepton_flavours(events, schema, o.name)
            assert present.sum() > 1000 and np.all((electron | muon)[present])
    # the symmetries are put back: the leading jet's azimuth is uniform, its eta symmetric
    phi, eta = events[:, schema.index("j1_phi")], events[:, schema.index("j1_eta")]
    assert np.histogram(phi, bins=8, range=(-np.pi, np.pi))[0].min() > 0.8 * len(events) / 8
    assert abs(np.mean(eta > 0) - 0.5) < 0.02


@pytest.mark.parametrize("representation", ["dilepton", "ee_dilepton"])
def test_dilepton_quantile_bundle_generates_physical_pairs(
    zll_path: Path, tmp_path: Path, lepton_flavours: Any, representation: str
) -> None:
    """A bundle in a dilepton representation with the quantile transform, saved and loaded:
    physical events, exact lepton flavours, the same events for any batch size."""
    from eventgen.observables import derived_observables

    table = read_events(zll_path)
    fitted = fit(
        table,
        preprocess="quantile",
        representation=representation,  # type: ignore[arg-type]
        model_settings=ModelSettings(latent_dim=6, hidden=32, depth=2),
        train_settings=TrainSettings(epochs=8, batch_size=128, device="cpu", threads=1),
        seed=3,
    )
    fitted.save(tmp_path / "b")
    bundle = Bundle.load(tmp_path / "b")
    assert bundle.preprocessor.quantiles_.shape == (1000, 9)
    for name, batch_size in (("a.parquet", 1000), ("b.parquet", 8192)):
        generate(bundle, 9000, tmp_path / name, seed=2, device="cpu", batch_size=batch_size)
    events, schema = read_events(tmp_path / "a.parquet").data, bundle.schema
    np.testing.assert_array_equal(events, read_events(tmp_path / "b.parquet").data)
    assert physicality(events, schema, bundle.cleanup.pt_min_)["all"] == 1.0
    for o in schema.objects():
        present = events[:, o.pt] > 0
        electron, muon, _ = lepton_flavours(events, schema, o.name)
        assert present.sum() > 1000 and np.all((electron | muon)[present])
    m_ll = derived_observables(events, schema)["m_ll"]
    assert len(m_ll) > 3000 and np.all((m_ll > 0) & (m_ll <= 1.01 * table.data[:, 0].max() * 2))
    if representation == "ee_dilepton":  # no lepton above the beam energy, the largest in training
        assert (
            bundle.preprocessor.beam_energy_ >= events[:, [schema.index("l1_e"), schema.index("l2_e")]].max()
        )


def test_same_events_for_any_batch_size_and_thread_count(bundle: Bundle, tmp_path: Path) -> None:
    runs = {
        "a.parquet": {"batch_size": 1000, "threads": 1},
        "b.parquet": {"batch_size": 65_536, "threads": 2},
        "c.h5": {"batch_size": 4097, "threads": 2},
    }
    data = {}
    for name, kwargs in runs.items():
        generate(bundle, 70_000, tmp_path / name, seed=11, device="cpu", **kwargs)
        data[name] = read_events(tmp_path / name).data
    np.testing.assert_array_equal(data["a.parquet"], data["b.parquet"])
    np.testing.assert_array_equal(data["a.parquet"], data["c.h5"])
    generate(bundle, 70_000, tmp_path / "d.parquet", seed=12, device="cpu")
    assert not np.array_equal(read_events(tmp_path / "d.parquet").data, data["a.parquet"])


def test_shards_equal_the_single_file_and_the_prefix(bundle: Bundle, tmp_path: Path) -> None:
    generate(bundle, 25_000, tmp_path / "one.parquet", seed=4, device="cpu")
    result = generate(
        bundle, 25_000, tmp_path / "ds", seed=4, shard_size=7_000, device="cpu", batch_size=3000
    )
    assert result.shards == 4
    manifest = json.loads((tmp_path / "ds" / MANIFEST).read_text())
    assert [s["n_events"] for s in manifest["shards"]] == [7000, 7000, 7000, 4000]
    single = read_events(tmp_path / "one.parquet").data
    np.testing.assert_array_equal(_dataset(tmp_path / "ds"), single)
    generate(bundle, 9_000, tmp_path / "short.h5", seed=4, device="cpu")
    np.testing.assert_array_equal(read_events(tmp_path / "short.h5").data, single[:9_000])


@pytest.mark.slow
def test_same_dataset_on_any_executor_and_from_the_options_object(bundle: Bundle, tmp_path: Path) -> None:
    generate(bundle, 25_000, tmp_path / "here", seed=4, shard_size=7_000, device="cpu")
    options = GenerateOptions(seed=4, shard_size=7_000, device="cpu", batch_size=3000)
    with ThreadPoolExecutor(2) as pool:
        result = generate(bundle, 25_000, tmp_path / "threads", options, executor=pool)
    assert (result.n_generated, result.shards) == (25_000, 4)
    spawn = multiprocessing.get_context("spawn")  # a fresh process: it loads the bundle from its directory
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        generate(bundle, 25_000, tmp_path / "processes", options, executor=pool)
    here = _dataset(tmp_path / "here")
    for name in ("threads", "processes"):
        manifest = json.loads((tmp_path / name / MANIFEST).read_text())
        assert manifest["run"] == json.loads((tmp_path / "here" / MANIFEST).read_text())["run"]
        np.testing.assert_array_equal(_dataset(tmp_path / name), here)


def test_shared_bundle_travels_by_directory_and_hash(bundle: Bundle) -> None:
    shared = SharedBundle(bundle)
    elsewhere = pickle.loads(pickle.dumps(shared))
    assert elsewhere is shared_bundle(shared.path, bundle.hash)  # one per process, loaded at first use
    assert pickle.loads(pickle.dumps(shared)) is elsewhere
    assert elsewhere.bundle.hash == bundle.hash and elsewhere.bundle is not bundle
    options = GenerateOptions(seed=1, device="cpu")
    assert elsewhere.source(options) is elsewhere.source(options)
    with pytest.raises(
        BundleError, match="has hash .* the run's has 000000000000; give every worker the same"
    ):
        _ = shared_bundle(shared.path, "0" * 64).bundle
    with pytest.raises(BundleError, match="never saved, so no other process can load it"):
        pickle.dumps(SharedBundle(dataclasses.replace(bundle, path=None)))


def test_dataset_reads_with_pyarrow_and_pandas(bundle: Bundle, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow.dataset as ds

    generate(bundle, 12_000, tmp_path / "ds", seed=1, shard_size=5_000, device="cpu")
    assert ds.dataset(tmp_path / "ds", format="parquet").count_rows() == 12_000
    assert len(pd.read_parquet(tmp_path / "ds")) == 12_000


def test_modes_and_weighted_sampling(bundle: Bundle, tmp_path: Path) -> None:
    prior = tmp_path / "prior.parquet"
    generate(bundle, 5_000, prior, seed=2, sampling={"mode": "prior"}, device="cpu")
    assert read_metadata(prior)["provenance"]["sampling"]["mode"] == "prior"
    buffer = tmp_path / "buffer.parquet"
    generate(bundle, 5_000, buffer, seed=2, device="cpu")
    assert not np.array_equal(read_events(prior).data, read_events(buffer).data)
    weighted = tmp_path / "weighted.parquet"
    with pytest.raises(ConfigError, match="cannot be refined"):
        generate(bundle, 100, weighted, seed=2, sampling={"selection": "weighted"}, device="cpu")
    assert not weighted.exists()
    generate(
        bundle, 40_000, weighted, seed=2, sampling={"selection": "weighted", "refine": False}, device="cpu"
    )
    table = read_events(weighted)
    assert table.schema.names[-1] == "weight"
    met, w = table.column("met"), table.column("weight")
    plain = read_events(buffer).column("met")
    assert met.mean() > 1.08 * plain.mean()  # high MET is enhanced ...
    assert abs(np.average(met, weights=w) / plain.mean() - 1) < 0.05  # ... and the weights undo it
    assert np.corrcoef(met, w)[0, 1] < -0.2  # the weight falls with the enhanced MET


def test_errors(bundle: Bundle, tmp_path: Path) -> None:
    generate(bundle, 100, tmp_path / "x.parquet", device="cpu")
    with pytest.raises(OutputError, match="exists already"):
        generate(bundle, 100, tmp_path / "x.parquet", device="cpu")
    with pytest.raises(OutputError, match="--resume needs a sharded output"):
        generate(bundle, 100, tmp_path / "y.parquet", resume=True, device="cpu")
    generate(bundle, 1000, tmp_path / "ds", shard_size=300, seed=1, device="cpu")
    with pytest.raises(OutputError, match=r"the run differs in \['seed'\]"):
        generate(bundle, 1000, tmp_path / "ds", shard_size=300, seed=2, resume=True, device="cpu")
    with pytest.raises(ConfigError, match="at least 1"):
        generate(bundle, 0, tmp_path / "z.parquet", device="cpu")
    with pytest.raises(ConfigError, match="gamma=-1.0 is invalid"):
        generate(bundle, 100, tmp_path / "z.parquet", sampling={"gamma": -1.0}, device="cpu")
    with pytest.raises(ConfigError, match="the batch size must be at least 1, found 0"):
        generate(bundle, 100, tmp_path / "b.parquet", batch_size=0, device="cpu")
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(OutputError, match="on an executor .* writes a dataset of shards"):
            generate(bundle, 100, tmp_path / "e.parquet", device="cpu", executor=pool)
        with pytest.raises(BundleError, match="load the bundle from its directory; save the bundle first"):
            generate(dataclasses.replace(bundle, path=None), 100, tmp_path / "e", device="cpu", executor=pool)
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "e").exists()


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_events(bundle: Bundle, tmp_path: Path) -> None:
    n, shard = 600_000, 40_000
    args = [
        str(bundle.path),
        "-n",
        str(n),
        "--shard-size",
        str(shard),
        "--seed",
        "8",
        "--device",
        "cpu",
        "-q",
    ]
    code = "import sys; from eventgen.cli import main; sys.exit(main())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", code, "generate", *args, "-o", str(out)], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = out / MANIFEST
        if manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads((out / MANIFEST).read_text())["shards"])
    assert 0 < done < n // shard
    resumed = subprocess.run(
        [sys.executable, "-c", code, "generate", *args, "-o", str(out), "--resume"],
        env=env,
        capture_output=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.glob(".*"))  # no half-written shard left behind
    reference = tmp_path / "reference.parquet"
    generate(bundle, n, reference, seed=8, device="cpu")
    np.testing.assert_array_equal(_dataset(out), read_events(reference).data)


def test_flow_mode_is_stored_in_the_bundle_and_reproducible(
    bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventgen.buffer import DensityBuffer
    from eventgen.cli import main
    from eventgen.sampling import SamplingSettings

    settings = SamplingSettings(mode="flow", flow_transforms=2, flow_hidden=16, flow_epochs=2)
    with pytest.raises(ConfigError, match="fitted with mode 'buffer': fit it with 'buffer: {mode: flow}'"):
        generate(bundle, 100, tmp_path / "refused.parquet", sampling=settings, device="cpu")
    argv = ["generate", str(bundle.path), "-n", "100", "-o", str(tmp_path / "cli.parquet"), "--mode", "flow"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fit it with 'buffer: {mode: flow}' in the fit config" in err[0]
    assert not (tmp_path / "refused.parquet").exists() and not (tmp_path / "cli.parquet").exists()

    buffer = DensityBuffer(settings, seed=5).fit(bundle.buffer.mu_, bundle.buffer.sigma_)
    dataclasses.replace(bundle, buffer=buffer, path=None).save(tmp_path / "flow-bundle")
    flow_bundle = Bundle.load(tmp_path / "flow-bundle")
    assert flow_bundle.buffer.settings == settings
    data = []
    for i, kwargs in enumerate([{"batch_size": 1000, "threads": 1}, {"batch_size": 65_536, "threads": 2}]):
        generate(flow_bundle, 9000, tmp_path / f"{i}.parquet", seed=3, device="cpu", **kwargs)
        data.append(read_events(tmp_path / f"{i}.parquet").data)
    np.testing.assert_array_equal(data[0], data[1])
    assert physicality(data[0], bundle.schema, bundle.cleanup.pt_min_)["all"] == 1.0
    cool = tmp_path / "cool.parquet"
    generate(flow_bundle, 9000, cool, seed=3, sampling={"temperature": 0.5}, device="cpu")
    assert read_metadata(cool)["provenance"]["sampling"]["temperature"] == 0.5
    assert not np.array_equal(read_events(cool).data, data[0])
