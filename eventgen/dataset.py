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
removes before it writes the missing shards. A resumed run first verifies every listed shard
against its entry (size, then sha256): a shard deleted, cut short or changed since is dropped
from the manifest and written again, identical to the first time, since shard ``k`` depends
only on the run and ``k``. A manifest that does not describe the run's plan is refused whole.

A run claims its directory (:class:`eventgen.outputs.OutputClaim`, the lock file
``.NAME.lock`` beside it) for as long as it writes, so a second run or a ``--resume`` of the
same directory is refused while the first one is going.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eventgen.errors import ConfigError, OutputError
from eventgen.formats import writer_format
from eventgen.outputs import OutputClaim

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
SHARD_PREFIX = "part-"
#: Most shards a run may have: they are named part-00000 ... part-99999, and the manifest lists
#: each finished one (and is rewritten as each arrives).
MAX_SHARDS = 100_000
#: Largest manifest read back (MAX_SHARDS entries take about 15 MB).
MAX_MANIFEST_BYTES = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")

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
        if self.n_shards > MAX_SHARDS:
            raise ConfigError(
                f"{self.n_events} events in shards of {self.shard_size} make {self.n_shards} shards, more than "
                f"the {MAX_SHARDS} a run may have (part-00000 ... part-99999, each listed in the manifest); "
                f"use shards of at least {-(-self.n_events // MAX_SHARDS)} events"
            )

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
    """One finished shard as the manifest lists it (``size`` in bytes; None in manifests that predate it)."""

    index: int
    file: str
    n_events: int
    sha256: str
    size: int | None = None

    @classmethod
    def from_json(cls, entry: object) -> Shard:
        """The shard of a manifest entry, or ValueError saying what is wrong with it."""
        if not isinstance(entry, dict):
            raise ValueError(f"a shard entry is {type(entry).__name__}, not an object")
        names = {f for f in cls.__dataclass_fields__}
        if not {"index", "file", "n_events", "sha256"} <= entry.keys() <= names:
            raise ValueError(f"a shard entry has the keys {sorted(entry)}, expected {sorted(names)}")
        shard = cls(**entry)
        for name in ("index", "n_events", "size"):
            value = getattr(shard, name)
            if (value is not None or name != "size") and (type(value) is not int or value < 0):
                raise ValueError(f"shard {name} {value!r} is not a non-negative integer")
        if (
            not isinstance(shard.file, str)
            or not isinstance(shard.sha256, str)
            or not _SHA256.fullmatch(shard.sha256)
        ):
            raise ValueError(f"shard {shard.index} has file {shard.file!r} and sha256 {shard.sha256!r}")
        return shard


