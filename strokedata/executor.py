"""Per-patient parallelism behind one small interface, so that another engine (Dask) can be plugged in.

An executor runs a picklable top-level function over a sequence of items and yields the results as
they complete, in any order; callers that need an order sort the results themselves.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` over ``items`` and yields every result exactly once, in completion order."""

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in any order."""
        ...


class SerialExecutor:
    """Runs everything in the calling process: no start-up cost, easiest to debug."""

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in input order."""
        for item in items:
            yield fn(item)


class ProcessExecutor:
    """Runs items in a pool of ``jobs`` local processes (spawned, so safe beside threads)."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as the workers finish them."""
        if not items:
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(items)), mp_context=context) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()


def default_jobs() -> int:
    """Return the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_executor(jobs: int | None = None) -> Executor:
    """Return a serial executor for one job, else a process pool of ``jobs`` (default: all cores)."""
    count = default_jobs() if jobs is None else jobs
    if count < 1:
        raise ValueError(f"jobs must be at least 1, got {count}")
    return SerialExecutor() if count == 1 else ProcessExecutor(count)
