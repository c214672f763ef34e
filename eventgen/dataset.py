"""Sharded runs: the shard plan, shards run on an executor, and the dataset directory.

A run of ``n_events`` is cut into shards of ``shard_size`` consecutive events
(:class:`ShardPlan`); shard ``k`` depends only on the run's settings and ``k``, so shards
can run in any order, in any process, on any machine. :func:`run_shards` runs them: in this
thread one after another, or on any :class:`concurrent.futures.Executor` (a process pool, a
Dask cluster through ``Client.get_executor()``), yielding each result as it arrives.

Generation writes its shards into a dataset directory (:class:`Dataset`)::

    part-00000.parquet  part-00001.parquet  ...  _manifest.json

Each shard is written under a temporary name and renamed when complete, by whichever
process ran it. The manifest holds the run's record (what must match for the dataset to be
resumed) and one entry per finished shard (file, event count, sha256); only the process
driving the run writes it, atomically, as each shard arrives. A run killed at any moment
leaves finished shards listed and at most some hidden temporary files, which a resumed run
removes before it writes the missing shards.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eventgen.errors import ConfigError, OutputError
from eventgen.formats import writer_format

MANIFEST = "_manifest.json"
SHARD_PREFIX = "part-"

T = TypeVar("T")


@dataclass(frozen=True)
class ShardPlan:
    """How a run of ``n_events`` is cut into shards of ``shard_size`` consecutive events (the last may be short)."""

    n_events: int
    shard_size: int

    def __post_init__(self) -> None:
        if self.n_events < 0:
            raise ConfigError(f"n_events must be >= 0, found {self.n_events}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be at least 1, found {self.shard_size}")

    @property
    def n_shards(self) -> int:
        return -(-self.n_events // self.shard_size)

    def span(self, k: int) -> tuple[int, int]:
        """Events ``[start, stop)`` of shard ``k``."""
        return k * self.shard_size, min((k + 1) * self.shard_size, self.n_events)

    def size(self, k: int) -> int:
        """Number of events of shard ``k``."""
        start, stop = self.span(k)
        return stop - start


def run_shards(
    task: Callable[[int], T], shards: Iterable[int], executor: concurrent.futures.Executor | None = None
) -> Generator[T, None, None]:
    """``task(k)`` of each shard ``k``, yielded as each finishes.

    Without an executor the shards run in this thread, one after another in the given order, each
    only when the previous result has been taken. With one, they are all submitted at once and
    yielded in the order they finish. A finished shard's future is dropped before its result is
    yielded, so a Dask cluster releases the result at once (and does not recompute a finished
    shard when the worker that holds it dies). When a shard fails, the shards not yet started are
    cancelled and its error is raised; so they are when the caller stops early (close the iterator,
    for example with :func:`contextlib.closing`).
    """
    if executor is None:
        yield from map(task, shards)
        return
    pending: set[concurrent.futures.Future[T]] = set()
    try:
        for k in shards:
            pending.add(executor.submit(task, k))
        while pending:
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            results = [future.result() for future in done]
            del done  # the futures go here: nothing holds them while their results are used
            yield from results
            del results
    finally:
        for future in pending:
            future.cancel()


@dataclass(frozen=True)
class Shard:
    """One finished shard as the manifest lists it."""

    index: int
    file: str
    n_events: int
    sha256: str


@dataclass
class Manifest:
    """A dataset's ``_manifest.json``: the run's record and its finished shards by index."""

    path: Path
    run: dict[str, Any]
    shards: dict[int, Shard] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            shards = [Shard(**s) for s in data["shards"]]
            return cls(path, data["run"], {s.index: s for s in shards})
        except (ValueError, KeyError, TypeError):
            raise OutputError(
                f"{str(path)!r} is not a readable eventgen manifest; pass --overwrite to write the dataset anew"
            ) from None

    @property
    def n_events(self) -> int:
        """Events in the finished shards."""
        return sum(s.n_events for s in self.shards.values())

    def missing(self, plan: ShardPlan) -> list[int]:
        """Indices of the shards of ``plan`` not finished yet, in order."""
        return [k for k in range(plan.n_shards) if k not in self.shards]

    def record(self, shard: Shard) -> None:
        """Add a finished shard (replacing an entry of the same index) and rewrite the file atomically."""
        self.shards[shard.index] = shard
        self.write()

    def write(self) -> None:
        data = {
            "format": "eventgen-dataset",
            "run": self.run,
            "shards": [asdict(self.shards[k]) for k in sorted(self.shards)],
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class Dataset:
    """A dataset directory: the shards of one run in one format, ``part-00000.parquet ...``, and the manifest."""

    directory: Path
    plan: ShardPlan
    fmt: str = "parquet"

    def __post_init__(self) -> None:
        writer_format(self.fmt)  # a writable format, or a ConfigError naming them

    def shard_path(self, k: int) -> Path:
        """The file of shard ``k``."""
        return self.directory / f"{SHARD_PREFIX}{k:05d}{writer_format(self.fmt).suffix}"

    def run_record(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What the manifest records of a run with metadata ``meta``, and what must match to resume it."""
        record = {**meta, "shard_size": self.plan.shard_size, "format": self.fmt}
        from eventgen.io import json_default

        return json.loads(json.dumps(record, default=json_default))  # as it reads back from the file

    def open(self, meta: dict[str, Any], *, resume: bool = False, overwrite: bool = False) -> Manifest:
        """Create the directory and its manifest, or with ``resume`` reopen them; returns the manifest.

        Resuming needs the same run record (:meth:`run_record`) and removes the temporary files that an
        interrupted run left. Without ``resume``, a directory with files in it is refused unless
        ``overwrite``, which removes its shards and manifest first.
        """
        run = self.run_record(meta)
        path = self.directory / MANIFEST
        if resume and path.exists():
            manifest = Manifest.read(path)
            if manifest.run != run:
                changed = sorted(
                    k for k in run.keys() | manifest.run.keys() if manifest.run.get(k) != run.get(k)
                )
                raise OutputError(
                    f"cannot resume {str(self.directory)!r}: the run differs in {changed}; "
                    "repeat the original settings or write to a new directory"
                )
            self.remove_temporary_files()
            return manifest
        if self.directory.exists() and any(self.directory.iterdir()):
            if not overwrite:
                raise OutputError(
                    f"output {str(self.directory)!r} exists already; pass --resume to continue it, "
                    "--overwrite to replace it, or choose another name"
                )
            for child in self.directory.iterdir():
                if child.is_file() and (
                    child.name.startswith((SHARD_PREFIX, "." + SHARD_PREFIX)) or child.name == MANIFEST
                ):
                    child.unlink()
        if not self.directory.parent.exists():
            raise OutputError(f"output folder {str(self.directory.parent)!r} does not exist; create it first")
        self.directory.mkdir(exist_ok=True)
        manifest = Manifest(path, run)
        manifest.write()
        return manifest

    def finished(self, k: int) -> Shard:
        """The manifest entry of shard ``k``, whose file is complete (its sha256 is computed here)."""
        from eventgen.bundle import file_sha256

        path = self.shard_path(k)
        return Shard(k, path.name, self.plan.size(k), file_sha256(path))

    def remove_temporary_files(self) -> None:
        """Remove the hidden temporary files of interrupted writers; call it only while no shard is being written."""
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
