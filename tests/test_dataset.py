"""Sharded runs: the shard plan, shards on executors, the manifest and resuming a dataset directory."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventgen.dataset import MANIFEST, Dataset, Manifest, Shard, ShardPlan, run_shards
from eventgen.errors import ConfigError, OutputError

META = {
    "generator": "eventgen test",
    "bundle_hash": "abc",
    "seed": 3,
    "n_events": 10,
    "sampling": {"gamma": 0.05},
}


@pytest.mark.parametrize(("n_events", "shard_size"), [(10, 3), (9, 3), (1, 5), (0, 4), (7, 1)])
def test_plan_covers_every_event_once_in_order(n_events: int, shard_size: int) -> None:
    plan = ShardPlan(n_events, shard_size)
    spans = [plan.span(k) for k in range(plan.n_shards)]
    events = [i for start, stop in spans for i in range(start, stop)]
    assert events == list(range(n_events))
    assert all(0 < plan.size(k) <= shard_size for k in range(plan.n_shards))
    assert all(plan.size(k) == shard_size for k in range(plan.n_shards - 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_events": 10, "shard_size": 0}, "shard_size must be at least 1, found 0"),
        ({"n_events": -1, "shard_size": 5}, "n_events must be >= 0, found -1"),
        (
            {"n_events": 10**15, "shard_size": 1000},
            "make 1000000000000 shards, more than the 100000 .* use shards of at least 10000000000 events",
        ),
    ],
)
def test_plan_errors(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ShardPlan(**kwargs)


def test_dataset_names_and_format_errors(tmp_path: Path) -> None:
    plan = ShardPlan(10, 3)
    assert Dataset(tmp_path, plan).shard_path(2) == tmp_path / "part-00002.parquet"
    assert Dataset(tmp_path, plan, "hdf5").shard_path(12) == tmp_path / "part-00012.h5"
    with pytest.raises(ConfigError, match="unknown format 'csv'; use parquet, hdf5 or root"):
        Dataset(tmp_path, plan, "csv")


def _write_shard(dataset: Dataset, k: int) -> Shard:
    dataset.shard_path(k).write_text(f"shard {k}")
    return dataset.finished(k)


def test_manifest_records_shards_atomically_and_resumes(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "ds", ShardPlan(10, 3))
    manifest = dataset.open(META)
    assert manifest.missing(dataset.plan) == [0, 1, 2, 3] and manifest.n_events == 0
    for k in (2, 0):
        manifest.record(_write_shard(dataset, k))
        assert not list(dataset.directory.glob(".*"))  # written through a temporary name, renamed
    on_disk = json.loads((dataset.directory / MANIFEST).read_text())
    assert on_disk["run"] == {**META, "shard_size": 3, "format": "parquet"}
    assert [s["index"] for s in on_disk["shards"]] == [0, 2]  # in index order, whatever the arrival order
    assert on_disk["shards"][1] == {
        "index": 2,
        "file": "part-00002.parquet",
        "n_events": 3,
        "sha256": hashlib.sha256(b"shard 2").hexdigest(),
        "size": 7,
    }
    (dataset.directory / ".part-00001.parquet.123.tmp").write_text("half a shard")  # of a killed writer
    resumed = dataset.open(META, resume=True)
    assert resumed.missing(dataset.plan) == [1, 3] and resumed.n_events == 6
    assert resumed.shards == manifest.shards
    assert not list(dataset.directory.glob(".*"))  # the killed writer's file is gone
    resumed.record(_write_shard(dataset, 2))  # a shard written again replaces its entry
    assert [s.index for s in Manifest.read(dataset.directory / MANIFEST).shards.values()] == [0, 2]


def test_resume_needs_the_same_run(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "ds", ShardPlan(10, 3))
    dataset.open(META)
    with pytest.raises(OutputError, match=r"the run differs in \['seed'\]"):
        dataset.open({**META, "seed": 4}, resume=True)
    with pytest.raises(OutputError, match=r"the run differs in \['format', 'shard_size'\]"):
        Dataset(tmp_path / "ds", ShardPlan(10, 4), "hdf5").open(META, resume=True)
    (tmp_path / "ds" / MANIFEST).write_text("{not json")
    with pytest.raises(OutputError, match="not a readable eventgen manifest; pass --overwrite"):
        dataset.open(META, resume=True)


def test_resume_drops_the_shards_whose_files_differ_from_their_entries(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "ds", ShardPlan(10, 3))
    manifest = dataset.open(META)
    for k in range(4):
        manifest.record(_write_shard(dataset, k))
    dataset.shard_path(0).unlink()
    dataset.shard_path(1).write_text("shard 1 and more")  # another size
    dataset.shard_path(3).write_text("shard 9")  # the same size, another sha256
    resumed = dataset.open(META, resume=True)
    assert resumed.damaged == [0, 1, 3] and resumed.missing(dataset.plan) == [0, 1, 3]
    assert sorted(p.name for p in dataset.directory.iterdir()) == [MANIFEST, "part-00002.parquet"]
    assert list(Manifest.read(dataset.directory / MANIFEST).shards) == [2]
    assert dataset.open(META, resume=True).damaged == []


def test_existing_output_needs_resume_or_overwrite(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "ds", ShardPlan(10, 3))
    dataset.open(META).record(_write_shard(dataset, 0))
    (dataset.directory / "notes.txt").write_text("the user's")
    with pytest.raises(OutputError, match="exists already; pass --resume to continue it, --overwrite"):
        dataset.open(META)
    manifest = dataset.open(META, overwrite=True)
    assert manifest.shards == {} and json.loads((dataset.directory / MANIFEST).read_text())["shards"] == []
    assert sorted(p.name for p in dataset.directory.iterdir()) == [
        MANIFEST,
        "notes.txt",
    ]  # only its own files go
    assert dataset.open(META, resume=True).missing(dataset.plan) == [0, 1, 2, 3]
    with pytest.raises(OutputError, match="does not exist; create it first"):
        Dataset(tmp_path / "missing" / "ds", ShardPlan(10, 3)).open(META)


def test_run_shards_in_this_thread_runs_each_shard_when_its_result_is_taken() -> None:
    ran: list[int] = []

    def task(k: int) -> int:
        ran.append(k)
        return 10 * k

    results = run_shards(task, [3, 1, 2])
    assert ran == []
    assert next(results) == 30 and ran == [3]  # the caller records shard 3 before shard 1 starts
    assert list(results) == [10, 20] and ran == [3, 1, 2]


@pytest.mark.parametrize(
    "executor", [concurrent.futures.ThreadPoolExecutor, concurrent.futures.ProcessPoolExecutor]
)
def test_run_shards_on_an_executor_yields_every_result(executor: Callable[[int], Any]) -> None:
    with executor(2) as pool:
        assert sorted(run_shards(abs, range(-5, 0), pool)) == [1, 2, 3, 4, 5]
        assert list(run_shards(abs, [], pool)) == []


class _TrackingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that keeps weak references to the futures it hands out."""

    def __init__(self) -> None:
        super().__init__(1)
        self.futures: list[weakref.ref[concurrent.futures.Future[Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(weakref.ref(future))
        return future


def test_run_shards_drops_each_future_before_its_result_is_used() -> None:
    with _TrackingExecutor() as pool:
        for n_results, _ in enumerate(run_shards(abs, [1, 2, 3], pool), start=1):
            alive = [ref() for ref in pool.futures if ref() is not None]
            assert sum(f.done() for f in alive) <= 3 - n_results  # no finished future is held for a result
            del alive


def test_run_shards_cancels_the_shards_not_started_when_one_fails_or_the_caller_stops() -> None:
    gate = threading.Event()
    started: list[int] = []

    def task(k: int) -> int:
        started.append(k)
        if k == 0:
            raise ValueError("shard 0 failed")
        if k > 1:
            gate.wait(10)
        return k

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="shard 0 failed"):
            list(run_shards(task, [0, 2, 3, 4], pool))
        gate.set()
    assert started in ([0], [0, 2])  # the one thread may have taken shard 2; 3 and 4 never started

    gate.clear()
    started.clear()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with contextlib.closing(run_shards(task, [1, 2, 3, 4], pool)) as results:
            assert next(results) == 1
        gate.set()
    assert started in ([1], [1, 2])
