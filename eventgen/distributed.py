"""Distributed execution: generation and simulation as one Dask task per shard.

A run goes to a ``distributed.LocalCluster`` of worker processes (default) or to a running
scheduler (``scheduler="tcp://host:8786"``). Tasks carry only plain arguments: generation
tasks get the bundle's *path* and hash, and each worker process loads the bundle once and
keeps it (with its :class:`~eventgen.generate.EventSource`) in a per-process cache. Workers
write their shard into the dataset directory themselves (temporary name, then rename); the
client alone writes the manifest, recording each shard as its task finishes. The output is
identical, event by event, to :func:`eventgen.generate.generate` with the same settings,
and to :func:`eventgen.simulate.simulate` for simulation.

With a remote scheduler the bundle and the output directory must be on a file system every
worker sees under the same path, and the workers must have eventgen installed.

Dask is an optional extra (``pip install 'eventgen[distributed]'``); this module imports
without it and its functions raise :class:`~eventgen.errors.ConfigError` when it is absent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eventgen.errors import BundleError, ConfigError
from eventgen.generate import EventSource, GenerateResult, Sampling, ShardPlan

if TYPE_CHECKING:
    from distributed import Client

    from eventgen.bundle import Bundle
    from eventgen.simulate import SimulationSettings

log = logging.getLogger(__name__)

RETRIES = (
    2  # reruns of a task that raised (a worker that died is handled by the scheduler's allowed-failures)
)

# Worker-side cache, the module's only state: bundles by (path, hash) and event sources by
# (path, hash, sampling, seed, device), so each worker process loads a bundle once per run.
_BUNDLES: dict[tuple[str, str], Bundle] = {}
_SOURCES: dict[tuple[Any, ...], EventSource] = {}
_CACHE_LOCK = threading.Lock()


def _require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--workers/--scheduler need Dask, which is not installed: pip install 'eventgen[distributed]'"
        ) from None
    return distributed


@contextlib.contextmanager
def cluster_client(
    workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1
) -> Iterator[Client]:
    """A Dask client: of a new ``LocalCluster`` of ``workers`` processes, or of ``scheduler``'s cluster.

    ``workers`` defaults to one process per ``threads_per_worker`` cores; it cannot be combined
    with ``scheduler`` (a running cluster has its workers already). Closed on exit.
    """
    distributed = _require_dask()
    if scheduler is not None and workers is not None:
        raise ConfigError("pass either --workers (a local cluster) or --scheduler (a running one), not both")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, found {workers}")
    if threads_per_worker < 1:
        raise ConfigError(f"threads_per_worker must be >= 1, found {threads_per_worker}")
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            log.info("Dask scheduler %s, dashboard %s", scheduler, client.dashboard_link)
            yield client
        return
    from eventgen.generate import available_cores

    n_workers = workers or max(1, available_cores() // threads_per_worker)
    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # any free port: no clash with another cluster's 8787
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        log.info(
            "Dask local cluster of %d workers x %d threads started in %.1f s, dashboard %s",
            n_workers,
            threads_per_worker,
            time.perf_counter() - t0,
            client.dashboard_link,
        )
        yield client


@contextlib.contextmanager
def _use_client(
    client: Client | None, workers: int | None, scheduler: str | None, threads_per_worker: int
) -> Iterator[Client]:
    if client is not None:
        if workers is not None or scheduler is not None:
            raise ConfigError("pass either a client or workers/scheduler, not both")
        yield client
        return
    with cluster_client(workers, scheduler, threads_per_worker) as made:
        yield made


def generate_distributed(
    bundle_path: str | Path,
    n_events: int,
    output_dir: str | Path,
    *,
    seed: int = 0,
    sampling: Sampling = Sampling(),  # noqa: B008 (frozen: safe as a default)
    shard_size: int = 1_000_000,
    fmt: str = "parquet",
    compression: str | None = "zstd",
    batch_size: int = 65_536,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int = 1,
    client: Client | None = None,
    progress: bool = False,
) -> GenerateResult:
    """Generate ``n_events`` events from the bundle at ``bundle_path`` into the dataset ``output_dir``.

    One Dask task per shard still missing from the manifest (all of them unless ``resume``);
    the dataset is identical to ``generate(bundle, n_events, output_dir, shard_size=...)``.
    The cluster is ``client``'s, else one from :func:`cluster_client` (``workers``,
    ``scheduler``, ``threads_per_worker``). A worker that dies has its shard rerun elsewhere;
    its half-written temporary file is removed at the end.
    """
    from eventgen.bundle import Bundle
    from eventgen.generate import check_run, prepare_dataset, record_shard

    distributed = _require_dask()
    check_run(n_events, batch_size)
    plan = ShardPlan(n_events, shard_size, fmt)
    bundle_path = Path(bundle_path).resolve()
    directory = Path(output_dir).resolve()
    bundle = Bundle.load(bundle_path)
    source = EventSource(bundle, sampling, seed, device="cpu")  # for the run's metadata only
    meta = source.run_metadata(n_events)  # as generate() records it, so the manifests agree
    manifest = prepare_dataset(directory, plan.run_record(meta), resume, overwrite)
    missing = plan.missing(manifest)
    t0 = time.perf_counter()
    n_new = 0
    if missing:
        with _use_client(client, workers, scheduler, threads_per_worker) as dask_client:
            token = uuid.uuid4().hex[:8]
            futures = {
                dask_client.submit(
                    _generate_shard_task,
                    str(bundle_path),
                    meta["bundle_hash"],
                    sampling,
                    seed,
                    device,
                    directory,
                    plan,
                    k,
                    meta,
                    batch_size,
                    compression,
                    key=f"eventgen-shard-{k}-{token}",
                    pure=False,
                    retries=RETRIES,
                ): plan.span(k)[1] - plan.span(k)[0]
                for k in missing
            }
            done = n_events - sum(futures.values())
            for info in _results(distributed, futures, n_events, done, progress):
                record_shard(directory, info)
                n_new += info["n_events"]
        for stale in directory.glob(".part-*.tmp"):  # left by a worker that died; every task is done
            log.info("removing %s, left by a worker that died", stale.name)
            stale.unlink(missing_ok=True)
    return GenerateResult(directory, n_events, n_new, time.perf_counter() - t0, plan.n_shards)


def _results(
    distributed: Any, futures: dict[Any, int], total: int, done: int, progress: bool
) -> Iterator[Any]:
    """Results of ``futures`` (mapped to their numbers of events) as they finish, with a progress bar
    over events from ``done`` to ``total``; the rest are cancelled when one fails.

    Each future is released once its result is here: ``futures`` is emptied as they finish.
    """
    from eventgen.generate import _progress

    bar = _progress(total, progress)
    bar.update(done)
    try:
        for future in distributed.as_completed(futures):
            result = future.result()
            bar.update(futures.pop(future))
            future.release()  # else the scheduler recomputes it if the worker holding it dies
            yield result
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    finally:
        bar.close()


def _generate_shard_task(
    bundle_path: str,
    bundle_hash: str,
    sampling: Sampling,
    seed: int,
    device: str,
    directory: Path,
    plan: ShardPlan,
    k: int,
    meta: dict[str, Any],
    batch_size: int,
    compression: str | None,
) -> dict[str, Any]:
    """Worker side: write shard ``k`` with this process's cached event source; returns its manifest entry."""
    import torch

    from eventgen.generate import write_shard

    torch.set_num_threads(1)  # one thread per Dask thread: each task runs on the thread that runs it
    source = _worker_source(bundle_path, bundle_hash, sampling, seed, device)
    return write_shard(source, directory, plan, k, meta, batch_size, 1, compression)


