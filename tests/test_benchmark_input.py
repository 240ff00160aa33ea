"""Inputs a review found mishandled: each now gets a clear message and exit status 2, never a traceback,
a silent drop or an order that depends on the hash seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.strokebench_app import app
from strokedata.splits import SplitError
from strokemodels.benchmark import PredictionFileError, Rows, score, score_files
from strokemodels.benchmark.compare import compare_files
from strokemodels.benchmark.truth import truth_from_dataset
from tests.builders import build_dataset, edit_json

runner = CliRunner()
ZEROS = ",".join("0" * 15)
REGIONS = ",".join(f"region_{k:02d}" for k in range(15))


def _clean_exit(result: object) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]


def test_user_text_is_printed_as_text_not_markup(tmp_path: Path) -> None:
    (tmp_path / "truth.csv").write_text("patient_id,label\np1,M1\n")
    (tmp_path / "pred.csv").write_text("patient_id,prediction\n[/x],M1\n")
    result = runner.invoke(
        app,
        ["score", str(tmp_path / "pred.csv"), "--task", "occlusion", "--truth", str(tmp_path / "truth.csv")],
    )
    _clean_exit(result)
    assert "[/x]" in result.output
    (tmp_path / "rtruth.csv").write_text(f"patient_id,{REGIONS}\np1,{ZEROS}\n")
    shown = runner.invoke(
        app,
        [
            "score",
            str(tmp_path / "rtruth.csv"),
            "--task",
            "clot-regions",
            "--truth",
            str(tmp_path / "rtruth.csv"),
            "--bootstrap",
            "0",
        ],
    )
    assert shown.exit_code == 0 and "f1[region_00]" in shown.output


def test_non_ascii_digits_and_look_alike_folds(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(f"patient_id,slice,{REGIONS}\np1,²,{ZEROS}\n")
    with pytest.raises(PredictionFileError, match="slice '²'"):
        score_files("clot-regions", tmp_path / "s.csv", truth=tmp_path / "s.csv", bootstrap=0)
    truth = Rows({f"p{i}": "M1" for i in range(6)})
    folds = dict(zip(truth.values, ["1", "01", "²", "1", "01", "²"], strict=True))
    report = score("occlusion", Rows(dict(truth.values), folds=folds), truth, bootstrap=0)
    assert [f.fold for f in report.per_fold or []] == ["01", "1", "²"]


def test_header_problems_and_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "truth.csv").write_text("patient_id,label\np1,M1\np2,M2\n")
    (tmp_path / "twice.csv").write_text("patient_id,prediction, prediction\np1,M2,M1\n")
    with pytest.raises(PredictionFileError, match="prediction appear more than once"):
        score_files("occlusion", tmp_path / "twice.csv", truth=tmp_path / "truth.csv")
    (tmp_path / "blank.csv").write_text("patient_id,prediction\n\n\np1,M2\n\np2,XX\n")
    with pytest.raises(PredictionFileError, match="line 6: 'XX'"):
        score_files("occlusion", tmp_path / "blank.csv", truth=tmp_path / "truth.csv")


def test_folds_say_how_many_missing_patients_they_leave_out() -> None:
    truth = Rows({f"p{i}": "M1" for i in range(6)})
    predicted = Rows({f"p{i}": "M1" for i in range(4)}, folds={f"p{i}": str(i % 2) for i in range(4)})
    report = score("occlusion", predicted, truth, bootstrap=0, allow_missing=True)
    assert report.not_in_any_fold == 2 and report.missing_scored_as_wrong == 2
    assert report.metrics["accuracy"].value == pytest.approx(4 / 6)
    assert report.fold_mean_std is not None and report.fold_mean_std["accuracy"][0] == 1.0


def test_a_split_made_for_another_dataset_is_refused(tmp_path: Path) -> None:
    import shutil

    from strokedata.splits import make_split, write_split

    root = build_dataset(tmp_path / "data", 6)
    split, _ = make_split(root, ["site"], test_size=0.5, folds=2, seed=0, jobs=1)
    write_split(split, tmp_path / "split.json")
    assert split.test
    shutil.rmtree(root / split.test[0])
    with pytest.raises(SplitError, match=f"{split.test[0]}.*another dataset"):
        truth_from_dataset("occlusion", root, tmp_path / "split.json", "test")


def test_unwritable_outputs_and_edited_leaderboards_exit_cleanly(tmp_path: Path) -> None:
    (tmp_path / "truth.csv").write_text(
        "patient_id,label\n" + "".join(f"p{i},M{1 + i % 2}\n" for i in range(8))
    )
    common = ["--task", "occlusion", "--truth", str(tmp_path / "truth.csv"), "--bootstrap", "20"]
    _clean_exit(runner.invoke(app, ["score", str(tmp_path / "truth.csv"), *common, "--json", str(tmp_path)]))
    assert not (tmp_path / "leaderboard.jsonl").exists()  # nothing recorded when the JSON cannot be written
    predictions = tmp_path / "pred.csv"
    predictions.write_text((tmp_path / "truth.csv").read_text().replace("label", "prediction"))
    assert runner.invoke(app, ["score", str(predictions), *common, "--name", "run"]).exit_code == 0
    board = tmp_path / "leaderboard.jsonl"
    entry = json.loads(board.read_text())
    entry["replicates"] = entry["replicates"][:-1]
    board.write_text(json.dumps(entry) + "\n")
    shown = runner.invoke(app, ["leaderboard", "--task", "occlusion", "--leaderboard", str(board)])
    _clean_exit(shown)
    assert "line 1" in shown.output
    _clean_exit(runner.invoke(app, ["score", str(predictions), *common, "--name", " "]))


def test_compare_counts_unlabelled_patients(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "data", 4)
    edit_json(root / "p001" / "patient.json", {"labels.mtici": None})
    manifests = ["p000", "p001", "p002", "p003"]
    for name, p in (("a.csv", 0.8), ("b.csv", 0.3)):
        (tmp_path / name).write_text(
            "patient_id,probability\n" + "".join(f"{pid},{p}\n" for pid in manifests)
        )
    report = compare_files(
        "recanalization", tmp_path / "a.csv", tmp_path / "b.csv", dataset=root, bootstrap=0
    )
    assert report.n == 3 and report.unlabelled_not_scored == 1
    assert any("lack the recanalization label" in note for note in report.notes)
