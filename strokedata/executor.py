"""Per-patient parallelism behind one small interface, so that another engine (Dask) can be plugged in.

An executor runs a picklable top-level function over a sequence of items and yields the results as
they complete, in any order; callers that need an order sort the results themselves.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` over ``items`` and yields every result exactly once, in completion order.

    An executor whose ``names_tasks`` attribute is true also takes ``phase`` (the name of the work, for
    task names on a cluster) and ``lost`` (``lost(item, reason)`` gives the result of an item whose
    worker kept dying): ``strokedata.distributed.DaskExecutor``. ``map_reporting`` passes them.
    """

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in any order."""
        ...


def chunked(items: Sequence[T], workers: int) -> list[list[T]]:
    """Return ``items`` cut in order into chunks for ``workers``: at least 4 chunks per worker, at most 32
    items each. Per-item hand-offs cost the parent (or a scheduler) time that it takes from the workers.

    >>> [len(chunk) for chunk in chunked(range(100), 2)]
    [12, 12, 12, 12, 12, 12, 12, 12, 4]
    """
    size = max(1, min(32, len(items) // (4 * workers)))
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


class SerialExecutor:
    """Runs everything in the calling process: no start-up cost, easiest to debug."""

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in input order."""
        for item in items:
            yield fn(item)

    def close(self) -> None:
        """Release nothing: there are no workers."""


def _start_quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (if it is not running) with its standard error closed.

    Workers that are killed on Ctrl-C leave named semaphores behind (itk's lazy loader makes one per
    process); the tracker removes them, as it should, but also prints a "leaked semaphore" warning
    after the command's own message. The tracker says nothing a user can act on, so it says nothing.
    """
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(quiet, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)


@contextmanager
def _interrupts_blocked() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) in this thread while the block runs; one that came meanwhile is raised
    as KeyboardInterrupt when it ends. Processes started inside the block keep SIGINT blocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_interrupts() -> None:
    """Make a worker ignore Ctrl-C: the parent alone handles it, and stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    """Return ``fn`` applied to every item of a chunk (runs in a worker)."""
    return [fn(item) for item in chunk]


class ProcessExecutor:
    """Runs items in one pool of ``jobs`` local processes (spawned, so safe beside threads).

    The pool starts on first use and lives until ``close()``, so successive calls share warm workers.
    Workers ignore Ctrl-C; when the parent is interrupted while it waits, it kills them at once, so that
    no work goes on (and nothing is written) after the interrupt.
    """

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as the workers finish them, items travelling in ``chunked``
        chunks. A worker that dies breaks the pool (BrokenProcessPool)."""
        if not items:
            return
        if self._pool is None:
            _start_quiet_resource_tracker()
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=context, initializer=_ignore_interrupts
            )
        chunks = chunked(items, self.jobs)
        with _interrupts_blocked():  # workers start here: they inherit the block, so no Ctrl-C reaches
            futures = [self._pool.submit(_run_chunk, fn, chunk) for chunk in chunks]  # them, even mid-start
        try:
            for future in as_completed(futures):
                yield from future.result()
        except KeyboardInterrupt:
            self.terminate()
            raise
        finally:
            for future in futures:
                future.cancel()

    def terminate(self) -> None:
        """Kill the workers now, whatever they are doing, and wait until they are gone."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())  # no public way before Python 3.14
        for process in processes:
            process.kill()
        for process in processes:
            process.join()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers; a later call starts new ones."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` after each item of a phase."""


def map_reporting(
    executor: Executor,
    fn: Callable[[T], R],
    items: Sequence[T],
    phase: str,
    progress: Progress | None,
    lost: Callable[[T, str], R] | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item (in completion order), telling ``progress`` after each one.
    An executor that says ``names_tasks`` (``strokedata.distributed.DaskExecutor``) also gets ``phase``
    and ``lost`` (``Executor.map_unordered``); any other needs only ``map_unordered(fn, items)``."""
    if getattr(executor, "names_tasks", False):
        named: Any = executor  # a DaskExecutor; strokedata.distributed is imported only with dask
        results: Iterator[R] = named.map_unordered(fn, items, phase, lost)
    else:
        results = executor.map_unordered(fn, items)
    for done, result in enumerate(results, start=1):
        if progress is not None:
            progress(phase, done, len(items))
        yield result


def default_jobs() -> int:
    """Return the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_executor(jobs: int | None = None) -> SerialExecutor | ProcessExecutor:
    """Return a serial executor for one job, else a process pool of ``jobs`` (default: all cores)."""
    count = default_jobs() if jobs is None else jobs
    if count < 1:
        raise ValueError(f"jobs must be at least 1, got {count}")
    return SerialExecutor() if count == 1 else ProcessExecutor(count)


_ACTIVE: ContextVar[Executor | None] = ContextVar("strokedata_executor", default=None)


@contextmanager
def use_executor(executor: Executor | None) -> Iterator[None]:
    """Within the block, run the per-patient work of every library call given no ``executor`` on this
    one (as joblib's ``parallel_backend`` does); None restores the local pools.

    >>> with use_executor(SerialExecutor()):
    ...     with executor_for(4, None) as runner:
    ...         type(runner).__name__
    'SerialExecutor'
    """
    token = _ACTIVE.set(executor)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@contextmanager
def executor_for(jobs: int | None, executor: Executor | None) -> Iterator[Executor]:
    """Yield ``executor`` if given, else the one of an enclosing ``use_executor``, else a local one for
    ``jobs`` that is closed on exit."""
    chosen = executor if executor is not None else _ACTIVE.get()
    if chosen is not None:
        yield chosen
        return
    own = local_executor(jobs)
    try:
        yield own
    finally:
        own.close()
