"""Generation: sample the density buffer, decode in batches, clean up, stream to files.

Stages, overlapped with threads (numba, numpy's generators, torch and the file codecs
all release the GIL)::

    sampler thread  --q-->  decode + inverse preprocessing + clean-up  --q-->  writer thread

Determinism: work is cut into fixed blocks of :data:`BLOCK` events at fixed positions of
the run; the random stream of a block depends only on (seed, block index) (see
:mod:`eventgen.buffer`) and every block is decoded as one full block, so the n-th event
depends only on the bundle, the seed, the sampling settings and n — not on the batch
size, the thread counts, the worker count or interruptions.

Output is one Parquet/HDF5 file, or a dataset directory of shards ``part-00000.parquet``
plus ``_manifest.json``, which is what makes a run resumable (``resume=True``).
"""

from __future__ import annotations

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
from eventgen.errors import ConfigError, OutputError
from eventgen.io import EventWriter, format_of
from eventgen.schema import Column, Schema

log = logging.getLogger(__name__)

BLOCK = 4096
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
        import torch

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
        self.model = bundle.model.to(self.device)
        self._torch = torch
        self._pin = self.device.type == "cuda"

    def sample(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent points ``(stop - start, latent_dim)`` for whole blocks covering [start, stop)."""
        return self.buffer.sample_range(start, stop, self.seed)

    def finish(self, z: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Decode latent points block by block, invert preprocessing, clean up: ``(n, n_columns)``."""
        torch = self._torch
        out = np.empty((z.shape[0], len(self.bundle.schema)), np.float32)
        with torch.inference_mode():
            zt = torch.from_numpy(z)
            if self._pin:
                zt = zt.pin_memory()
            for s in range(0, z.shape[0], BLOCK):
                x = self.model.decode(zt[s : s + BLOCK].to(self.device, non_blocking=True))
                out[s : s + BLOCK] = x.cpu().numpy()
        events = self.bundle.preprocessor.inverse_transform(out)
        self.bundle.cleanup.apply(events)
        if self.weighted:
            events = np.concatenate([events, weights[:, None].astype(np.float32)], axis=1)
        return events

    def events(self, start: int, stop: int, batch_size: int) -> Iterator[np.ndarray]:
        """Events ``start..stop-1`` in batches, with sampling one batch ahead in a thread."""
        aligned = max(BLOCK, batch_size // BLOCK * BLOCK)
        first = start // BLOCK * BLOCK
        edges = [*range(first, stop, aligned), stop]
        spans = list(itertools.pairwise(edges))

        def produce() -> Iterator[tuple[int, int, tuple[np.ndarray, np.ndarray | None]]]:
            for a, b in spans:
                full_stop = -(-b // BLOCK) * BLOCK  # decode whole blocks only
                yield a, b, self.sample(a, full_stop)

        for a, b, (z, w) in _prefetch(produce(), depth=2):
            events = self.finish(z, w)
            lo = max(start, a) - a
            yield events[lo : b - a]


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
    if n_events < 1:
        raise ConfigError(f"the number of events must be at least 1, found {n_events}")
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, found {batch_size}")
    output = Path(output)
    sharded = shard_size is not None or output.suffix == ""
    configure_threads(threads)
    source = EventSource(bundle, sampling, seed, device)
    meta = {
        "generator": f"eventgen {__version__}",
        "bundle_hash": bundle.hash,
        "seed": seed,
        "n_events": n_events,
        "sampling": source.buffer.get_params(),
    }
    t0 = time.perf_counter()
    bar = _progress(n_events, progress)
    try:
        if not sharded:
            if resume:
                raise OutputError(
                    "--resume needs a sharded output; pass --shard-size N so the output is a directory of shards"
                )
            fmt = format_of(output, fmt)
            with _Writer(output, source.schema, meta, fmt, compression, overwrite) as writer:
                for batch in source.events(0, n_events, batch_size):
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
                fmt or "parquet",
                compression,
                resume,
                overwrite,
                bar.update,
            )
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return GenerateResult(output, n_events, n_done, seconds, n_shards)


def _generate_shards(
    source: EventSource,
    n_events: int,
    directory: Path,
    meta: dict[str, Any],
    shard_size: int,
    batch_size: int,
    fmt: str,
    compression: str | None,
    resume: bool,
    overwrite: bool,
    advance: Callable[[int], Any],
) -> tuple[int, int]:
    if shard_size < 1:
        raise ConfigError(f"the shard size must be at least 1, found {shard_size}")
    suffix = {"parquet": ".parquet", "hdf5": ".h5"}.get(fmt)
    if suffix is None:
        raise ConfigError(f"unknown format {fmt!r}; use parquet or hdf5")
    run = {**meta, "shard_size": shard_size, "format": fmt}
    manifest = prepare_dataset(directory, run, resume, overwrite)
    done = {s["index"] for s in manifest["shards"]}
    n_shards = -(-n_events // shard_size)
    advance(sum(s["n_events"] for s in manifest["shards"]))
    n_new = 0
    for k in range(n_shards):
        if k in done:
            continue
        start, stop = k * shard_size, min((k + 1) * shard_size, n_events)
        path = directory / f"part-{k:05d}{suffix}"
        with _Writer(
            path, source.schema, {**meta, "shard": k, "first_event": start}, fmt, compression, True
        ) as w:
            for batch in source.events(start, stop, batch_size):
                w.put(batch)
                advance(len(batch))
        record_shard(directory, k, path, stop - start)
        n_new += stop - start
    return n_new, n_shards


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


def record_shard(directory: Path, index: int, path: Path, n_events: int) -> None:
    """Add a committed shard to the manifest (atomically)."""
    from eventgen.bundle import file_sha256

    manifest_path = directory / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] != index]
    manifest["shards"].append(
        {"index": index, "file": path.name, "n_events": n_events, "sha256": file_sha256(path)}
    )
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
        fmt: str,
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


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run a generator ``depth`` items ahead in a background thread."""
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, item))
            q.put((False, None))
        except BaseException as exc:
            q.put((False, exc))

    thread = threading.Thread(target=run, name="eventgen-sampler", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)


def configure_threads(threads: int | None) -> None:
    """Give torch ``threads`` threads (default: every core) and numba the same."""
    import torch

    n = threads or available_cores()
    torch.set_num_threads(max(1, n))
    try:
        import numba

        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


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
