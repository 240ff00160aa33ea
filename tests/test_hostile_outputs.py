"""Outputs and the terminal under attack: no command replaces anything but a regular file, Ctrl-C stops
everything within about a second without a traceback or a half-written folder, and text from someone
else's files can neither forge output lines, recolour the terminal, nor run as a spreadsheet formula."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.strokebench_app import app as bench_app
from cli.strokedata_app import app as data_app
from strokedata.csvcells import restore
from tests.builders import build_dataset, edit_json

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    """A copy of /dev/null (root only; a FIFO stands in for other users)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        os.mkfifo(path)


def _folder(path: Path) -> None:
    path.mkdir()


def _socket(path: Path) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


# (program, arguments with {data} and {target}) for every output path of every command; "file" targets
# must be regular files, "folder" targets folders.
FILE_OUTPUTS = [
    (data_app, ["validate", "{data}", "-j", "1", "--json", "{target}"]),
    (data_app, ["split", "{data}", "--stratify", "mtici", "--out", "{target}"]),
    (data_app, ["split", "{data}", "--stratify", "mtici", "--out", "{other}/s.json", "--csv", "{target}"]),
    (data_app, ["table", "{data}", "-j", "1", "--out", "{target}.csv"]),
    (data_app, ["show", "{data}", "p000", "--out", "{target}"]),
    (bench_app, ["score", "{other}", "--task", "occlusion", "--json", "{target}"]),
    (
        bench_app,
        [
            "score",
            "{other}",
            "--task",
            "occlusion",
            "--dataset",
            "{data}",
            "--name",
            "x",
            "--leaderboard",
            "{target}",
        ],
    ),
    (
        bench_app,
        ["compare", "{other}", "{other}", "--task", "occlusion", "--dataset", "{data}", "--json", "{target}"],
    ),
    (bench_app, ["leaderboard", "--task", "occlusion", "--json", "{target}"]),
]
FOLDER_OUTPUTS = [
    (data_app, ["phantom", "--out", "{target}", "-n", "1"]),
    (data_app, ["preprocess", "{data}", "-p", "core", "--out", "{target}"]),
    (data_app, ["perfusion", "{data}", "--out", "{target}"]),
    (data_app, ["import", "ami", "{other}", "--out", "{target}"]),
    (data_app, ["schema", "--out", "{target}"]),
    (bench_app, ["schema", "--out", "{target}"]),
]


def _run(program: object, template: list[str], data: Path, target: Path, other: Path) -> tuple[int, str]:
    arguments = [a.format(data=data, target=target, other=other) for a in template]
    result = runner.invoke(program, arguments)  # type: ignore[arg-type]
    return result.exit_code, result.output


MAKERS = {"fifo": _fifo, "device": _device, "folder": _folder, "socket": _socket}
FILE_IDS = [" ".join(t[:1] + t[-2:-1]) for _, t in FILE_OUTPUTS]


