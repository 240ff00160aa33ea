"""What the commands say: help that loads nothing heavy and reads at 80 columns, progress lines without a
terminal, tables that fit, the split's check, the whole stack in info, and truth files score can read."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import render
from cli.strokebench_app import app as bench_app
from cli.strokedata_app import app as data_app
from strokedata.environment import STACK

runner = CliRunner()
ROOT = Path(__file__).parent.parent
_HELP = """
import sys
from typer.testing import CliRunner
from cli.strokebench_app import app as bench
from cli.strokedata_app import app as data
runner = CliRunner()
for app, commands in ((data, ["validate", "schema", "split", "phantom", "show", "table", "pipelines",
                              "preprocess", "import", "import table", "import ami"]),
                      (bench, ["info", "tasks", "score", "compare", "leaderboard", "truth", "schema"])):
    assert runner.invoke(app, ["--help"]).exit_code == 0
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output and "{" not in result.output.splitlines()[0], result.output
        assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
runner.invoke(data, ["pipelines"])
runner.invoke(data, ["pipelines", "occlusion"])
heavy = ("torch", "torchio", "itk", "pandas", "scipy.ndimage", "matplotlib")
print(" ".join(sorted(name for name in heavy if name in sys.modules)))
"""


def test_help_of_every_command_and_the_pipeline_list_load_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HELP], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"--help or pipelines imported {done.stdout.strip()}"


def test_without_a_terminal_progress_is_a_plain_line_now_and_then(
    pristine_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "PLAIN_PROGRESS_SECONDS", 0.0)
    result = runner.invoke(data_app, ["validate", str(pristine_dataset), "-j", "1"])
    lines = [line for line in result.output.splitlines() if line.startswith("Reading voxels: ")]
    assert lines[-1].startswith("Reading voxels: 4/4 (") and lines[-1].endswith(", done)"), result.output
    assert "/s, " in lines[0] and "so far" in lines[0]
    monkeypatch.setattr(render, "PLAIN_PROGRESS_SECONDS", 3600.0)
    quiet = runner.invoke(data_app, ["validate", str(pristine_dataset), "-j", "1"])
    assert "Reading voxels" not in quiet.output  # a run shorter than the interval prints no progress


def test_tables_fit_80_columns_without_breaking_words(pristine_dataset: Path) -> None:
    for program, arguments in (
        (data_app, ["table", str(pristine_dataset), "-j", "1"]),
        (bench_app, ["tasks", "occlusion"]),
        (bench_app, ["tasks", "core"]),
        (bench_app, ["leaderboard", "--task", "recanalization", "--leaderboard", "none.jsonl"]),
    ):
        output = runner.invoke(program, arguments, env={"COLUMNS": "80"}).output
        table = [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]
        assert table and max(len(line) for line in table) <= 80, output
        for word in ("patient_id", "Bertels", "re-implemented)", "Peerlings"):
            assert not any(line.rstrip("│ ").endswith(word[:4]) for line in output.splitlines()), output
    from cli.render_bench import _published_table
    from strokemodels.benchmark import TASKS

    rows = {row[0]: row for row in _published_table(TASKS["occlusion"])[2]}
    atlas = rows["atlas-based (Peerlings et al. 2023), M2 only"]
    assert atlas[-1] == "precision[M2] 0.57, recall[M2] 0.47"  # the atlas-based row is not only dashes


def _split(dataset: Path, folder: Path) -> Path:
    """Return a split file of ``dataset`` (a test set and 2 folds) written into ``folder``."""
    split = folder / "split.json"
    arguments = ["split", str(dataset), "--stratify", "mtici", "--out", str(split), "--folds", "2"]
    assert runner.invoke(data_app, [*arguments, "--test-size", "0.25"]).exit_code == 0
    return split


def test_a_split_that_passes_is_said_to_have_been_checked(pristine_dataset: Path, tmp_path: Path) -> None:
    split = _split(pristine_dataset, tmp_path)
    result = runner.invoke(data_app, ["validate", str(pristine_dataset), "-j", "1", "--split", str(split)])
    assert result.exit_code == 0
    expected = f"split {split} checked against the dataset: consistent with the dataset, no finding"
    assert expected in result.output


def test_info_lists_the_whole_stack() -> None:
    output = runner.invoke(bench_app, ["info"], env={"COLUMNS": "120"}).output
    for name in ("python", *STACK):
        assert name in output


def test_truth_files_of_every_task_are_read_back_by_score(pristine_dataset: Path, tmp_path: Path) -> None:
    from strokemodels.benchmark import TASKS
    from strokemodels.benchmark.files import read_table
    from strokemodels.benchmark.truth import truth_from_dataset

    for task in TASKS:
        out = tmp_path / f"{task}.csv"
        result = runner.invoke(
            bench_app, ["truth", "--task", task, "--dataset", str(pristine_dataset), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        derived, _ = truth_from_dataset(task, pristine_dataset, jobs=1)
        read = read_table(out, TASKS[task], "label")[None].values
        if task == "core":  # mask paths: the same files
            read = {pid: path.resolve() for pid, path in read.items()}
            derived = type(derived)({pid: path.resolve() for pid, path in derived.values.items()})
        assert read == derived.values
    rows = list(csv.DictReader((tmp_path / "core.csv").open()))
    assert not Path(rows[0]["mask"]).is_absolute()  # paths relative to the CSV, as score reads them
    split = _split(pristine_dataset, tmp_path)
    test_only = tmp_path / "test.csv"
    arguments = [
        "truth",
        "--task",
        "recanalization",
        "--dataset",
        str(pristine_dataset),
        "--out",
        str(test_only),
    ]
    assert runner.invoke(bench_app, [*arguments, "--split", str(split), "--partition", "test"]).exit_code == 0
    assert {row["patient_id"] for row in csv.DictReader(test_only.open())} == set(
        json.loads(split.read_text())["test"]
    )
