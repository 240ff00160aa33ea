"""Per-patient work on a Dask cluster (dask.distributed), behind the executor interface of
``strokedata.executor``: the same functions, items and results as the local process pool.

Install with ``pip install "strokebench[dask]"``. ``DaskExecutor`` wraps a ``distributed.Client``;
``dask_executor`` connects to a scheduler address (or starts a local cluster) for the commands.
Nothing here is imported unless a scheduler is asked for.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from strokedata.errors import StrokedataError
from strokedata.executor import chunked, default_jobs

T = TypeVar("T")
R = TypeVar("R")

LOCAL = "local"
"""``--scheduler local``: a local Dask cluster of ``--jobs`` worker processes (with its dashboard)."""
DEFAULT_RETRIES = 2
"""How many times a task whose worker died is run again before its items count as lost."""
RETRIES_ENV = "STROKEBENCH_RETRIES"
"""The environment variable the commands read for ``retries`` (default ``DEFAULT_RETRIES``)."""
CONNECT_SECONDS = 5
"""How long to wait for a scheduler to answer before giving up."""
INSTALL = 'pip install "strokebench[dask]"'
WORKER_ENVIRON = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": "1",
}
"""The glibc malloc settings of a local cluster's workers (variables already set in this process win).
Dask's default trim threshold (65536) turns off glibc's adaptive mmap threshold, so every array over
128 KiB is mapped and page-faulted anew; and a task runs in a worker thread, whose own malloc arena
cannot hold arrays over 64 MiB. With these, a worker allocates like a process-pool worker: validating
realistic patients took 1.2-1.4x the pool's time without them, 0.95-1.05x with (docs/distributed.md)."""


class ClusterError(StrokedataError):
    """The Dask cluster cannot be used: not installed, no scheduler answers, or a worker cannot see a path."""


class WorkerLostError(StrokedataError):
    """Items whose tasks kept killing their workers (after the retries); every other item finished."""

    def __init__(self, labels: Sequence[str], reason: str) -> None:
        self.labels = list(labels)
        super().__init__(
            f"{', '.join(self.labels)}: the worker running {'it' if len(self.labels) == 1 else 'them'} died "
            f"on every attempt ({reason}); the other items finished. Check the patient's files (a "
            "decompression bomb or an image too large for a worker's memory) or give workers more memory"
        )


def _require_distributed() -> Any:
    """Return the ``distributed`` module; ClusterError with the install command when it is missing."""
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--scheduler needs dask.distributed, which is not installed: {INSTALL}") from None
    return distributed


def item_label(item: object, index: int) -> str:
    """Return the name a task key gives ``item``: its ``label`` (the commands' work items carry the patient
    id), else the ``patient_id`` of the item or of a part of a tuple item (a manifest), else
    ``item-INDEX``."""
    label = getattr(item, "label", None)
    if isinstance(label, str) and label:
        return label
    for part in item if isinstance(item, tuple) else (item,):
        found = getattr(part, "patient_id", None)
        if isinstance(found, str) and found:
            return found
    return f"item-{index}"


def _answers(address: str) -> None:
    """Return when something listens at a tcp:// or tls:// ``address`` (other schemes are left to
    Dask); OSError at once when the connection is refused, after ``CONNECT_SECONDS`` when nothing
    answers. Dask's client would retry a refused connection until its timeout."""
    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    if parsed.scheme in ("tcp", "tls") and parsed.hostname:
        with socket.create_connection((parsed.hostname, parsed.port or 8786), timeout=CONNECT_SECONDS):
            pass


def _missing_paths(paths: list[str]) -> list[str]:
    """Return those of ``paths`` this process cannot see (runs on each worker)."""
    return [path for path in paths if not os.path.exists(path)]


def _set_allowed_failures(dask_scheduler: Any, retries: int) -> None:
    """Let a task kill ``retries`` + 1 workers before it is marked lost (runs on the scheduler)."""
    dask_scheduler.allowed_failures = retries


def _run_batch(fn: Callable[[T], R], batch: list[T]) -> list[R]:
    """Return ``fn`` applied to each item of a batch (one task)."""
    return [fn(item) for item in batch]


