"""Generation: sample the density buffer, decode in batches, clean up, stream to files.

Stages and threads (numba, NumPy's generators, torch and the file codecs release the GIL)::

    worker threads (one batch each: sample -> decode -> clean up)  --ordered, bounded-->  writer thread

Each worker turns a whole batch into events with torch at one intra-op thread, so the
cores never wait on each other inside an operation; results are handed to the writer in
order, at most two batches per worker ahead, so memory stays bounded.

Determinism: work is cut into fixed blocks of :data:`BLOCK` events at fixed positions of
the run; the random stream of a block depends only on (seed, block index) (see
:mod:`eventgen.buffer`) and every block is decoded as one full block, so the n-th event
depends only on the bundle, the seed, the sampling settings and n — not on the batch
size, the thread counts, the worker count or interruptions.

Output is one Parquet/HDF5 file, or a dataset directory of shards ``part-00000.parquet``
plus ``_manifest.json``, which is what makes a run resumable (``resume=True``).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eventgen import __version__
from eventgen.buffer import BLOCK
from eventgen.decode import CHUNK
from eventgen.errors import ConfigError, OutputError
from eventgen.formats import writer_format
from eventgen.io import EventWriter
from eventgen.schema import Column, Schema

log = logging.getLogger(__name__)

assert BLOCK % CHUNK == 0  # a block is decoded as whole chunks at fixed positions
MANIFEST = "_manifest.json"
SamplingMode = Literal["buffer", "kde", "gmm", "prior"]


@dataclass(frozen=True)
class Sampling:
    """How latent points are drawn; ``None`` fields keep the bundle's fitted defaults."""

    mode: SamplingMode | None = None
    alpha: float | None = None
    gamma: float | None = None
    selection: Literal["uniform", "stratified", "weighted"] | None = None

    def __post_init__(self) -> None:
        for name in ("alpha", "gamma"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, found {value}")


@dataclass
class GenerateResult:
    """What a run wrote: the output, the events generated now and in total, the timing."""

    output: Path
    n_events: int
    n_generated: int
    seconds: float
    shards: int

    @property
    def events_per_second(self) -> float:
        return self.n_generated / self.seconds if self.seconds > 0 else float("nan")


def output_schema(bundle: Any, weighted: bool) -> Schema:
    """The bundle's schema, plus a ``weight`` column for weighted sampling."""
    if not weighted:
        return bundle.schema
    return Schema(bundle.schema.name, (*bundle.schema.columns, Column("weight", "generic")))


class EventSource:
    """Turns event positions into finished events for one bundle and one sampling setting."""

    def __init__(self, bundle: Any, sampling: Sampling, seed: int, device: str = "auto") -> None:
        from eventgen.decode import EventDecoder
        from eventgen.train import resolve_device

        self.bundle = bundle
        self.seed = seed
        changes = {k: v for k, v in asdict(sampling).items() if v is not None}
        if changes.get("mode") in ("gmm", "prior") and sampling.selection is None:
            changes["selection"] = "uniform"  # the only selection these modes have
        self.buffer = bundle.buffer.with_params(seed=seed, **changes)
        self.weighted = self.buffer.selection == "weighted"
        self.schema = output_schema(bundle, self.weighted)
        self.device = resolve_device(device)
        self.decoder = EventDecoder(bundle.model, bundle.preprocessor, self.device)

    def run_metadata(self, n_events: int) -> dict[str, Any]:
        """What a run of ``n_events`` records in its files (and must match to be resumed)."""
        return {
            "generator": f"eventgen {__version__}",
            "bundle_hash": self.bundle.hash,
            "seed": self.seed,
            "n_events": n_events,
            "sampling": self.buffer.get_params(),
        }

    def sample(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent points ``(stop - start, latent_dim)`` of events ``start..stop-1`` (one thread)."""
        return self.buffer.sample_range(start, stop, self.seed, n_threads=1)

    def finish(self, z: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Decode latent points (inverse preprocessing fused in), clean up: ``(n, n_columns)`` float32."""
        width = len(self.schema)
        out = np.empty((z.shape[0], width), np.float32)
        events = np.ascontiguousarray(out[:, : len(self.bundle.schema)]) if self.weighted else out
        self.decoder(z, events)
        self.bundle.cleanup.apply(events)
        if self.weighted:
            out[:, :-1] = events
            out[:, -1] = weights
        return out

    def batch(self, start: int, stop: int, first: int) -> np.ndarray:
        """Events ``first..stop-1`` of the block-aligned span [start, stop): sampled, decoded, cleaned."""
        z, w = self.sample(start, -(-stop // BLOCK) * BLOCK)  # whole blocks only
        return self.finish(z, w)[first - start : stop - start]

    def events(self, start: int, stop: int, batch_size: int, workers: int = 1) -> Iterator[np.ndarray]:
        """Events ``start..stop-1`` in order, in batches of about ``batch_size``, made by ``workers`` threads.

        Each batch is sampled, decoded and cleaned by one thread from start to end, so with torch
        at one intra-op thread per worker, the cores never wait on each other inside an operation.
        """
        aligned = max(BLOCK, batch_size // BLOCK * BLOCK)
        edges = [*range(start // BLOCK * BLOCK, stop, aligned), stop]
        spans = [(a, b, max(a, start)) for a, b in itertools.pairwise(edges)]
        yield from _ordered_map(lambda span: self.batch(*span), spans, workers)


def _ordered_map(func: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
    """``map(func, items)`` on a pool of ``workers`` threads, in order, at most ``2 * workers`` ahead."""
    if workers <= 1:
        yield from map(func, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="eventgen-decode") as pool:
        pending: collections.deque[Any] = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(func, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def check_run(n_events: int, batch_size: int) -> None:
    """Refuse a run of fewer than one event or with batches of fewer than one event."""
    if n_events < 1:
        raise ConfigError(f"the number of events must be at least 1, found {n_events}")
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, found {batch_size}")


def generate(
    bundle: Any,
    n_events: int,
    output: str | Path,
    *,
    seed: int = 0,
    sampling: Sampling = Sampling(),
    batch_size: int = 65_536,
    shard_size: int | None = None,
    fmt: str | None = None,
    device: str = "auto",
    compression: str | None = "zstd",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> GenerateResult:
    """Generate ``n_events`` events from a fitted bundle into ``output``.

    ``output`` with a file suffix (.parquet, .h5) is one file; without one, or with
    ``shard_size`` given, it is a dataset directory of shards of ``shard_size`` events
    (default 1,000,000) plus ``_manifest.json``; ``resume=True`` continues such a run.
    """
    check_run(n_events, batch_size)
    output = Path(output)
    sharded = shard_size is not None or output.suffix == ""
    source = EventSource(bundle, sampling, seed, device)
    torch_threads = _torch_threads()
    workers = configure_threads(threads, source.device)
    meta = source.run_metadata(n_events)
    t0 = time.perf_counter()
    bar = _progress(n_events, progress)
    try:
        if not sharded:
            if resume:
                raise OutputError(
                    "--resume needs a sharded output; pass --shard-size N so the output is a directory of shards"
                )
            with _Writer(output, source.schema, meta, fmt, compression, overwrite) as writer:
                for batch in source.events(0, n_events, batch_size, workers):
                    writer.put(batch)
                    bar.update(len(batch))
            n_done, n_shards = n_events, 1
        else:
            n_done, n_shards = _generate_shards(
                source,
                n_events,
                output,
                meta,
                shard_size or 1_000_000,
                batch_size,
                workers,
                fmt or "parquet",
                compression,
                resume,
                overwrite,
                bar.update,
            )
    finally:
        bar.close()
        _torch_threads(torch_threads)
    seconds = time.perf_counter() - t0
    return GenerateResult(output, n_events, n_done, seconds, n_shards)


def _generate_shards(
    source: EventSource,
    n_events: int,
    directory: Path,
    meta: dict[str, Any],
    shard_size: int,
    batch_size: int,
    workers: int,
    fmt: str,
    compression: str | None,
    resume: bool,
    overwrite: bool,
    advance: Callable[[int], Any],
) -> tuple[int, int]:
    plan = ShardPlan(n_events, shard_size, fmt)
    manifest = prepare_dataset(directory, plan.run_record(meta), resume, overwrite)
    advance(sum(s["n_events"] for s in manifest["shards"]))
    n_new = 0
    for k in plan.missing(manifest):
        info = write_shard(source, directory, plan, k, meta, batch_size, workers, compression, advance)
        record_shard(directory, info)
        n_new += info["n_events"]
    return n_new, plan.n_shards


@dataclass(frozen=True)
class ShardPlan:
    """How a run of ``n_events`` is cut into shards of ``shard_size`` events of one format."""

    n_events: int
    shard_size: int
    fmt: str = "parquet"

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ConfigError(f"the shard size must be at least 1, found {self.shard_size}")
        writer_format(self.fmt)

    @property
    def n_shards(self) -> int:
        return -(-self.n_events // self.shard_size)

    def span(self, k: int) -> tuple[int, int]:
        """Events ``[start, stop)`` of shard ``k``."""
        return k * self.shard_size, min((k + 1) * self.shard_size, self.n_events)

    def file_name(self, k: int) -> str:
        return f"part-{k:05d}{writer_format(self.fmt).suffix}"

    def run_record(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What must match for a dataset to be resumed."""
        return {**meta, "shard_size": self.shard_size, "format": self.fmt}

    def missing(self, manifest: dict[str, Any]) -> list[int]:
        done = {s["index"] for s in manifest["shards"]}
        return [k for k in range(self.n_shards) if k not in done]


def write_shard(
    source: EventSource,
    directory: Path,
    plan: ShardPlan,
    k: int,
    meta: dict[str, Any],
    batch_size: int,
    workers: int,
    compression: str | None,
    advance: Callable[[int], Any] = lambda n: None,
) -> dict[str, Any]:
    """Generate shard ``k`` into its file (temporary name, then rename); returns its manifest entry."""
    from eventgen.bundle import file_sha256

    start, stop = plan.span(k)
    path = directory / plan.file_name(k)
    shard_meta = {**meta, "shard": k, "first_event": start}
    with _Writer(path, source.schema, shard_meta, plan.fmt, compression, True) as writer:
        for batch in source.events(start, stop, batch_size, workers):
            writer.put(batch)
            advance(len(batch))
    return {"index": k, "file": path.name, "n_events": stop - start, "sha256": file_sha256(path)}


def prepare_dataset(directory: Path, run: dict[str, Any], resume: bool, overwrite: bool) -> dict[str, Any]:
    """Create (or, with ``resume``, reopen) a dataset directory; returns its manifest."""
    path = directory / MANIFEST
    if directory.exists() and resume and path.exists():
        manifest = json.loads(path.read_text())
        if manifest["run"] != run:
            changed = sorted(k for k in run if manifest["run"].get(k) != run[k])
            raise OutputError(
                f"cannot resume {str(directory)!r}: the run differs in {changed}; "
                "repeat the original settings or write to a new directory"
            )
        for stale in directory.glob(".*.tmp"):  # half-written shards of the killed run
            stale.unlink()
        return manifest
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise OutputError(
                f"output {str(directory)!r} exists already; pass --resume to continue it, "
                "--overwrite to replace it, or choose another name"
            )
        for child in directory.iterdir():
            if child.is_file() and (child.name.startswith(("part-", ".part-")) or child.name == MANIFEST):
                child.unlink()
    if not directory.parent.exists():
        raise OutputError(f"output folder {str(directory.parent)!r} does not exist; create it first")
    directory.mkdir(exist_ok=True)
    manifest = {"format": "eventgen-dataset", "run": run, "shards": []}
    _write_json_atomic(path, manifest)
    return manifest


def record_shard(directory: Path, info: dict[str, Any]) -> None:
    """Add a committed shard's entry (from :func:`write_shard`) to the manifest, atomically."""
    manifest_path = directory / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] != info["index"]]
    manifest["shards"].append(info)
    manifest["shards"].sort(key=lambda s: s["index"])
    _write_json_atomic(manifest_path, manifest)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class _Writer:
    """An :class:`EventWriter` fed by a thread behind a bounded queue."""

    def __init__(
        self,
        path: Path,
        schema: Schema,
        meta: dict[str, Any],
        fmt: str | None,
        compression: str | None,
        overwrite: bool,
    ) -> None:
        self._writer = EventWriter(path, schema, meta, fmt=fmt, overwrite=overwrite, compression=compression)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eventgen-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(batch)
                except BaseException as exc:  # re-raised in the producing thread
                    self._error = exc

    def put(self, batch: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc is None and self._error is None:
            self._writer.close()
            return
        self._writer.abort()
        if exc is None and self._error is not None:
            raise self._error


def configure_threads(threads: int | None, device: Any) -> int:
    """Worker threads for a run (default: every core); torch then runs each operation on one thread.

    Parallelism comes from the workers, each making whole batches: intra-op threads would make the
    cores wait on each other whenever the writer or a sampler takes one of them.
    """
    import torch

    workers = max(1, threads or available_cores())
    if device.type == "cpu":
        torch.set_num_threads(1)
    return workers


def _torch_threads(n: int | None = None) -> int:
    """Torch's intra-op thread count; set it when ``n`` is given."""
    import torch

    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def available_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="ev", unit_scale=True, disable=not enabled, smoothing=0.1, dynamic_ncols=True
    )