def _worker_source(
    bundle_path: str, bundle_hash: str, sampling: Sampling, seed: int, device: str
) -> EventSource:
    """This process's event source for the bundle at ``bundle_path``, loaded (and checked) once."""
    from eventgen.bundle import Bundle

    key = (bundle_path, bundle_hash, sampling, seed, device)
    with _CACHE_LOCK:
        if key not in _SOURCES:
            if (bundle_path, bundle_hash) not in _BUNDLES:
                bundle = Bundle.load(bundle_path)
                if bundle.hash != bundle_hash:
                    raise BundleError(
                        f"the bundle at {bundle_path!r} on this worker has hash {bundle.hash[:12]}, "
                        f"the client's has {bundle_hash[:12]}; give the workers the same bundle files"
                    )
                _BUNDLES[bundle_path, bundle_hash] = bundle
            _SOURCES[key] = EventSource(_BUNDLES[bundle_path, bundle_hash], sampling, seed, device)
        return _SOURCES[key]


def simulate_distributed(
    settings: SimulationSettings,
    n_events: int,
    seed: int,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    shard_size: int | None = None,
    client: Client | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`eventgen.simulate.simulate` with one Dask task per shard; identical output and provenance.

    Returns float32 ``(n_events, n_columns)`` in the order of ``schema_for(settings.process)``
    and the provenance dict of ``simulate``.
    """
    from eventgen.simulate import DEFAULT_SHARD_SIZE, _provenance, schema_for, simulate_shard

    distributed = _require_dask()
    if n_events < 0:
        raise ConfigError(f"n_events must be >= 0, found {n_events}")
    shard_size = DEFAULT_SHARD_SIZE[settings.process] if shard_size is None else shard_size
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, found {shard_size}")
    sizes = [min(shard_size, n_events - start) for start in range(0, n_events, shard_size)]
    results: list[tuple[np.ndarray, dict[str, Any]]] = []
    if sizes:
        with _use_client(client, workers, scheduler, 1) as dask_client:
            token = uuid.uuid4().hex[:8]
            futures = {
                dask_client.submit(
                    simulate_shard,
                    settings,
                    size,
                    seed,
                    k,
                    key=f"eventgen-simulate-{k}-{token}",
                    pure=False,
                    retries=RETRIES,
                ): size
                for k, size in enumerate(sizes)
            }
            results = sorted(
                _results(distributed, futures, n_events, 0, progress), key=lambda r: r[1]["shard_index"]
            )
    n_columns = len(schema_for(settings.process))
    events = np.concatenate([r[0] for r in results]) if results else np.zeros((0, n_columns), np.float32)
    return events, _provenance(settings, seed, shard_size, [r[1] for r in results])