class DaskExecutor:
    """Runs items as Dask tasks on the cluster of ``client``, yielding results as tasks finish.

    Items travel in batches (``strokedata.executor.chunked``: at most 32 items, at least 4 batches per
    worker thread) to keep the scheduler's per-task cost small beside tiny items; task keys read
    ``PHASE-FIRST..LAST-RUN`` with the items' labels (patient ids), so the dashboard names them.
    A task whose worker dies is run again by the scheduler up to ``retries`` times (its
    ``allowed_failures``, set on the scheduler for this and later clients); a batch that is still lost is
    split and its items run one by one, so that only an item that keeps killing workers is lost.

    Args:
        client: a connected ``distributed.Client``. Its workers must see the dataset at the same paths
            (``check_paths``).
        retries: runs after a worker died (default 2).
        close_client: close the client (and its local cluster) in ``close()``; for clients this module
            made.
    """

    names_tasks = True  # ``map_reporting`` passes the phase and a ``lost`` function

    def __init__(self, client: Any, *, retries: int = DEFAULT_RETRIES, close_client: bool = False) -> None:
        if retries < 0:
            raise ValueError(f"retries must be at least 0, not {retries}")
        self.client = client
        self.retries = retries
        self._close_client = close_client
        client.run_on_scheduler(_set_allowed_failures, retries=retries)

    def workers(self) -> int:
        """Return the number of worker threads in the cluster now (at least 1)."""
        info = self.client.scheduler_info()["workers"]
        return max(1, sum(int(worker.get("nthreads", 1)) for worker in info.values()))

    def check_paths(self, paths: Sequence[str | Path]) -> None:
        """Return when every worker sees every path; ClusterError naming each worker and each path it
        cannot see otherwise (workers must share the file system at the same paths)."""
        wanted = [str(Path(path).absolute()) for path in paths]
        missing = {
            address: found for address, found in self.client.run(_missing_paths, wanted).items() if found
        }
        if missing:
            lines = "; ".join(
                f"worker {address} cannot see {', '.join(found)}"
                for address, found in sorted(missing.items())
            )
            raise ClusterError(
                f"{lines}. Dask workers must see the dataset and the output folder at the same paths as "
                "this machine (a shared file system mounted alike on every node)"
            )

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        phase: str = "",
        lost: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in completion order.

        An item that keeps killing workers gives ``lost(item, reason)`` when ``lost`` is given; without it,
        WorkerLostError naming such items is raised once every other item has been yielded. An exception
        raised by ``fn`` itself is raised here (the commands' functions report per-item failures in their
        results instead). Ctrl-C, or such an error, cancels this run's remaining tasks on the cluster and
        is raised again.
        """
        if not items:
            return
        run = f"{phase or getattr(fn, '__name__', 'task')}-{{}}-{uuid.uuid4().hex[:8]}"
        lost_batches = yield from self._run(fn, chunked(list(enumerate(items)), self.workers()), run)
        # each item of a lost batch alone, all at once; those lost again (a worker running another item's
        # task may have died under them) once more one at a time, alone on the cluster
        again = yield from self._run(fn, [[(index, item)] for index, item, _ in lost_batches], run + "-alone")
        failed: list[tuple[int, T, str]] = []
        for index, item, _ in again:
            failed += yield from self._run(fn, [[(index, item)]], run + "-single")
        if not failed:
            return
        failed.sort(key=lambda entry: entry[0])
        if lost is None:
            raise WorkerLostError([item_label(item, index) for index, item, _ in failed], failed[0][2])
        for _, item, reason in failed:
            yield lost(item, f"its worker died on every attempt ({reason})")

    def _run(
        self, fn: Callable[[T], R], batches: list[list[tuple[int, T]]], key: str
    ) -> Generator[R, None, list[tuple[int, T, str]]]:
        """Yield ``fn(item)`` for every item of ``batches``, one task a batch, all submitted at once and
        keyed ``key`` with the batch's labels in its {}; return the (index, item, reason) of the items of
        batches whose workers died every time. Ctrl-C, or an error raised by ``fn``, cancels the tasks
        not yet done and is raised again."""
        distributed = _require_distributed()
        futures = {}
        for batch in batches:
            labels = [item_label(item, index) for index, item in batch]
            span = labels[0] if len(labels) == 1 else f"{labels[0]}..{labels[-1]}"
            items = [item for _, item in batch]
            futures[self.client.submit(_run_batch, fn, items, key=key.format(span), pure=False)] = batch
        lost: list[tuple[int, T, str]] = []
        try:
            for future in distributed.as_completed(list(futures)):
                batch = futures.pop(future)
                try:
                    yield from future.result()
                except distributed.KilledWorker as error:
                    lost.extend((index, item, str(error)) for index, item in batch)
        except BaseException:  # nothing of this run goes on
            self.client.cancel(list(futures), force=True)
            raise
        finally:
            for future in futures:
                future.release()
        return lost

    def close(self) -> None:
        """Close the client (and the local cluster) when this executor made it; else leave it open."""
        if self._close_client:
            self.client.close()


@contextmanager
def dask_executor(
    scheduler: str,
    jobs: int | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    paths: Sequence[str | Path] = (),
) -> Iterator[DaskExecutor]:
    """Yield a ``DaskExecutor`` on the scheduler at ``scheduler`` ("tcp://host:8786"), or on a new local
    cluster of ``jobs`` single-threaded worker processes (default: all cores) for ``LOCAL``, after
    checking that every worker sees ``paths``; the client (and a local cluster) is closed on exit.

    Raises ClusterError when dask.distributed is missing, when no scheduler answers within
    ``CONNECT_SECONDS``, or when a worker cannot see one of ``paths``.
    """
    distributed = _require_distributed()
    import dask

    if scheduler == LOCAL:
        settings = {"distributed.scheduler.allowed-failures": retries, **WORKER_ENVIRON}
        with dask.config.set(settings), _environ_restored():
            cluster = distributed.LocalCluster(
                n_workers=jobs or default_jobs(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        with _closed_on_error(cluster):
            client = distributed.Client(cluster)
    else:
        cluster = None
        try:
            _answers(scheduler)
            client = distributed.Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
        except (OSError, TimeoutError, ValueError) as error:
            raise ClusterError(
                f"no Dask scheduler answers at {scheduler!r} within {CONNECT_SECONDS} s ({error}); start one "
                "with `dask scheduler` and give its address (tcp://HOST:8786), or use --scheduler local"
            ) from None
    with _closed_on_error(cluster), _closed_on_error(client):
        executor = DaskExecutor(client, retries=retries, close_client=True)
    try:
        executor.check_paths(paths)
        yield executor
    finally:
        executor.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _environ_restored() -> Iterator[None]:
    """Give this process's environment back as it was when the block ends: Dask's nannies set the
    workers' variables (``WORKER_ENVIRON``, thread counts) in the parent before spawning them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


@contextmanager
def _closed_on_error(resource: Any) -> Iterator[None]:
    """Close ``resource`` (a client or a cluster; None is nothing) when the block raises, and re-raise."""
    try:
        yield
    except BaseException:
        if resource is not None:
            resource.close()
        raise
