"""Whole runs of validate: read-only, deterministic for any job count, pluggable executors, the API."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from strokedata import DatasetInvalidError, DatasetNotFoundError, Modality, load_dataset, validate
from strokedata.executor import ProcessExecutor, SerialExecutor, local_executor
from tests.corruptions import CORRUPTIONS

T = TypeVar("T")
R = TypeVar("R")


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Return {path: (size, mtime_ns, sha256)} of every file and link below root."""
    state = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            stat = path.lstat()
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "dangling"
            state[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, content)
    return state


def test_validate_never_writes_into_the_dataset(dataset: Path) -> None:
    for code in ("V001", "F004", "M003", "K001"):
        CORRUPTIONS[code](dataset)
    before = _snapshot(dataset)
    validate(dataset, jobs=2)
    assert _snapshot(dataset) == before


def test_report_is_identical_for_any_job_count(dataset: Path) -> None:
    for code in ("V002", "G003", "L001", "K001", "F004"):
        CORRUPTIONS[code](dataset)
    serial = validate(dataset, jobs=1)
    parallel = validate(dataset, jobs=2)
    assert serial.model_dump_json() == parallel.model_dump_json()
    assert serial.codes() == {"V002", "G003", "L001", "K001", "F004"}


class ReversedExecutor:
    """A stand-in for another engine: runs items in reverse order."""

    def __init__(self) -> None:
        self.calls = 0

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        self.calls += 1
        return (fn(item) for item in reversed(items))


def test_any_executor_can_be_plugged_in(dataset: Path) -> None:
    CORRUPTIONS["L004"](dataset)
    engine = ReversedExecutor()
    report = validate(dataset, executor=engine)
    assert engine.calls == 2  # headers for every patient first, then voxels
    assert report.model_dump_json() == validate(dataset, executor=SerialExecutor()).model_dump_json()


def test_progress_reports_both_phases(pristine_dataset: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    validate(pristine_dataset, jobs=1, progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert [s for s in seen if s[1] == s[2]] == [("headers", 4, 4), ("voxels", 4, 4)]


def test_local_executor_choices() -> None:
    assert isinstance(local_executor(1), SerialExecutor)
    assert isinstance(local_executor(3), ProcessExecutor)
    with pytest.raises(ValueError):
        local_executor(0)
    assert sorted(ProcessExecutor(2).map_unordered(abs, [-3, 1, -2])) == [1, 2, 3]


def test_validate_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        validate(tmp_path / "nowhere")


def test_load_dataset_gives_card_and_manifests(pristine_dataset: Path) -> None:
    loaded = load_dataset(pristine_dataset)
    assert loaded.ids == ["p000", "p001", "p002", "p003"] and len(loaded) == 4
    assert loaded.card.name == "tiny-test-dataset"
    assert loaded.patients["p001"].labels.occlusion_location == "M1"
    assert loaded.image_path("p001", Modality.CBF) == pristine_dataset / "p001" / "cbf.nii.gz"


def test_load_dataset_refuses_invalid_manifests(dataset: Path) -> None:
    CORRUPTIONS["M003"](dataset)
    with pytest.raises(DatasetInvalidError) as caught:
        load_dataset(dataset)
    assert [f.code for f in caught.value.findings] == ["M003"]
    assert "p001/patient.json" in str(caught.value)


def test_an_unlistable_root_is_a_clear_error(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(DatasetNotFoundError, match=r"cannot list .*Permission denied"):
        validate(dataset, jobs=1)
