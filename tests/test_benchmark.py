"""The benchmark: the papers' tables reproduced, agreement with scikit-learn, bootstrap, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from strokemodels.benchmark import TASKS, PredictionFileError, Rows, ScoringError, score, score_files

OCCLUSION = ["ICA-T", "M1", "M2"]
TABLE_000 = {  # confusion matrices of 000 (rows truth, columns prediction) and its Table 2
    "CBAM 3D CNN + self-attention": ([[11, 5, 0], [9, 49, 4], [1, 3, 24]], 0.792),
    "ResNet18-CBAM 3D (Tahyudin et al. 2024, re-implemented)": ([[9, 7, 0], [12, 44, 6], [1, 7, 20]], 0.689),
}


def _rows_from_confusion(matrix: list[list[int]]) -> tuple[Rows, Rows]:
    truth, predicted, index = {}, {}, 0
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            for _ in range(count):
                truth[f"p{index:04d}"], predicted[f"p{index:04d}"] = OCCLUSION[i], OCCLUSION[j]
                index += 1
    return Rows(truth), Rows(predicted)


@pytest.mark.parametrize("model", sorted(TABLE_000))
def test_the_confusion_matrices_of_000_reproduce_its_table(model: str) -> None:
    matrix, accuracy = TABLE_000[model]
    truth, predicted = _rows_from_confusion(matrix)
    report = score("occlusion", predicted, truth, bootstrap=0)
    assert (
        report.n == 106 and report.confusion_matrix is not None and report.confusion_matrix.matrix == matrix
    )
    assert round(report.metrics["accuracy"].value or 0, 3) == accuracy
    published = next(p for p in TASKS["occlusion"].published if p.model == model)
    for name, value in published.metrics.items():
        if name != "accuracy":
            assert round(report.metrics[name].value or 0, 2) == value, name


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(OCCLUSION), st.sampled_from(OCCLUSION)), min_size=1, max_size=80))
def test_occlusion_metrics_agree_with_scikit_learn(pairs: list[tuple[str, str]]) -> None:
    truth = Rows({f"p{i}": t for i, (t, _) in enumerate(pairs)})
    predicted = Rows({f"p{i}": p for i, (_, p) in enumerate(pairs)})
    report = score("occlusion", predicted, truth, bootstrap=0)
    y, z = [t for t, _ in pairs], [p for _, p in pairs]
    assert abs(report.metrics["accuracy"].value - sk.accuracy_score(y, z)) < 1e-9  # type: ignore[operator]
    assert (
        abs(
            report.metrics["macro_f1"].value
            - sk.f1_score(
                y,
                z,
                labels=OCCLUSION,
                average="macro",  # type: ignore[operator]
                zero_division=0,
            )
        )
        < 1e-9
    )
    present = sorted(set(y))
    expected_balanced = np.mean(
        [sk.recall_score(y, z, labels=[c], average="macro", zero_division=0) for c in present]
    )
    assert abs(report.metrics["balanced_accuracy"].value - expected_balanced) < 1e-9  # type: ignore[operator]
    for c in OCCLUSION:
        assert (
            abs(
                report.metrics[f"precision[{c}]"].value
                - sk.precision_score(  # type: ignore[operator]
                    y, z, labels=[c], average="macro", zero_division=0
                )
            )
            < 1e-9
        )


@settings(max_examples=40)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=80), st.floats(0.05, 0.95))
def test_recanalization_metrics_agree_with_scikit_learn(
    rows: list[tuple[bool, float]], threshold: float
) -> None:
    truth = Rows({f"p{i}": int(t) for i, (t, _) in enumerate(rows)})
    predicted = Rows(
        {f"p{i}": int(p >= threshold) for i, (_, p) in enumerate(rows)},
        scores={f"p{i}": (p,) for i, (_, p) in enumerate(rows)},
    )
    report = score("recanalization", predicted, truth, bootstrap=0)
    y = [int(t) for t, _ in rows]
    probabilities = [p for _, p in rows]
    z = [int(p >= threshold) for p in probabilities]
    if len(set(y)) == 2:
        assert abs(report.metrics["roc_auc"].value - sk.roc_auc_score(y, probabilities)) < 1e-9  # type: ignore[operator]
    else:
        assert report.metrics["roc_auc"].value is None
    assert abs(report.metrics["sensitivity"].value - sk.recall_score(y, z, zero_division=0)) < 1e-9  # type: ignore[operator]
    assert abs(report.metrics["precision"].value - sk.precision_score(y, z, zero_division=0)) < 1e-9  # type: ignore[operator]
    assert (
        abs(report.metrics["specificity"].value - sk.recall_score(y, z, pos_label=0, zero_division=0)) < 1e-9
    )  # type: ignore[operator]


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.integers(1, 60))
def test_clot_region_metrics_agree_with_scikit_learn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, 15)) < 0.15).astype(int)
    z = (rng.uniform(size=(n, 15)) < 0.15).astype(int)
    report = score(
        "clot-regions",
        Rows({f"p{i}": tuple(z[i].tolist()) for i in range(n)}),
        Rows({f"p{i}": tuple(y[i].tolist()) for i in range(n)}),
        bootstrap=0,
    )
    assert abs(report.metrics["micro_f1"].value - sk.f1_score(y, z, average="micro", zero_division=0)) < 1e-9  # type: ignore[operator]
    assert abs(report.metrics["exact_match"].value - sk.accuracy_score(y, z)) < 1e-9  # type: ignore[operator]
    assert abs(report.metrics["label_accuracy"].value - (y == z).mean()) < 1e-9  # type: ignore[operator]


@settings(max_examples=25)
@given(
    st.lists(st.tuples(st.sampled_from(OCCLUSION), st.sampled_from(OCCLUSION)), min_size=5, max_size=60),
    st.integers(0, 1000),
)
def test_bootstrap_is_seeded_order_free_and_brackets_accuracy(
    pairs: list[tuple[str, str]], seed: int
) -> None:
    truth = Rows({f"p{i}": t for i, (t, _) in enumerate(pairs)})
    predicted = {f"p{i}": p for i, (_, p) in enumerate(pairs)}
    first = score("occlusion", Rows(predicted), truth, bootstrap=300, seed=seed)
    items = list(predicted.items())
    random.Random(seed).shuffle(items)
    second = score("occlusion", Rows(dict(items)), truth, bootstrap=300, seed=seed)
    assert first == second
    accuracy = first.metrics["accuracy"]
    assert accuracy.ci95 is not None and accuracy.ci95[0] <= accuracy.value <= accuracy.ci95[1]  # type: ignore[operator]


def test_perfect_predictions_score_one() -> None:
    truth = Rows({f"p{i}": OCCLUSION[i % 3] for i in range(30)})
    report = score("occlusion", truth, truth, bootstrap=100)
    assert all(v.value == 1.0 for v in report.metrics.values())
    assert report.metrics["accuracy"].ci95 == (1.0, 1.0)
    labels = {f"p{i}": i % 2 for i in range(20)}
    perfect = Rows(labels, scores={pid: (float(label),) for pid, label in labels.items()})
    recanalization = score("recanalization", perfect, Rows(labels), bootstrap=50)
    assert all(v.value == 1.0 and v.ci95 == (1.0, 1.0) for v in recanalization.metrics.values())


def test_missing_and_unknown_patients(tmp_path: Path) -> None:
    labels = {f"p{i}": OCCLUSION[i % 3] for i in range(10)}
    truth = Rows(labels)
    partial = Rows({pid: label for pid, label in labels.items() if pid != "p3"})
    with pytest.raises(ScoringError, match="p3"):
        score("occlusion", partial, truth)
    report = score("occlusion", partial, truth, allow_missing=True, bootstrap=0)
    assert report.missing_scored_as_wrong == 1 and report.metrics["accuracy"].value == 0.9
    with pytest.raises(ScoringError, match="p99"):
        score("occlusion", Rows({**labels, "p99": "M1"}), truth)


def test_bad_prediction_files_list_every_problem(tmp_path: Path) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("patient_id,label\np1,M1\np2,M2\n")
    bad = tmp_path / "pred.csv"
    bad.write_text("patient_id,prediction\np1,M3\np1,M1\n,M2\n")
    with pytest.raises(PredictionFileError) as caught:
        score_files("occlusion", bad, truth=truth)
    message = str(caught.value)
    assert (
        "3 problem(s)" in message
        and "'M3'" in message
        and "twice" in message
        and "empty patient_id" in message
    )
    columns = tmp_path / "columns.csv"
    columns.write_text("patient,label\n")
    with pytest.raises(PredictionFileError, match="missing column"):
        score_files("occlusion", columns, truth=truth)
    probabilities = tmp_path / "p.csv"
    probabilities.write_text("patient_id,probability\np1,nan\np2,1.5\n")
    recan_truth = tmp_path / "t.csv"
    recan_truth.write_text("patient_id,label\np1,1\np2,0\n")
    with pytest.raises(PredictionFileError, match="outside"):
        score_files("recanalization", probabilities, truth=recan_truth)


def test_task_cards_state_their_metrics_policies_and_baselines() -> None:
    assert set(TASKS) == {"occlusion", "recanalization", "core", "clot-regions"}
    assert [TASKS[t].primary for t in ("occlusion", "recanalization", "core", "clot-regions")] == [
        "accuracy",
        "roc_auc",
        "dice",
        "micro_f1",
    ]
    for card in TASKS.values():
        assert card.published
        required = {"missing patient", "empty truth", "empty prediction", "undefined metric"}
        assert required <= set(card.policies), card.name
    scanet = next(p for p in TASKS["recanalization"].published if p.model == "SCANet")
    assert scanet.metrics["roc_auc"] == 0.7732 and scanet.std["roc_auc"] == 0.039 and scanet.n == 177


def test_truth_from_a_phantom_dataset_and_a_split_partition(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.strokebench_app import app
    from strokedata.labels import patient_regions
    from strokedata.manifest import PatientManifest
    from strokedata.phantoms import generate_dataset, preset
    from strokedata.splits import make_split, write_split

    root = generate_dataset(
        tmp_path / "data", 12, preset("tiny", modalities=["CLOT", "ATLAS"]), seed=1, jobs=1
    )  # type: ignore[list-item]
    manifests = {
        p.name: PatientManifest.model_validate_json((p / "patient.json").read_text())
        for p in root.iterdir()
        if p.is_dir()
    }
    lines = ["patient_id," + ",".join(f"region_{k:02d}" for k in range(15))]
    lines += [
        f"{pid}," + ",".join(str(b) for b in patient_regions(root / pid, m) or [])
        for pid, m in manifests.items()
    ]
    (tmp_path / "regions.csv").write_text("\n".join(lines) + "\n")
    [perfect] = score_files("clot-regions", tmp_path / "regions.csv", dataset=root, bootstrap=0)
    assert perfect.n == 12 and perfect.metrics["micro_f1"].value == 1.0
    occlusion = tmp_path / "occlusion.csv"
    occlusion.write_text("patient_id,prediction\n" + "".join(f"{pid},M1\n" for pid in manifests))
    split, _ = make_split(root, ["occlusion"], test_size=0.25, folds=3, seed=0, jobs=1)
    write_split(split, tmp_path / "split.json")
    result = CliRunner().invoke(
        app,
        [
            "score",
            str(occlusion),
            "--task",
            "occlusion",
            "--dataset",
            str(root),
            "--split",
            str(tmp_path / "split.json"),
            "--partition",
            "test",
            "--allow-missing",
            "--json",
            str(tmp_path / "s.json"),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output  # the partition is scored, the other patients left aside
    scored = json.loads((tmp_path / "s.json").read_text())
    assert scored["n"] == len(split.test)
    assert scored["outside_partition_not_scored"] == len(manifests) - len(split.test)
    assert f"{len(manifests) - len(split.test)} predicted patients" in result.output
    stranger = tmp_path / "stranger.csv"
    stranger.write_text(occlusion.read_text() + "nobody,M1\n")
    arguments = ["score", str(stranger), "--task", "occlusion", "--dataset", str(root)]
    partition = ["--split", str(tmp_path / "split.json"), "--partition", "test"]
    result = CliRunner().invoke(app, arguments + partition)
    assert result.exit_code == 2 and "not in the truth" in result.output and "nobody" in result.output
    subset = tmp_path / "test.csv"
    subset.write_text("patient_id,prediction\n" + "".join(f"{pid},M1\n" for pid in split.test))
    result = CliRunner().invoke(
        app,
        [
            "score",
            str(subset),
            "--task",
            "occlusion",
            "--dataset",
            str(root),
            "--split",
            str(tmp_path / "split.json"),
            "--partition",
            "test",
            "--json",
            str(tmp_path / "s.json"),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["n"] == len(split.test) and saved["metrics"]["accuracy"]["ci95"] is not None
    both = CliRunner().invoke(
        app, ["score", str(subset), "--task", "occlusion", "--dataset", str(root), "--truth", str(subset)]
    )
    assert both.exit_code == 2


def test_benchmark_schemas_match_the_committed_files(tmp_path: Path) -> None:
    from strokemodels.benchmark.files import columns
    from strokemodels.benchmark.schemas import benchmark_schemas, export_benchmark_schemas

    written = export_benchmark_schemas(tmp_path)
    committed = Path(__file__).parent.parent / "schemas" / "benchmark"
    assert sorted(p.name for p in written) == sorted(p.name for p in committed.glob("*.json"))
    for path in written:
        assert path.read_text() == (committed / path.name).read_text(), (
            f"schemas/benchmark/{path.name} drifted: run `strokebench schema --out schemas/benchmark`"
        )
    schemas = benchmark_schemas()
    for name, task in TASKS.items():
        required, optional = columns(task, "prediction")
        schema = schemas[f"predictions-{name}.schema.json"]
        assert schema["required"] == required and set(schema["properties"]) == {*required, *optional}
