"""The command-line programs: exit codes, JSON report, plain output when piped, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.strokebench_app import app as strokebench_app
from cli.strokedata_app import app
from strokedata import ValidationReport
from strokedata.validation import CODES
from tests.corruptions import CORRUPTIONS

runner = CliRunner()


def test_valid_dataset_exits_0_and_writes_a_report(pristine_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["validate", str(pristine_dataset), "--jobs", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "VALID: 4 patients, 60 images" in result.output
    report = ValidationReport.model_validate_json(out.read_text())
    assert report.valid and report.findings == []


def test_invalid_dataset_exits_1_with_one_line_per_finding(dataset: Path) -> None:
    CORRUPTIONS["V002"](dataset)
    result = runner.invoke(app, ["validate", str(dataset), "-j", "1"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error   V002 p001 p001/cta.nii.gz: CTA values span")
    assert lines[-1].startswith("INVALID")


def test_strict_turns_warnings_into_errors(dataset: Path, tmp_path: Path) -> None:
    CORRUPTIONS["F004"](dataset)
    assert runner.invoke(app, ["validate", str(dataset), "-j", "1"]).exit_code == 0
    out = tmp_path / "strict.json"
    result = runner.invoke(app, ["validate", str(dataset), "-j", "1", "--strict", "--json", str(out)])
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert [f["severity"] for f in report["findings"]] == ["error"]
    assert report["config"]["strict"] is True


def test_options_reach_the_checks(dataset: Path) -> None:
    CORRUPTIONS["V008"](dataset)  # CBF 5000 > default bound 1000
    assert (
        runner.invoke(app, ["validate", str(dataset), "-j", "1", "--perfusion-max", "CBF=6000"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["validate", str(dataset), "-j", "1", "--max-voxels", "100"]).exit_code == 1


def test_usage_errors_exit_2_without_traceback(pristine_dataset: Path, tmp_path: Path) -> None:
    cases = [
        ["validate", str(tmp_path / "missing")],
        ["validate", str(pristine_dataset), "--json", str(pristine_dataset / "report.json")],
        ["validate", str(pristine_dataset), "--perfusion-max", "PET=3"],
        ["validate", str(pristine_dataset), "--perfusion-max", "CBF=lots"],
        ["validate", str(pristine_dataset), "--hu-min", "10", "--hu-max", "0"],
        ["validate", str(pristine_dataset), "--jobs", "0"],
        ["validate"],
    ]
    for arguments in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert not (pristine_dataset / "report.json").exists()


def test_schema_command_writes_the_committed_schemas(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0
    committed = Path(__file__).parent.parent / "schemas"
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(path.name for path in committed.glob("*.json"))
    for name in written:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            f"schemas/{name} drifted from the models: run `strokedata schema --out schemas/`"
        )


def test_console_scripts_start_and_report_versions() -> None:
    for program in ("strokedata", "strokebench"):
        result = subprocess.run(
            [Path(sys.executable).parent / program, "--version"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0 and result.stdout.startswith(program)
    info = runner.invoke(strokebench_app, ["info"])
    assert info.exit_code == 0 and "torch" in info.output and "strokebench" in info.output


def test_every_code_is_documented_with_an_example() -> None:
    text = (Path(__file__).parent.parent / "docs" / "validation.md").read_text()
    for code, entry in CODES.items():
        heading = f"### {code} {entry.name} ({entry.severity})"
        assert heading in text, f"docs/validation.md lacks '{heading}'"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        assert f"Fix: {entry.fix}." in section and f" {code} " in section.split("```")[1]


def test_phantom_command_writes_a_valid_dataset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = runner.invoke(
        app,
        [
            "phantom",
            "--out",
            str(out),
            "-n",
            "3",
            "--seed",
            "4",
            "-j",
            "1",
            "--occlusion-mix",
            "M1=1",
            "--modalities",
            "TMAX,CBF",
            "--modalities",
            "CLOT",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "p00000", "p00001", "p00002"]
    assert sorted(p.name for p in (out / "p00001").iterdir()) == [
        "cbf.nii.gz",
        "clot.nii.gz",
        "patient.json",
        "tmax.nii.gz",
    ]
    assert json.loads((out / "p00002" / "patient.json").read_text())["labels"]["occlusion_location"] == "M1"
    assert runner.invoke(app, ["validate", str(out), "-j", "1"]).exit_code == 0
    again = runner.invoke(app, ["phantom", "--out", str(out), "-n", "1"])
    assert again.exit_code == 2 and "not an empty folder" in again.output


def test_phantom_command_rejects_bad_options(tmp_path: Path) -> None:
    for options in (
        ["--occlusion-mix", "M3=1"],
        ["--occlusion-mix", "M1=x"],
        ["--occlusion-mix", "M1=0"],
        ["--modalities", "PET"],
        ["--preset", "huge"],
        ["-n", "0"],
    ):
        result = runner.invoke(app, ["phantom", "--out", str(tmp_path / "x"), "-n", "1", *options])
        assert result.exit_code == 2, (options, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_show_writes_a_png_and_names_missing_patients(tmp_path: Path, pristine_dataset: Path) -> None:
    out = tmp_path / "look.png"
    result = runner.invoke(app, ["show", str(pristine_dataset), "p001", "--out", str(out), "--slices", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    missing = runner.invoke(app, ["show", str(pristine_dataset), "p999", "--out", str(out)])
    assert missing.exit_code == 2 and "p999" in missing.output
    inside = runner.invoke(
        app, ["show", str(pristine_dataset), "p001", "--out", str(pristine_dataset / "x.png")]
    )
    assert inside.exit_code == 2 and not (pristine_dataset / "x.png").exists()


def test_split_command_writes_reproducible_files_that_validate(
    pristine_dataset: Path, tmp_path: Path
) -> None:
    arguments = [
        "split",
        str(pristine_dataset),
        "--stratify",
        "mtici",
        "--test-size",
        "0.25",
        "--folds",
        "3",
        "-j",
        "1",
    ]
    first = runner.invoke(
        app, [*arguments, "--out", str(tmp_path / "a.json"), "--csv", str(tmp_path / "a.csv")]
    )
    assert first.exit_code == 0, first.output
    assert "largest deviation" in first.output
    second = runner.invoke(app, [*arguments, "--out", str(tmp_path / "b.json")])
    assert second.exit_code == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.csv").read_text().startswith("patient_id,partition,fold\n")
    checked = runner.invoke(
        app, ["validate", str(pristine_dataset), "-j", "1", "--split", str(tmp_path / "a.json")]
    )
    assert checked.exit_code == 0, checked.output
    extended = runner.invoke(
        app,
        [
            "split",
            str(pristine_dataset),
            "--extend",
            str(tmp_path / "a.json"),
            "--out",
            str(tmp_path / "c.json"),
            "-j",
            "1",
        ],
    )
    assert extended.exit_code == 0, extended.output
    assert (
        json.loads((tmp_path / "c.json").read_text())["test"]
        == json.loads((tmp_path / "a.json").read_text())["test"]
    )


def test_split_command_errors_are_clear(pristine_dataset: Path, tmp_path: Path) -> None:
    cases = [
        (["--stratify", "side"], "p003"),  # p003 has no occlusion, hence no side
        (["--stratify", "colour"], "unknown stratify"),
        ([], "--stratify"),
        (["--stratify", "mtici", "--missing", "maybe"], "--missing"),
        (["--stratify", "mtici", "--folds", "3", "--val-size", "0.2"], "exactly one"),
        (["--stratify", "mtici", "--extend", str(tmp_path / "none.json")], "cannot read"),
    ]
    for options, expected in cases:
        result = runner.invoke(
            app, ["split", str(pristine_dataset), *options, "--out", str(tmp_path / "s.json")]
        )
        assert result.exit_code == 2, (options, result.output)
        assert expected in result.output and "Traceback" not in result.output
    inside = runner.invoke(
        app,
        ["split", str(pristine_dataset), "--stratify", "mtici", "--out", str(pristine_dataset / "s.json")],
    )
    assert inside.exit_code == 2 and not (pristine_dataset / "s.json").exists()
    assert not (tmp_path / "s.json").exists()
