"""Distributed execution: same dataset as one process, survives a killed worker, resumes, reads back;
the CLI runs on Dask when asked to and fails in one line when the scheduler is unreachable."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import eventgen.distributed  # noqa: E402
from eventgen.bundle import Bundle, file_sha256  # noqa: E402
from eventgen.cli import main  # noqa: E402
from eventgen.dataset import MANIFEST  # noqa: E402
from eventgen.distributed import DaskExecutor, cluster_client  # noqa: E402
from eventgen.errors import ConfigError  # noqa: E402
from eventgen.fitting import fit  # noqa: E402
from eventgen.generation import generate  # noqa: E402
from eventgen.io import read_events  # noqa: E402
from eventgen.model import ModelSettings  # noqa: E402
from eventgen.train import TrainSettings  # noqa: E402

DATA = Path(__file__).parent / "data"
N_EVENTS, SHARD = 100_000, 30_000
SEED = 11


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    fitted = fit(
        read_events(DATA / "ttbar_small.parquet"),
        model_settings=ModelSettings(latent_dim=8, hidden=32, depth=2),
        train_settings=TrainSettings(epochs=2, batch_size=256, device="cpu", threads=1),
        seed=5,
    )
    fitted.save(tmp_path_factory.mktemp("b") / "bundle")
    return fitted


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """One local cluster of two worker processes for the module."""
    with cluster_client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def reference(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process dataset."""
    out = tmp_path_factory.mktemp("ref") / "data"
    generate(bundle, N_EVENTS, out, seed=SEED, shard_size=SHARD, device="cpu")
    return out


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def _dataset(path: Path) -> np.ndarray:
    return np.concatenate([read_events(path / s["file"]).data for s in _manifest(path)["shards"]])


def _file_ids(path: Path, shards: list[dict]) -> dict[str, tuple[int, int]]:
    """Inode and modification time of each shard's file: they change when a file is replaced."""
    return {s["file"]: (st.st_ino, st.st_mtime_ns) for s in shards if (st := (path / s["file"]).stat())}


def _assert_complete(path: Path, n_shards: int) -> None:
    shards = _manifest(path)["shards"]
    assert [s["index"] for s in shards] == list(range(n_shards))
    for s in shards:
        assert file_sha256(path / s["file"]) == s["sha256"]
    assert not list(path.glob(".*.tmp"))


def test_same_dataset_as_one_process(
    bundle: Bundle, reference: Path, client: distributed.Client, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    executor = client.get_executor()  # any concurrent.futures executor on the cluster
    result = generate(
        bundle, N_EVENTS, out, seed=SEED, shard_size=SHARD, batch_size=20_000, executor=executor
    )
    assert result.n_generated == N_EVENTS and result.shards == 4
    assert _manifest(out)["run"] == _manifest(reference)["run"]
    _assert_complete(out, 4)
    np.testing.assert_array_equal(_dataset(out), _dataset(reference))


def test_resume_writes_only_missing_shards(
    bundle: Bundle, reference: Path, client: distributed.Client, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    generate(bundle, N_EVENTS, out, seed=SEED, shard_size=SHARD, device="cpu")
    manifest = _manifest(out)
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] != 2]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "part-00002.parquet").unlink()
    (out / ".part-00002.parquet.99999.tmp").write_bytes(b"half a shard")  # of the killed run
    result = generate(
        bundle,
        N_EVENTS,
        out,
        seed=SEED,
        shard_size=SHARD,
        resume=True,
        executor=DaskExecutor(client),
        progress=True,
    )
    assert result.n_generated == SHARD  # shard 2 only
    _assert_complete(out, 4)
    np.testing.assert_array_equal(_dataset(out), _dataset(reference))


