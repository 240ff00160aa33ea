"""Dask executor: on a LocalCluster of 2 worker processes (1 thread each), phantom, validate and preprocess
give the bytes of the local executor; a worker that dies mid-run is replaced and the result is the same;
a patient that keeps killing workers fails alone; workers that cannot see a path, a scheduler that does
not answer and a missing install are clear errors; Ctrl-C cancels the run's tasks."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.strokedata_app import app
from strokedata import load_dataset, validate
from strokedata.distributed import (
    LOCAL,
    ClusterError,
    DaskExecutor,
    WorkerLostError,
    dask_executor,
    item_label,
)
from strokedata.executor import chunked, map_reporting
from strokedata.phantoms import generate_dataset, preset
from strokedata.preprocess import preprocess_dataset
from tests.builders import tree_digest

distributed = pytest.importorskip("distributed")  # the test extra installs it
runner = CliRunner()
PIPELINE = "clot-regions"  # registers nothing: the workers need not import itk-elastix


def _local_client() -> Iterator[Any]:
    """Yield a client of a new local cluster: 2 worker processes with 1 thread each, restarted when one
    dies; closed afterwards."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the faults below travel by value
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    with distributed.Client(cluster) as connected:
        yield connected
    cluster.close()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A cluster shared by the tests that kill no worker."""
    yield from _local_client()


@pytest.fixture
def fragile() -> Iterator[Any]:
    """A cluster of its own for a test that kills workers: the others never wait for a restart."""
    yield from _local_client()


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny phantoms with the angiography group, written by the local executor."""
    config = preset("tiny", modalities=["MCTA1", "MCTA2", "MCTA3", "CTA", "ATLAS", "CLOT"])
    return generate_dataset(tmp_path_factory.mktemp("dask") / "in", 4, config, seed=2, jobs=1)


def test_phantom_validate_and_preprocess_give_the_local_bytes(
    client: Any, phantoms: Path, tmp_path: Path
) -> None:
    executor = DaskExecutor(client)
    config = preset("tiny", modalities=["MCTA1", "MCTA2", "MCTA3", "CTA", "ATLAS", "CLOT"])
    remote = generate_dataset(tmp_path / "in", 4, config, seed=2, executor=executor)
    assert tree_digest(remote) == tree_digest(phantoms)
    local_report = validate(phantoms, jobs=1)
    assert local_report.valid
    assert validate(phantoms, executor=executor).model_dump_json() == local_report.model_dump_json()
    local, on_cluster = tmp_path / "local", tmp_path / "cluster"
    assert preprocess_dataset(phantoms, PIPELINE, local, jobs=1).ok
    report = preprocess_dataset(phantoms, PIPELINE, on_cluster, executor=executor)
    assert report.ok and report.ids("written") == sorted(load_dataset(phantoms).ids)
    assert tree_digest(on_cluster) == tree_digest(local)


def _exit_once(marker: Path, fn: Callable[[Any], Any], item: Any) -> Any:
    """Exit the worker process on the first attempt at ``item``'s patient p00001; run ``fn`` after."""
    if item_label(item, 0) == "p00001":
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return fn(item)
        os._exit(1)
    return fn(item)


def _exit_always(fn: Callable[[Any], Any], item: Any) -> Any:
    """Exit the worker process at patient p00001, every time."""
    if item_label(item, 0) == "p00001":
        os._exit(1)
    return fn(item)


class _Faulty(DaskExecutor):
    """A DaskExecutor whose tasks run ``fault(fn, item)`` instead of ``fn(item)``."""

    def __init__(self, client: Any, fault: Callable[..., Any], retries: int = 2) -> None:
        super().__init__(client, retries=retries)
        self.fault = fault

    def map_unordered(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        phase: str = "",
        lost: Callable[[Any, str], Any] | None = None,
    ) -> Iterator[Any]:
        from functools import partial

        return super().map_unordered(partial(self.fault, fn), items, phase, lost)


