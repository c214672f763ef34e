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
plus ``_manifest.json`` (:mod:`eventgen.dataset`), which is what makes a run resumable
(``resume=True``) and lets its shards run as tasks on any executor: a process pool, or a Dask
cluster spanning many machines (:mod:`eventgen.distributed`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np

from eventgen import __version__
from eventgen.buffer import BLOCK
from eventgen.dataset import MANIFEST, Dataset, Shard, ShardPlan, run_shards
from eventgen.decode import CHUNK
from eventgen.errors import BundleError, ConfigError, OutputError
from eventgen.io import EventTable, EventWriter
from eventgen.normalisation import UNIT, Normalisation, normalisation
from eventgen.outputs import check_room
from eventgen.sampling import SamplingSpec
from eventgen.schema import Column, Schema

if TYPE_CHECKING:
    import torch
    from tqdm import tqdm

    from eventgen.bundle import Bundle

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
#: Called with the number of events just made (a progress bar's ``update``).
Advance = Callable[[int], object]

assert BLOCK % CHUNK == 0  # a block is decoded as whole chunks at fixed positions


@dataclass
class GenerateResult:
    """What a run wrote: the output, the events generated now and in total, the timing."""

    output: Path
    n_events: int
    n_generated: int
    seconds: float
    shards: int
    regenerated: int = 0  # finished shards that failed verification on resume and were written again

    @property
    def events_per_second(self) -> float:
        return self.n_generated / self.seconds if self.seconds > 0 else float("nan")


def output_schema(bundle: Bundle, weighted: bool, weight_column: str | None = None) -> Schema:
    """The bundle's schema, plus a ``weight`` column for weighted sampling, then the normalised
    event weight ``weight_column`` (pb) when one is asked for."""
    extra = [Column("weight", "generic")] if weighted else []
    if weight_column is not None:
        extra.append(Column(weight_column, "generic", UNIT))
    if not extra:
        return bundle.schema
    return Schema(bundle.schema.name, (*bundle.schema.columns, *extra))


class EventSource:
    """Turns event positions into finished events for one bundle and one sampling setting.

    ``sampling``: None samples as the bundle says; a mapping overrides some of the bundle's
    settings (``{"mode": "kde"}``; None values keep the bundle's); a
    :class:`~eventgen.sampling.SamplingSettings` replaces them. The resolved settings are
    ``self.settings``. A ``normalisation`` with a ``weight_column`` (:meth:`normalisation`) adds
    that column, each event's normalised weight in pb.
    """

    def __init__(
        self,
        bundle: Bundle,
        sampling: SamplingSpec,
        seed: int,
        device: str = "auto",
        normalisation: Normalisation | None = None,
    ) -> None:
        from eventgen.decode import EventDecoder
        from eventgen.train import resolve_device

        self.bundle = bundle
        self.seed = seed
        self.settings = bundle.buffer.settings.resolve(sampling)
        self.buffer = bundle.buffer.with_settings(self.settings, seed=seed)
        self.weighted = self.settings.selection == "weighted"
        self._column_weight: float | None = None  # the factor of the normalised-weight column
        weight_column = None
        if normalisation is not None and normalisation.weight_column is not None:
            weight_column, self._column_weight = normalisation.weight_column, normalisation.event_weight
            assert self._column_weight is not None  # normalisation() refuses a weight column without σ
        self.schema = output_schema(bundle, self.weighted, weight_column)
        self.device = resolve_device(device)
        self.decoder = EventDecoder(bundle.model, bundle.preprocessor, self.device)
        self.refiner = bundle.refiner if self.settings.refine else None
        if self.settings.refine_quantile is not None:
            if self.refiner is None:
                raise ConfigError("the bundle has no refiner, so refine_quantile does not apply; drop it")
            self.refiner = self.refiner.with_quantile(self.settings.refine_quantile)
        if self.refiner is not None and self.weighted:
            raise ConfigError(
                "selection 'weighted' cannot be refined (the refiner learnt unweighted events); "
                "pass --no-refine (refine=False) or another selection"
            )

    def run_metadata(self, n_events: int, normalisation: Normalisation | None = None) -> dict[str, Any]:
        """What a run of ``n_events`` records in its files (and must match to be resumed); its
        ``normalisation`` is :meth:`normalisation` without a weight column unless given."""
        normalisation = normalisation or self.normalisation(n_events)
        return {
            "generator": f"eventgen {__version__}",
            "bundle_hash": self.bundle.hash,
            "seed": self.seed,
            "n_events": n_events,
            "sampling": self.settings.to_dict(),
            "normalisation": normalisation.to_dict(),
        }

    def normalisation(self, n_events: int, weight_column: str | None = None) -> Normalisation:
        """The normalisation of a run of ``n_events`` (:mod:`eventgen.normalisation`); ``weight_column``
        names the column of normalised event weights to write (ConfigError without a cross-section)."""
        return normalisation(
            self.bundle.metadata,
            n_events,
            self.buffer.weight_sum(n_events, self.seed),
            self.weighted,
            weight_column,
            output_schema(self.bundle, self.weighted).names,
        )

    def sample(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent points ``(stop - start, latent_dim)`` of events ``start..stop-1`` (one thread)."""
        return self.buffer.sample_range(start, stop, self.seed, n_threads=1)

    def finish(self, z: np.ndarray, weights: np.ndarray | None, start: int = 0) -> np.ndarray:
        """Decode latent points of events ``start..`` (inverse preprocessing fused in), clean up.

        Returns ``(n, n_columns)`` float32. Events decoded in the canonical frame get the random
        frames of their positions in the run (:func:`eventgen.representation.symmetry_draws`).
        """
        from eventgen.representation import symmetry_draws

        width, n_columns = len(self.schema), len(self.bundle.schema)
        out = np.empty((z.shape[0], width), np.float32)
        events = np.ascontiguousarray(out[:, :n_columns]) if width > n_columns else out
        self.decoder(z, events)
        pre = self.bundle.preprocessor
        frames = symmetry_draws(self.seed, start, start + len(z)) if pre.frame == "canonical" else None
        self.bundle.cleanup.apply(events, representation=pre.representation, frames=frames)
        if width > n_columns:
            out[:, :n_columns] = events
        if self.weighted:
            out[:, n_columns] = weights
        if self._column_weight is not None:
            out[:, -1] = self._column_weight * weights if weights is not None else self._column_weight
        return out

    def batch(self, start: int, stop: int, first: int) -> np.ndarray:
        """Events ``first..stop-1`` of the block-aligned span [start, stop): sampled, decoded, cleaned
        and, with a refiner, each block made of its own accepted candidates (:mod:`eventgen.refine`)."""
        end = -(-stop // BLOCK) * BLOCK  # whole blocks only
        if self.refiner is None:
            events = self.candidates(start, end)
        else:
            from eventgen.refine import refine_block

            n_columns = len(self.bundle.schema)
            events = np.concatenate(
                [
                    refine_block(b, BLOCK, self, self.refiner, self.seed, n_columns)
                    for b in range(start // BLOCK, end // BLOCK)
                ]
            )
        return events[first - start : stop - start]

    def candidates(self, start: int, stop: int) -> np.ndarray:
        """The finished events at positions ``start..stop-1`` (block-aligned) before any refinement."""
        z, w = self.sample(start, stop)
        return self.finish(z, w, start)

    def events(self, start: int, stop: int, batch_size: int, workers: int = 1) -> Iterator[np.ndarray]:
        """Events ``start..stop-1`` in order, in batches of about ``batch_size``, made by ``workers`` threads.

        Each batch is sampled, decoded and cleaned by one thread from start to end, so with torch
        at one intra-op thread per worker, the cores never wait on each other inside an operation.
        """
        aligned = max(BLOCK, batch_size // BLOCK * BLOCK)
        edges = itertools.chain(range(start // BLOCK * BLOCK, stop, aligned), [stop])
        spans = ((a, b, max(a, start)) for a, b in itertools.pairwise(edges))  # lazily: memory is O(1) in n
        yield from _ordered_map(lambda span: self.batch(*span), spans, workers)


def _ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(func, items)`` on a pool of ``workers`` threads, in order, at most ``2 * workers`` ahead."""
    if workers <= 1:
        yield from map(func, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="eventgen-decode") as pool:
        pending: collections.deque[concurrent.futures.Future[R]] = collections.deque()
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


DEFAULT_SHARD_SIZE = 1_000_000


@dataclass(frozen=True)
class GenerateOptions:
    """How a run makes and writes its events: everything but the bundle, the number of events and the output.

    ``shard_size`` makes the output a dataset directory of shards (so does an output name without
    a suffix, with shards of :data:`DEFAULT_SHARD_SIZE` events); ``fmt`` defaults to the output's
    suffix, else parquet. ``threads`` is the number of worker threads making events in each process
    (default: every core in this process; one per task on an executor). ``resume`` continues an
    interrupted dataset; ``overwrite`` replaces an existing output.
    """

    seed: int = 0
    sampling: SamplingSpec = None  # overrides of the bundle's sampling settings, or new ones
    batch_size: int = 65_536
    shard_size: int | None = None
    fmt: str | None = None
    compression: str | None = "zstd"
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    overwrite: bool = False
    weight_column: str | None = None  # write each event's normalised weight (pb) as this column

    def __post_init__(self) -> None:
        if self.weight_column is not None and not self.weight_column.strip():
            raise ConfigError("the weight column needs a name, found an empty one")
        if self.batch_size < 1:
            raise ConfigError(f"the batch size must be at least 1, found {self.batch_size}")
        if self.seed < 0:
            raise ConfigError(f"the seed must be a non-negative integer, found {self.seed}")
        if self.shard_size is not None and self.shard_size < 1:
            raise ConfigError(f"the shard size must be at least 1, found {self.shard_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"the number of threads must be at least 1, found {self.threads}")

    def sharded(self, output: Path) -> bool:
        """Whether ``output`` is a dataset directory of shards rather than one file."""
        return self.shard_size is not None or output.suffix == ""


def generate(
    bundle: Bundle,
    n_events: int,
    output: str | Path,
    options: GenerateOptions | None = None,
    *,
    executor: Executor | None = None,
    progress: bool = False,
    **changes: Any,
) -> GenerateResult:
    """Generate ``n_events`` events from a fitted bundle into ``output``.

    The settings are ``options`` with the fields named in ``changes`` replaced, so
    ``generate(bundle, n, out, GenerateOptions(seed=1))`` and ``generate(bundle, n, out, seed=1)``
    are the same run. ``output`` with a file suffix (.parquet, .h5) is one file, made by worker
    threads in this process. Without one, or with ``shard_size``, it is a dataset directory of
    shards (:class:`eventgen.dataset.Dataset`) that ``resume=True`` continues; the shards run in this
    process one after another or, given an ``executor``, as one task each on it: a process pool,
    or a Dask cluster (``Client.get_executor()``, :class:`eventgen.distributed.DaskExecutor`), whose
    workers load the bundle from its directory. The events are the same either way.

    Keyword options (``changes``, the fields of :class:`GenerateOptions`): ``seed``, ``sampling``
    (a mapping of overrides such as ``{"mode": "kde"}``, or a
    :class:`~eventgen.sampling.SamplingSettings`), ``batch_size``, ``shard_size``, ``fmt``,
    ``compression``, ``device``, ``threads``, ``resume``, ``overwrite``. For events in memory
    instead of a file, see :meth:`eventgen.bundle.Bundle.sample`.
    """
    valid = [f.name for f in dataclasses.fields(GenerateOptions)]
    unknown = [k for k in changes if k not in valid]
    if unknown:
        raise ConfigError(f"generate() has no option {unknown[0]!r}; valid options are {valid}")
    options = dataclasses.replace(options or GenerateOptions(), **changes)
    sampling = bundle.buffer.settings.resolve(options.sampling)  # once, for every task of the run
    options = dataclasses.replace(options, sampling=sampling)
    if n_events < 1:
        raise ConfigError(f"the number of events must be at least 1, found {n_events}")
    output = Path(output)
    dataset: Dataset | None = None
    if options.sharded(output):
        plan = ShardPlan(n_events, options.shard_size or DEFAULT_SHARD_SIZE)
        dataset = Dataset(output.resolve(), plan, options.fmt or "parquet")
        if executor is not None and bundle.path is None:
            raise BundleError(
                "the tasks of an executor load the bundle from its directory; save the bundle first"
            )
    elif options.resume:
        raise OutputError(
            "--resume needs a sharded output; pass --shard-size N so the output is a directory of shards"
        )
    elif executor is not None:
        raise OutputError(
            "a run on an executor (--workers, --scheduler) writes a dataset of shards; "
            "give -o a name without a suffix, or pass --shard-size N"
        )
    shared = SharedBundle(bundle)
    # the run's metadata; on an executor the events are made elsewhere, so no accelerator is needed here
    source = shared.source(options if executor is None else dataclasses.replace(options, device="cpu"))
    norm = source.normalisation(n_events, options.weight_column)
    meta = source.run_metadata(n_events, norm)
    n_columns = len(output_schema(bundle, sampling.selection == "weighted", options.weight_column))
    # a resumed dataset is checked for what it has left to write
    if dataset is None or not (options.resume and (dataset.directory / MANIFEST).exists()):
        check_room(n_events, n_columns, output.resolve().parent)
    torch_threads = _torch_threads()
    t0 = time.perf_counter()
    bar = _progress(n_events, progress)
    try:
        if dataset is None:
            source = shared.source(options, norm)
            workers = configure_threads(options.threads, source.device)
            writer = _Writer(output, source.schema, meta, options.fmt, options.compression, options.overwrite)
            with writer:
                _fill(writer, source, (0, n_events), options.batch_size, workers, bar.update)
            n_new, n_shards, regenerated = n_events, 1, 0
        else:
            n_new, regenerated = _generate_dataset(shared, dataset, meta, options, executor, bar, n_columns)
            n_shards = dataset.plan.n_shards
    finally:
        bar.close()
        _torch_threads(torch_threads)
    return GenerateResult(output, n_events, n_new, time.perf_counter() - t0, n_shards, regenerated)


def generate_table(
    bundle: Bundle,
    n_events: int,
    *,
    seed: int = 0,
    sampling: SamplingSpec = None,
    batch_size: int = 65_536,
    device: str = "auto",
    threads: int | None = None,
    weight_column: str | None = None,
    progress: bool = False,
) -> EventTable:
    """``n_events`` events in memory: the events ``generate`` writes with the same seed and options.

    Returns an :class:`~eventgen.io.EventTable` ``(n_events, n_columns)`` float32 (plus a ``weight``
    column for weighted sampling, and the normalised event weight ``weight_column``) whose metadata
    is what a generated file records.
    """
    options = GenerateOptions(
        seed=seed,
        sampling=sampling,
        batch_size=batch_size,
        device=device,
        threads=threads,
        weight_column=weight_column,
    )
    if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 1:
        raise ConfigError(f"the number of events must be an integer >= 1, found {n_events!r}")
    shared = SharedBundle(bundle)
    norm = shared.source(options).normalisation(n_events, weight_column)
    source = shared.source(options, norm)
    out = np.empty((n_events, len(source.schema)), np.float32)
    torch_threads = _torch_threads()
    bar = _progress(n_events, progress)
    try:
        workers = configure_threads(threads, source.device)
        done = 0
        for batch in source.events(0, n_events, batch_size, workers):
            out[done : done + len(batch)] = batch
            done += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
        _torch_threads(torch_threads)
    return EventTable._checked(out, source.schema, source.run_metadata(n_events, norm))


def _generate_dataset(
    shared: SharedBundle,
    dataset: Dataset,
    meta: dict[str, Any],
    options: GenerateOptions,
    executor: Executor | None,
    bar: tqdm[NoReturn],
    n_columns: int,
) -> tuple[int, int]:
    """Write the dataset's missing shards, recording each in the manifest as it arrives.

    Returns their events and the number of finished shards that failed verification on resume
    (written again with them). The run claims the directory while it writes.
    """
    with dataset.claim():
        manifest = dataset.open(meta, resume=options.resume, overwrite=options.overwrite)
        if manifest.shards:
            check_room(dataset.plan.n_events - manifest.n_events, n_columns, dataset.directory)
        bar.update(manifest.n_events)
        writer = ShardWriter(shared, dataset, meta, options)
        if executor is None:
            task = functools.partial(writer, threads=options.threads, advance=bar.update)
        else:
            task = functools.partial(writer, threads=options.threads or 1)
        n_new = 0
        with contextlib.closing(run_shards(task, manifest.missing(dataset.plan), executor)) as shards:
            for shard in shards:
                manifest.record(shard)
                n_new += shard.n_events
                if executor is not None:
                    bar.update(shard.n_events)
        dataset.remove_temporary_files()  # a worker that died mid-shard leaves one; every shard is done now
    return n_new, len(manifest.damaged)


@dataclass(frozen=True, eq=False)
class ShardWriter:
    """Writes the shards of one run: ``writer(k)`` writes shard ``k`` and returns its manifest entry.

    A plain picklable task for any executor: it carries the run's settings and the bundle by
    reference (:class:`SharedBundle`). The shard is written under a temporary name and renamed when
    complete; the manifest is left to the caller.
    """

    bundle: SharedBundle
    dataset: Dataset
    meta: dict[str, Any]
    options: GenerateOptions

    def __call__(self, k: int, threads: int | None = 1, advance: Advance | None = None) -> Shard:
        """Write shard ``k`` with ``threads`` worker threads (None: every core), calling ``advance(n)`` per batch."""
        source = self.bundle.source(self.options, Normalisation.from_dict(self.meta["normalisation"]))
        workers = configure_threads(threads, source.device)
        start, stop = self.dataset.plan.span(k)
        meta = {**self.meta, "shard": k, "first_event": start}
        path = self.dataset.shard_path(k)
        with _Writer(
            path, source.schema, meta, self.dataset.fmt, self.options.compression, True, claim=False
        ) as writer:
            _fill(writer, source, (start, stop), self.options.batch_size, workers, advance)
        return self.dataset.finished(k)


def _fill(
    writer: _Writer,
    source: EventSource,
    span: tuple[int, int],
    batch_size: int,
    workers: int,
    advance: Advance | None,
) -> None:
    """Put events ``span[0]..span[1]-1`` into ``writer``, calling ``advance(n)`` after each batch."""
    for batch in source.events(*span, batch_size, workers):
        writer.put(batch)
        if advance is not None:
            advance(len(batch))


class SharedBundle:
    """A bundle as the tasks of a run see it, with one event source per setting made at first use.

    In this process it is the loaded bundle itself. Pickled, for a task in another process, it is
    the bundle's directory and hash: that process loads the bundle at its first task, checks the
    hash, and keeps it (and its event sources) for its later tasks.
    """

    def __init__(self, bundle: Bundle | None = None, *, path: str = "", bundle_hash: str = "") -> None:
        self._bundle = bundle
        if bundle is not None:
            path = str(Path(bundle.path).resolve()) if bundle.path is not None else ""
        self.path = path
        self._hash = bundle_hash
        self._sources: dict[tuple[str, int, str, Normalisation | None], EventSource] = {}
        self._lock = threading.RLock()

    @property
    def hash(self) -> str:
        """The bundle's hash (:attr:`eventgen.bundle.Bundle.hash`)."""
        if not self._hash and self._bundle is not None:
            self._hash = self._bundle.hash
        return self._hash

    def __reduce__(self) -> tuple[Callable[[str, str], SharedBundle], tuple[str, str]]:
        if not self.path:
            raise BundleError("the bundle was never saved, so no other process can load it; save it first")
        return shared_bundle, (self.path, self.hash)

    @property
    def bundle(self) -> Bundle:
        """The bundle, loaded (and checked against the hash) at the first use in a process it was sent to."""
        with self._lock:
            if self._bundle is None:
                from eventgen.bundle import Bundle

                bundle = Bundle.load(self.path)
                if bundle.hash != self._hash:
                    raise BundleError(
                        f"the bundle at {self.path!r} in this process has hash {bundle.hash[:12]}, the run's has "
                        f"{self._hash[:12]}; give every worker the same bundle files"
                    )
                self._bundle = bundle
            return self._bundle

    def source(self, options: GenerateOptions, normalisation: Normalisation | None = None) -> EventSource:
        """The event source of ``options``' sampling, seed and device (and ``normalisation``'s weight column)."""
        if normalisation is not None and normalisation.weight_column is None:
            normalisation = None  # the same events, and the same source
        key = (repr(options.sampling), options.seed, options.device, normalisation)
        with self._lock:
            if key not in self._sources:
                self._sources[key] = EventSource(
                    self.bundle, options.sampling, options.seed, options.device, normalisation
                )
            return self._sources[key]


# This process's bundles loaded for tasks from other processes, by directory and hash.
_SHARED: dict[tuple[str, str], SharedBundle] = {}
_SHARED_LOCK = threading.Lock()


def shared_bundle(path: str, bundle_hash: str) -> SharedBundle:
    """This process's :class:`SharedBundle` of the bundle saved at ``path`` with hash ``bundle_hash``."""
    with _SHARED_LOCK:
        if (path, bundle_hash) not in _SHARED:
            _SHARED[path, bundle_hash] = SharedBundle(path=path, bundle_hash=bundle_hash)
        return _SHARED[path, bundle_hash]


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
        claim: bool = True,
    ) -> None:
        self._writer = EventWriter(
            path, schema, meta, fmt=fmt, overwrite=overwrite, compression=compression, claim=claim
        )
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc is None and self._error is None:
            self._writer.close()
            return
        self._writer.abort()
        if exc is None and self._error is not None:
            raise self._error


def configure_threads(threads: int | None, device: torch.device) -> int:
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


def _progress(total: int, enabled: bool) -> tqdm[NoReturn]:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="ev", unit_scale=True, disable=not enabled, smoothing=0.1, dynamic_ncols=True
    )