@dataclass
class Manifest:
    """A dataset's ``_manifest.json``: the run's record and its finished shards by index."""

    path: Path
    run: dict[str, Any]
    shards: dict[int, Shard] = field(default_factory=dict)
    #: Shards that were listed but failed verification when the dataset was resumed (written again).
    damaged: list[int] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path``, or OutputError when it is not one (nothing is changed either way)."""
        try:
            if not path.is_file():
                raise ValueError("it is not a regular file")
            with open(path, "rb") as fh:
                text = fh.read(MAX_MANIFEST_BYTES + 1)
            if len(text) > MAX_MANIFEST_BYTES:
                raise ValueError(f"it is larger than {MAX_MANIFEST_BYTES >> 20} MB")
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != "eventgen-dataset":
                raise ValueError("it does not declare format 'eventgen-dataset'")
            if not isinstance(data.get("run"), dict) or not isinstance(data.get("shards"), list):
                raise ValueError("it needs an object 'run' and a list 'shards'")
            shards: dict[int, Shard] = {}
            for entry in data["shards"]:
                shard = Shard.from_json(entry)
                if shard.index in shards:
                    raise ValueError(f"shard {shard.index} is listed twice")
                shards[shard.index] = shard
            return cls(path, data["run"], shards)
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0][:120]
            raise OutputError(
                f"{str(path)!r} is not a readable eventgen manifest; pass --overwrite to write the dataset anew "
                f"({why})"
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
            "shards": [_entry(self.shards[k]) for k in sorted(self.shards)],
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def _shard_problem(path: Path, shard: Shard) -> str:
    """What is wrong with the file of a finished shard ("" when it is as its entry says)."""
    from eventgen.bundle import file_sha256

    try:
        if not path.is_file():
            return "is missing"
        size = path.stat().st_size
        if shard.size is not None and size != shard.size:
            return f"has {size} bytes, not {shard.size}"
        if file_sha256(path) != shard.sha256:
            return "differs from its sha256"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return ""


def _entry(shard: Shard) -> dict[str, Any]:
    """The manifest entry of a shard (without ``size`` when it is unknown)."""
    return {k: v for k, v in asdict(shard).items() if v is not None}


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
        if resume and (path.exists() or path.is_symlink()):
            manifest = Manifest.read(path)
            if manifest.run != run:
                changed = sorted(
                    k for k in run.keys() | manifest.run.keys() if manifest.run.get(k) != run.get(k)
                )
                raise OutputError(
                    f"cannot resume {str(self.directory)!r}: the run differs in {changed}; "
                    "repeat the original settings or write to a new directory"
                )
            self._check_plan(manifest)
            self.remove_temporary_files()
            manifest.damaged = self.verify(manifest)
            return manifest
        if self.directory.exists() and any(self.directory.iterdir()):
            if resume and not overwrite:
                raise OutputError(
                    f"cannot resume {str(self.directory)!r}: it has no {MANIFEST}, so no eventgen run of "
                    "shards was started there; choose another name, or pass --overwrite to replace its shards"
                )
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

    def claim(self) -> OutputClaim:
        """An exclusive claim on the directory (enter it, or ``acquire()``) for a run that writes it."""
        if not self.directory.parent.is_dir():
            raise OutputError(f"output folder {str(self.directory.parent)!r} does not exist; create it first")
        return OutputClaim(self.directory)

    def finished(self, k: int) -> Shard:
        """The manifest entry of shard ``k``, whose file is complete (its size and sha256 are taken here)."""
        from eventgen.bundle import file_sha256

        path = self.shard_path(k)
        return Shard(k, path.name, self.plan.size(k), file_sha256(path), path.stat().st_size)

    def _check_plan(self, manifest: Manifest) -> None:
        """Refuse a manifest whose shards are not shards of this dataset's plan (names, indices, sizes)."""
        for k, shard in manifest.shards.items():
            if k >= self.plan.n_shards or (shard.file, shard.n_events) != (
                self.shard_path(k).name,
                self.plan.size(k),
            ):
                raise OutputError(
                    f"{str(manifest.path)!r} is not a readable eventgen manifest; pass --overwrite to write the "
                    f"dataset anew (its shard {k} is {shard.file!r} of {shard.n_events} events, not a shard of "
                    f"{self.plan.n_events} events in shards of {self.plan.shard_size})"
                )

    def _problem(self, shard: Shard) -> str:
        return _shard_problem(self.shard_path(shard.index), shard)

    def verify(self, manifest: Manifest) -> list[int]:
        """Check every shard the manifest lists against its file; drop the bad ones, returning their indices.

        A shard is bad when its file is missing, or differs in size or sha256 from its entry. Its
        file is removed and its entry dropped (the manifest is rewritten), so the run writes it again.
        The files are hashed on a thread per core (400 MB in 0.9 s on two busy cores,
        ``benchmarks/bench_verify.py``).
        """
        shards = [manifest.shards[k] for k in sorted(manifest.shards)]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        with concurrent.futures.ThreadPoolExecutor(max(1, min(cores, len(shards)))) as pool:
            problems = list(pool.map(self._problem, shards))  # hashlib releases the GIL
        bad: list[int] = []
        for shard, problem in zip(shards, problems, strict=True):
            if problem:
                log.warning("shard %s %s; it is written again", shard.file, problem)
                bad.append(shard.index)
        for k in bad:
            del manifest.shards[k]
            path = self.shard_path(k)
            if path.is_file() or path.is_symlink():
                path.unlink()
        if bad:
            manifest.write()
        return bad

    def remove_temporary_files(self) -> None:
        """Remove the hidden temporary files of interrupted writers; call it only while no shard is being written."""
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