def test_a_worker_killed_mid_run_is_replaced_and_the_result_is_the_same(
    fragile: Any, phantoms: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "died-once"
    from functools import partial

    faulty = _Faulty(fragile, partial(_exit_once, marker))
    report = preprocess_dataset(phantoms, PIPELINE, tmp_path / "cluster", executor=faulty)
    assert marker.exists(), "the fault was not injected"
    assert report.ok
    assert preprocess_dataset(phantoms, PIPELINE, tmp_path / "local", jobs=1).ok
    assert tree_digest(tmp_path / "cluster") == tree_digest(tmp_path / "local")


def test_a_patient_that_keeps_killing_workers_fails_alone(
    fragile: Any, phantoms: Path, tmp_path: Path
) -> None:
    faulty = _Faulty(fragile, _exit_always, retries=0)
    report = preprocess_dataset(phantoms, PIPELINE, tmp_path / "out", executor=faulty)
    assert [outcome.patient_id for outcome in report.failed] == ["p00001"]
    assert "worker died on every attempt" in report.failed[0].reason
    # a patient whose worker died under it after its folder was written is up to date when run again
    assert sorted(report.ids("written") + report.ids("skipped")) == ["p00000", "p00002", "p00003"]
    with pytest.raises(WorkerLostError, match="p00001"):  # without a way to report it: named, at the end
        list(faulty.map_unordered(patient_of, list(load_dataset(phantoms))))


def test_workers_that_cannot_see_a_path_are_named(client: Any, tmp_path: Path) -> None:
    # /proc/self/fd/N, for a descriptor number no worker holds, exists in this process only: each worker
    # resolves /proc/self to itself
    with open(tmp_path / "held", "w") as held:
        number = os.dup2(held.fileno(), 987)
        try:
            only_here = Path(f"/proc/self/fd/{number}")
            assert only_here.exists()
            with pytest.raises(
                ClusterError, match=r"worker tcp://\S+ cannot see /proc/self/fd/987"
            ) as caught:
                DaskExecutor(client).check_paths([tmp_path, only_here])
        finally:
            os.close(number)
    assert str(caught.value).count("cannot see") == 2 and "same paths" in str(caught.value)
    DaskExecutor(client).check_paths([tmp_path])


def test_progress_counts_every_item_and_keys_name_the_patients(
    client: Any, phantoms: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = list(load_dataset(phantoms))
    heard: list[tuple[str, int, int]] = []
    executor = DaskExecutor(client)
    keys: list[str] = []
    submit = client.submit

    def recording(*args: Any, **kwargs: Any) -> Any:
        keys.append(kwargs["key"])
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "submit", recording)
    found = sorted(map_reporting(executor, patient_of, manifests, "labels", lambda *a: heard.append(a)))
    assert found == [m.patient_id for m in manifests]
    assert [done for _, done, _ in heard] == [1, 2, 3, 4] and {p for p, _, _ in heard} == {"labels"}
    assert sorted(key.rsplit("-", 1)[0] for key in keys) == [f"labels-p0000{i}" for i in range(4)], keys


def patient_of(item: Any) -> str:
    """Return the patient id of a manifest (a task for the tests)."""
    return item_label(item, -1)


def _slow(item: int) -> int:
    time.sleep(0.3)
    return item


def test_ctrl_c_cancels_the_runs_pending_tasks(client: Any) -> None:
    executor = DaskExecutor(client)
    results = executor.map_unordered(_slow, list(range(40)), "slow")
    next(results)
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt)
    deadline = time.monotonic() + 10
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(client.processing().values()), "tasks still run after Ctrl-C"


def test_batches_keep_the_scheduler_cost_small() -> None:
    assert [len(batch) for batch in chunked(list(range(3000)), 8)] == [32] * 93 + [24]
    assert [len(batch) for batch in chunked(list(range(8)), 2)] == [1] * 8  # realistic patients: alone


def test_a_scheduler_that_does_not_answer_fails_fast(phantoms: Path) -> None:
    began = time.monotonic()
    result = runner.invoke(
        app, ["validate", str(phantoms)], env={"STROKEBENCH_SCHEDULER": "tcp://127.0.0.1:9"}
    )
    assert result.exit_code == 2, result.output
    assert "no Dask scheduler answers at 'tcp://127.0.0.1:9'" in result.output
    assert time.monotonic() - began < 30


def test_a_bad_retry_count_is_refused(phantoms: Path) -> None:
    result = runner.invoke(
        app, ["validate", str(phantoms), "--scheduler", "local"], env={"STROKEBENCH_RETRIES": "two"}
    )
    assert result.exit_code == 2 and "STROKEBENCH_RETRIES='two': give a whole number" in result.output


def test_without_dask_the_option_says_how_to_install_it(
    phantoms: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    result = runner.invoke(app, ["validate", str(phantoms), "--scheduler", "local"])
    assert result.exit_code == 2
    assert 'pip install "strokebench[dask]"' in result.output


def test_the_command_runs_on_a_local_cluster(phantoms: Path) -> None:
    local = runner.invoke(app, ["validate", str(phantoms), "--jobs", "1"])
    on_cluster = runner.invoke(app, ["validate", str(phantoms), "--jobs", "2", "--scheduler", "local"])
    assert on_cluster.exit_code == local.exit_code == 0, on_cluster.output
    assert "running on the Dask cluster at tcp://" in on_cluster.output
    assert local.stdout in on_cluster.output


def _malloc_environment() -> dict[str, str]:
    """Return the glibc malloc variables of the process that runs this."""
    return {name: value for name, value in os.environ.items() if name.startswith("MALLOC_")}


def test_a_local_clusters_workers_allocate_like_pool_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    with dask_executor(LOCAL, 1) as executor:
        (environment,) = executor.client.run(_malloc_environment).values()
    # one arena for the task thread; not Dask's trim threshold, which turns off glibc's adaptive mmap
    assert environment == {"MALLOC_ARENA_MAX": "1"}
    assert dict(os.environ) == before  # the nannies' variables do not stay in this process