@pytest.mark.slow
def test_killed_worker_has_its_shard_rerun(
    bundle: Bundle, client: distributed.Client, tmp_path: Path
) -> None:
    n_events, shard = 600_000, 40_000
    reference = tmp_path / "ref"
    generate(bundle, n_events, reference, seed=SEED, shard_size=shard, device="cpu")
    out = tmp_path / "data"
    pids = list(client.run(os.getpid).values())
    recorded_at_kill: list[int] = []
    committed: dict[str, tuple[int, int]] = {}

    def kill_a_worker_after_two_shards() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                n_recorded = len(_manifest(out)["shards"])
            except (FileNotFoundError, json.JSONDecodeError):
                n_recorded = 0
            if n_recorded >= 2:  # each worker has finished a shard
                os.kill(pids[0], signal.SIGKILL)
                recorded_at_kill.append(n_recorded)
                committed.update(_file_ids(out, _manifest(out)["shards"][:n_recorded]))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker_after_two_shards)
    killer.start()
    try:
        generate(bundle, n_events, out, seed=SEED, shard_size=shard, executor=DaskExecutor(client))
    finally:
        killer.join()
    assert recorded_at_kill and recorded_at_kill[0] < 15  # the worker died while the run was going on
    assert pids[0] not in client.run(os.getpid).values()
    _assert_complete(out, 15)
    assert _file_ids(out, [{"file": name} for name in committed]) == committed  # not written again
    np.testing.assert_array_equal(_dataset(out), _dataset(reference))


def test_dataset_reads_with_arrow_dask_and_pandas(
    bundle: Bundle, reference: Path, client: distributed.Client
) -> None:
    import dask.dataframe
    import pandas
    import pyarrow.dataset

    names = bundle.schema.names
    assert pyarrow.dataset.dataset(reference).count_rows() == N_EVENTS
    frame = pandas.read_parquet(reference)
    assert len(frame) == N_EVENTS and list(frame.columns) == list(names)
    assert len(dask.dataframe.read_parquet(reference)) == N_EVENTS


@pytest.mark.pythia
def test_simulate_same_as_one_process(client: distributed.Client) -> None:
    pytest.importorskip("pythia8mc")
    from eventgen.simulation import SimulationSettings, simulate

    settings = SimulationSettings.for_process("zll")
    events, provenance = simulate(settings, 300, seed=4, shard_size=100, executor=DaskExecutor(client))
    expected, expected_provenance = simulate(settings, 300, seed=4, workers=1, shard_size=100)
    np.testing.assert_array_equal(events, expected)
    timing = {"init_s", "generate_s", "reconstruct_s", "peak_rss_mib"}

    def without_timing(p: dict) -> dict:
        return {**p, "shards": [{k: v for k, v in s.items() if k not in timing} for s in p["shards"]]}

    assert without_timing(provenance) == without_timing(expected_provenance)


def test_needs_dask(bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"eventgen\[distributed\]"):
        DaskExecutor(workers=2)
    with pytest.raises(ConfigError, match=r"eventgen\[distributed\]"), cluster_client(workers=2):
        pass


def test_workers_and_scheduler_exclude_each_other(client: distributed.Client) -> None:
    with (
        pytest.raises(ConfigError, match="either --workers"),
        cluster_client(workers=2, scheduler="tcp://x:1"),
    ):
        pass
    with pytest.raises(ConfigError, match="either --workers"):
        DaskExecutor(workers=2, scheduler="tcp://x:1")
    with pytest.raises(ConfigError, match="either a client or workers"):
        DaskExecutor(client, workers=2)


@pytest.mark.parametrize("command", ["simulate", "generate"])
def test_unreachable_scheduler_is_a_one_line_error(
    command: str, bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dask

    args = {
        "simulate": ["simulate", "ttbar", "-n", "10", "-o", str(tmp_path / "t.parquet"), "--dask"],
        "generate": ["generate", str(bundle.path), "-n", "10", "-o", str(tmp_path / "t")],
    }[command]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main([*args, "--scheduler", "tcp://127.0.0.1:1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(
        f"eventgen {command}: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'"
    )
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.glob("t*/part-*")) and not (tmp_path / "t.parquet").exists()  # nothing ran here


@pytest.mark.pythia
def test_cli_simulate_runs_on_dask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pythia8mc")
    from eventgen.simulation import SimulationSettings, simulate

    made: list[dict[str, object]] = []
    submitted: list[object] = []

    class Recording(DaskExecutor):
        def __init__(self, **kwargs: object) -> None:
            made.append(kwargs)
            super().__init__(**kwargs)  # type: ignore[arg-type]

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            submitted.append(args)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(eventgen.distributed, "DaskExecutor", Recording)
    out = tmp_path / "zll.parquet"
    assert (
        main(["simulate", "zll", "-n", "200", "--seed", "4", "-o", str(out), "--dask", "--workers", "1"]) == 0
    )
    assert made == [{"workers": 1, "scheduler": None}] and len(submitted) == 1
    expected, _ = simulate(SimulationSettings.for_process("zll"), 200, seed=4, workers=1)
    np.testing.assert_array_equal(read_events(out).data, expected)