@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize(("program", "template"), FILE_OUTPUTS, ids=FILE_IDS)
def test_a_file_output_never_replaces_what_is_not_a_regular_file(
    pristine_dataset: Path, tmp_path: Path, program: object, template: list[str], make: Callable[[Path], None]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    target = tmp_path / "target"
    shown = f"{target}.csv" if template[-1].endswith(".csv") else str(target)
    make(Path(shown))
    before = os.lstat(shown)
    code, output = _run(program, template, pristine_dataset, target, other)
    assert code == 2, output
    assert shown in output and "Traceback" not in output
    after = os.lstat(shown)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not any(name.name.startswith(".target") for name in tmp_path.iterdir())


@pytest.mark.parametrize(("program", "template"), FOLDER_OUTPUTS, ids=[t[0] for _, t in FOLDER_OUTPUTS])
def test_a_folder_output_is_refused_when_it_is_a_device_a_fifo_or_a_file(
    pristine_dataset: Path, tmp_path: Path, program: object, template: list[str]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for make in (_fifo, _device, Path.touch):
        target = tmp_path / f"target-{make.__name__}"
        make(target)
        code, output = _run(program, template, pristine_dataset, target, other)
        assert code == 2 and str(target) in output and "not a folder" in output, output
        assert "None" not in output  # a regular file is named as one
        if make is Path.touch:
            assert "is a file" in output and target.read_bytes() == b""
        else:
            assert not stat.S_ISREG(os.lstat(target).st_mode)


def test_validate_into_the_system_folders_or_an_existing_folder_is_refused_before_any_work(
    pristine_dataset: Path, tmp_path: Path
) -> None:
    for target in ("/proc/strokebench-report.json", "/sys/strokebench-report.json", str(tmp_path)):
        result = runner.invoke(data_app, ["validate", str(pristine_dataset), "-j", "1", "--json", target])
        assert result.exit_code == 2 and target in result.output
        assert "VALID" not in result.output  # refused before the work: no report was printed
    result = runner.invoke(data_app, ["table", str(pristine_dataset), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "IsADirectoryError" not in result.output


# --- Ctrl-C ------------------------------------------------------------------------------------------

_SLOWED = """
import signal
import sys
# Ctrl-C as a terminal delivers it: a shell that starts this test suite in the background (`pytest &`
# in a script, as CI may) hands every child SIGINT ignored, which Python then keeps ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
import strokedata.preprocess.run as run
import strokedata.validation.runner as runner
from tests.hostile import mark, slow_preprocess_patient, slow_read_patient
runner._read_patient = slow_read_patient
run.preprocess_patient = slow_preprocess_patient
from cli.strokedata_app import main
sys.argv = ["strokedata", *sys.argv[1:]]
mark("ready")
main()
"""


def _interrupt(
    arguments: list[str], marks: Path, wait_for: str, delay: float = 0.0
) -> tuple[int, float, str]:
    """Run strokedata with slowed workers, send Ctrl-C to its process group ``delay`` seconds after a
    mark ``wait_for`` exists and return (exit status, seconds from Ctrl-C to exit, standard error)."""
    environment = {**os.environ, "STROKEBENCH_TEST_MARKS": str(marks), "CI": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOWED, *arguments],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any(m.name.startswith(wait_for) for m in marks.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, "the command ended before Ctrl-C"
        time.sleep(0.05)
    time.sleep(delay)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, errors = process.communicate(timeout=60)
    return process.returncode, time.monotonic() - sent, errors


@pytest.mark.parametrize(
    ("when", "delay"), [("ready", 0.3), ("started", 0.0)], ids=["while-workers-start", "while-working"]
)
def test_ctrl_c_stops_validate_at_once_without_a_traceback(
    pristine_dataset: Path, tmp_path: Path, when: str, delay: float
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    code, seconds, errors = _interrupt(["validate", str(pristine_dataset), "-j", "2"], marks, when, delay)
    assert code == 130 and "Traceback" not in errors, errors
    assert seconds < 1.5
    time.sleep(1.5)  # a worker that went on would mark "finished" within a second of "started"
    assert not any(m.name.startswith("finished") for m in marks.iterdir()), "a worker went on"


def test_ctrl_c_stops_preprocess_at_once_and_leaves_no_half_written_folder(tmp_path: Path) -> None:
    source = build_dataset(tmp_path / "in", n_patients=6)
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "out"
    code, seconds, errors = _interrupt(
        ["preprocess", str(source), "-p", "core", "--out", str(out), "-j", "2"], marks, "writing"
    )
    assert code == 130 and "Traceback" not in errors and "resume" in errors, errors
    assert seconds < 1.5
    written = sorted(entry.name for entry in out.iterdir())
    time.sleep(1.0)  # a worker that went on would rename a folder into place within half a second
    assert sorted(entry.name for entry in out.iterdir()) == written, "a folder appeared after Ctrl-C"
    assert not [name for name in written if name.startswith(".")], written
    for name in written:
        if name != "dataset.json":
            manifest = json.loads((out / name / "patient.json").read_text())
            assert all((out / name / path).is_file() for path in manifest["images"].values())


# --- text from other people's files ------------------------------------------------------------------


def test_a_newline_in_a_folder_name_cannot_forge_a_line_of_the_report(dataset: Path) -> None:
    (dataset / "p9\nVALID: 4 patients, 60 images").mkdir()
    result = runner.invoke(data_app, ["validate", str(dataset), "-j", "1"], env={"CI": "1"})
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("VALID")] == []
    assert lines[-1].startswith("INVALID") and "p9\\nVALID" in result.output


def test_escape_codes_in_a_site_reach_neither_the_terminal_nor_a_spreadsheet(
    dataset: Path, tmp_path: Path
) -> None:
    hostile = {
        "site": "\x1b[31mred\x1b[0m",
        "clinical.referrer": '=HYPERLINK("http://example.org","x")',
        "clinical.note": "+cmd|' /C calc'!A0",
        "clinical.code": "-2+3",
        "clinical.handle": "@SUM(1)",
    }
    edit_json(dataset / "p001" / "patient.json", hostile)
    result = runner.invoke(data_app, ["table", str(dataset), "-j", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "\x1b" not in result.output and "\\x1b[31mred" in result.output
    out = tmp_path / "table.csv"
    assert runner.invoke(data_app, ["table", str(dataset), "-j", "1", "--out", str(out)]).exit_code == 0
    rows = {row["patient_id"]: row for row in csv.DictReader(out.open())}
    cells = [
        rows["p001"][column]
        for column in ("clinical_referrer", "clinical_note", "clinical_code", "clinical_handle")
    ]
    assert all(cell.startswith("'") for cell in cells)
    assert [restore(cell) for cell in cells] == [hostile[key] for key in list(hostile)[1:]]
    assert restore(rows["p001"]["site"]) == hostile["site"]
