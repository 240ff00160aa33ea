"""The README's main command and tour run as written, in order, in a fresh folder (cohorts shrunk, one job):
the tour cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.strokebench_app import app as bench_app
from cli.strokedata_app import app as data_app

README = Path(__file__).parent.parent / "README.md"
PROGRAMS = {"strokedata": data_app, "strokebench": bench_app}
SHRINK = (
    (r"-n 20\b", "-n 6"),
    (r"-n 60\b", "-n 16"),
    (r"--preset realistic", "--preset tiny"),
    (r"(--jobs|-j) 2\b", r"\1 1"),
    (r"--input-size 64,64,16\b", "--input-size 32,32,8"),
    (r"--input-size 64,64\b", "--input-size 32,32"),
    (r"--epochs 2\b", "--epochs 1"),
)
"""Smaller cohorts and inputs, the tiny preset, one job and one epoch: the same commands, a tenth of the
time."""


def _block(after: str, language: str = "bash") -> str:
    """Return the first fenced block of ``language`` after the line holding ``after``."""
    text = README.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start : text.index("```", start)]


def _main_job() -> list[str]:
    """Return the strokedata commands of the main command (what follows the installation; its
    `strokebench run` of every task is tests/test_run_report.py's, on fewer phantoms)."""
    command = _block("<!-- main-command -->").strip()
    return [part.strip() for part in command.split("&&") if part.strip().startswith("strokedata")]


def _tour() -> list[str]:
    """Return the tour's command lines, comments and blank lines left out."""
    lines = _block("## A tour").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _shrunk(line: str) -> str:
    for pattern, replacement in SHRINK:
        line = re.sub(pattern, replacement, line)
    return line


def test_the_tour_covers_every_command_of_both_programs() -> None:
    used = {tuple(shlex.split(line, comments=True)[:2]) for line in _tour() if line.startswith("stroke")}
    for program, app in PROGRAMS.items():
        names = {command.name or command.callback.__name__ for command in app.registered_commands}  # type: ignore[union-attr]
        names |= {group.name for group in app.registered_groups if group.name}
        missing = {name for name in names if (program, name) not in used}
        assert not missing, f"the README tour never runs {program} {', '.join(sorted(missing))}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_main_command_and_every_tour_line_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for line in [*_main_job(), *_tour()]:
        shrunk = _shrunk(line)
        words = shlex.split(shrunk, comments=True)
        if words[0] in PROGRAMS:
            result = runner.invoke(PROGRAMS[words[0]], words[1:])
            assert result.exit_code == 0, f"{shrunk}\n{result.output}"
        else:
            done = subprocess.run(["bash", "-c", shrunk], capture_output=True, text=True, cwd=tmp_path)
            assert done.returncode == 0, f"{shrunk}\n{done.stderr}"
    assert (tmp_path / "p00003.png").is_file() and (tmp_path / "cohort-run" / "report.html").is_file()
    assert "cbam3d" in (tmp_path / "leaderboard.jsonl").read_text()
