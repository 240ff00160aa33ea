"""`strokedata validate` on the local process pool and on a local Dask cluster of the same size, side by
side in one run (issue 17), and what the Dask scheduler costs per task.

Datasets (generated once, cached in benchmarks/data/): 3000 tiny phantoms (validate_scale.py's) and 8
realistic ones (validate.py's). For each, alternately ``--repeats`` times: ``validate(root,
executor=ProcessExecutor(N))`` and ``validate(root, executor=dask)`` on a LocalCluster of N worker
processes with one thread each, started as ``--scheduler local`` starts it (``dask_executor``, with
its workers' malloc settings); both are started and warmed before timing (their start-up is printed
apart). Then the scheduler alone: N no-op tasks submitted one by one, timed from the first submit to
the last result (tasks per second it handles), and the same work in the executor's batches.

Run: python benchmarks/distributed.py (and again with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
import distributed  # noqa: E402 - the package, not this file (whose folder is first on the path)

sys.path.insert(0, str(HERE))
import validate as realistic  # noqa: E402
import validate_scale as tiny  # noqa: E402

from strokedata import validate  # noqa: E402
from strokedata.distributed import LOCAL, DaskExecutor, dask_executor  # noqa: E402
from strokedata.executor import ProcessExecutor, chunked  # noqa: E402

DATA = Path(__file__).parent / "data"


def _noop(item: int) -> int:
    return item


def _seconds(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _side_by_side(root: Path, pool: ProcessExecutor, dask: DaskExecutor, repeats: int) -> tuple[float, float]:
    """Return the median seconds of validating ``root`` on the pool and on the cluster, run in turn."""
    local, remote = [], []
    for _ in range(repeats):
        local.append(_seconds(lambda: validate(root, executor=pool)))
        remote.append(_seconds(lambda: validate(root, executor=dask)))
    return statistics.median(local), statistics.median(remote)


def _scheduler(client: Any, tasks: int, workers: int) -> tuple[float, float]:
    """Return (tasks per second for single no-op tasks, items per second in ``chunked`` batches)."""
    began = time.perf_counter()
    distributed.wait([client.submit(_noop, index, pure=False) for index in range(tasks)])
    single = tasks / (time.perf_counter() - began)
    executor = DaskExecutor(client)
    began = time.perf_counter()
    assert len(list(executor.map_unordered(_noop, list(range(tasks))))) == tasks
    batched = tasks / (time.perf_counter() - began)
    assert len(chunked(list(range(tasks)), workers)) < tasks
    return single, batched


def main() -> None:
    """Build the datasets if needed, time both executors on each and the scheduler; print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tiny", type=int, default=3000)
    parser.add_argument("--realistic", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=5000)
    arguments = parser.parse_args()
    datasets = {}
    if arguments.tiny:
        datasets[f"{arguments.tiny} tiny"] = tiny.build(DATA / "scale", arguments.tiny)
    if arguments.realistic:
        datasets[f"{arguments.realistic} realistic"] = realistic.build(DATA / "validate", arguments.realistic)
    began = time.perf_counter()
    pool = ProcessExecutor(arguments.workers)
    list(pool.map_unordered(_noop, list(range(arguments.workers * 4))))
    pool_start = time.perf_counter() - began
    began = time.perf_counter()
    with dask_executor(LOCAL, arguments.workers) as dask:
        list(dask.map_unordered(_noop, list(range(arguments.workers * 4))))
        _report(arguments, datasets, pool, dask, time.perf_counter() - began, pool_start)
    pool.close()


def _report(
    arguments: argparse.Namespace,
    datasets: dict[str, Path],
    pool: ProcessExecutor,
    dask: DaskExecutor,
    cluster_start: float,
    pool_start: float,
) -> None:
    """Print the side-by-side table and the scheduler's rates."""
    starts = f"process pool {pool_start:.1f} s, LocalCluster {cluster_start:.1f} s"
    print(f"{arguments.workers} workers; start-up: {starts}")
    print("| dataset | local pool s | Dask s | Dask / local | per patient, local -> Dask (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for name, root in datasets.items():
        validate(root, executor=pool)  # the workers import what validation needs, once
        validate(root, executor=dask)
        local, remote = _side_by_side(root, pool, dask, arguments.repeats)
        patients = len([folder for folder in root.iterdir() if folder.is_dir()])
        print(
            f"| {name} | {local:.2f} | {remote:.2f} | {remote / local:.3f} | "
            f"{1000 * local / patients:.1f} -> {1000 * remote / patients:.1f} |"
        )
    single, batched = _scheduler(dask.client, arguments.tasks, arguments.workers)
    print(
        f"scheduler: {single:.0f} single no-op tasks/s ({1000 / single:.2f} ms each); "
        f"{batched:.0f} items/s in chunked batches of up to 32"
    )


if __name__ == "__main__":
    main()
