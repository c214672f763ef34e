"""Distributed execution: sharded runs on a Dask cluster, through a ``concurrent.futures`` executor.

:func:`eventgen.generation.generate` and :func:`eventgen.simulation.simulate` run their shards on
any :class:`concurrent.futures.Executor`; this module supplies the Dask one. A
:class:`DaskExecutor` runs on a ``distributed.LocalCluster`` of worker processes (default), on a
running scheduler (``scheduler="tcp://host:8786"``) or on a given client's cluster, and starts
the cluster at its first task, so a run that finds nothing to do starts none::

    with DaskExecutor(workers=2) as executor:
        generate(bundle, 10**9, "dataset/", executor=executor)

``Client.get_executor()`` of an existing client works as well. Each shard is one Dask task
carrying only plain settings (a generation task names the bundle by directory and hash; each
worker process loads it once). Workers write their shard into the dataset directory themselves
(temporary name, then rename); the client alone writes the manifest as each shard's result
arrives. The output is identical, event by event, to a run in one process.

With a remote scheduler the bundle and the output directory must be on a file system every
worker sees under the same path, and the workers must have eventgen installed.

Dask is an optional extra (``pip install 'eventgen[distributed]'``); this module imports
without it and its functions raise :class:`~eventgen.errors.ConfigError` when it is absent.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from eventgen.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

RETRIES = (
    2  # reruns of a task that raised (a worker that died is handled by the scheduler's allowed-failures)
)


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--dask/--workers/--scheduler need Dask, which is not installed: pip install 'eventgen[distributed]'"
        ) from None


def _check_cluster(workers: int | None, scheduler: str | None, threads_per_worker: int) -> None:
    if scheduler is not None and workers is not None:
        raise ConfigError("pass either --workers (a local cluster) or --scheduler (a running one), not both")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, found {workers}")
    if threads_per_worker < 1:
        raise ConfigError(f"threads_per_worker must be >= 1, found {threads_per_worker}")


@contextlib.contextmanager
def cluster_client(
    workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1
) -> Iterator[Client]:
    """A Dask client: of a new ``LocalCluster`` of ``workers`` processes, or of ``scheduler``'s cluster.

    ``workers`` defaults to one process per ``threads_per_worker`` cores; it cannot be combined
    with ``scheduler`` (a running cluster has its workers already). A scheduler that cannot be
    reached within Dask's connect timeout (``distributed.comm.timeouts.connect``) raises
    :class:`~eventgen.errors.ConfigError`. Closed on exit.
    """
    _require_dask()
    _check_cluster(workers, scheduler, threads_per_worker)
    import distributed

    if scheduler is not None:
        try:
            client = distributed.Client(scheduler)
        except (OSError, ValueError) as exc:  # unreachable (a timeout is an OSError), or not an address
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({reason}); "
                "check the address and that the scheduler is running"
            ) from None
        with client:
            log.info("Dask scheduler %s, dashboard %s", scheduler, client.dashboard_link)
            yield client
        return
    from eventgen.generation import available_cores

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


class DaskExecutor(concurrent.futures.Executor):
    """A ``concurrent.futures`` executor that runs each call as one Dask task.

    The cluster is ``client``'s, else one made by :func:`cluster_client` from ``workers``,
    ``scheduler`` and ``threads_per_worker`` at the first :meth:`submit` and closed by
    :meth:`shutdown` (or on leaving a ``with`` block). Tasks are impure (never merged with an
    equal task) and rerun up to :data:`RETRIES` times when they raise; a task whose worker dies is
    rerun by the scheduler. A result is released on the cluster as soon as it has arrived here, so
    a worker that dies later costs no recomputation.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        threads_per_worker: int = 1,
    ) -> None:
        _require_dask()
        if client is not None and (workers is not None or scheduler is not None):
            raise ConfigError("pass either a client or workers/scheduler, not both")
        _check_cluster(workers, scheduler, threads_per_worker)
        self._client = client
        self._cluster = functools.partial(cluster_client, workers, scheduler, threads_per_worker)
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The cluster's client, started at the first use."""
        with self._lock:
            if self._client is None:
                self._client = self._stack.enter_context(self._cluster())
            return self._client

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        task = self.client.submit(fn, *args, pure=False, retries=RETRIES, **kwargs)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        task.add_done_callback(functools.partial(_settle, future))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the cluster this executor started (a given client stays open)."""
        with self._lock:
            self._stack.close()


def _settle(future: concurrent.futures.Future[T], task: Future[T]) -> None:
    """Hand a finished Dask task's outcome to its ``concurrent.futures`` future, then release the task."""
    try:
        if task.status == "cancelled":
            future.cancel()
            future.set_running_or_notify_cancel()  # wakes wait() and as_completed()
            return
        error: BaseException | None = None
        try:
            result = task.result()
        except BaseException as exc:  # the task's error, or its result could not be fetched
            error = exc
    finally:
        task.release()
    if not future.set_running_or_notify_cancel():  # cancelled here meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
