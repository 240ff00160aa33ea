"""Scoring beyond one patient-level file: core masks, slice-level regions, folds, models, probabilities,
and resampling by patient weights, each checked against an independent computation."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from strokedata.labels import patient_regions, regions_by_slice
from strokedata.manifest import PatientManifest
from strokemodels.benchmark import PredictionFileError, Rows, ScoringError, score, score_files
from strokemodels.benchmark.evidence import metrics_at, resample_weights
from strokemodels.benchmark.pairing import build_evidence
from strokemodels.benchmark.segmentation import segmentation_metrics
from strokemodels.benchmark.tasks import TASKS
from tests.builders import build_dataset, save, tree_digest

OCCLUSION = ["ICA-T", "M1", "M2"]
REGIONS = ",".join(f"region_{k:02d}" for k in range(15))


def _core(root: Path, pid: str) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(root / pid / "core.nii.gz")
    return np.asarray(image.dataobj), image.affine


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("core") / "data", 4)


def _write_masks(folder: Path, four: Path, change: dict[str, np.ndarray] | None = None) -> Path:
    """Write one predicted mask per patient (the truth, or ``change[pid]``) and the predictions CSV."""
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    lines = ["patient_id,mask"]
    for pid in ("p000", "p001", "p002", "p003"):
        truth, affine = _core(four, pid)
        save(folder / "masks" / f"{pid}.nii.gz", (change or {}).get(pid, truth).astype(np.uint8), affine)
        lines.append(f"{pid},masks/{pid}.nii.gz")
    (folder / "core.csv").write_text("\n".join(lines) + "\n")
    return folder / "core.csv"


def test_core_scores_are_the_mean_of_per_patient_segmentation_metrics(four: Path, tmp_path: Path) -> None:
    before = tree_digest(four)
    truth0, _ = _core(four, "p000")
    moved = {"p000": np.roll(truth0, 1, axis=0), "p002": np.zeros_like(truth0)}
    predictions = _write_masks(tmp_path, four, moved)
    [report] = score_files("core", predictions, dataset=four, bootstrap=200, seed=3, workers=2)
    expected = []
    for pid in ("p000", "p001", "p002", "p003"):
        truth, affine = _core(four, pid)
        spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
        expected.append(segmentation_metrics(truth, moved.get(pid, truth), spacing))  # type: ignore[arg-type]
    assert report.n == 4 and list(report.metrics)[:7] == TASKS["core"].metrics
    for name in TASKS["core"].metrics:
        value = report.metrics[name]
        assert value.value == pytest.approx(np.mean([e[name] for e in expected]), abs=1e-9), name
        assert value.ci95 is not None and value.ci95[0] - 1e-9 <= value.value <= value.ci95[1] + 1e-9  # type: ignore[operator]
    assert tree_digest(four) == before  # scoring never writes into the dataset
    perfect = score_files("core", _write_masks(tmp_path / "perfect", four), dataset=four, bootstrap=0)[0]
    assert perfect.metrics["dice"].value == 1.0 and perfect.metrics["hd95_mm"].value == 0.0


def test_core_masks_on_another_grid_or_not_binary_are_refused(four: Path, tmp_path: Path) -> None:
    truth, affine = _core(four, "p001")
    predictions = _write_masks(tmp_path, four)
    shifted = affine.copy()
    shifted[0, 3] += 0.5
    save(tmp_path / "masks" / "p001.nii.gz", truth.astype(np.uint8), shifted)
    with pytest.raises(ScoringError, match=r"p001.*another grid.*resample"):
        score_files("core", predictions, dataset=four, bootstrap=0)
    save(tmp_path / "masks" / "p001.nii.gz", truth[:, :, :-1].astype(np.uint8), affine)
    with pytest.raises(ScoringError, match=r"p001.*shape"):
        score_files("core", predictions, dataset=four, bootstrap=0)
    save(tmp_path / "masks" / "p001.nii.gz", truth.astype(np.float32) * 0.7, affine)
    with pytest.raises(ScoringError, match=r"p001.*other than 0 and 1"):
        score_files("core", predictions, dataset=four, bootstrap=0)
    (tmp_path / "masks" / "p001.nii.gz").unlink()
    with pytest.raises(PredictionFileError, match=r"line 3.*does not exist"):
        score_files("core", predictions, dataset=four, bootstrap=0)


def test_a_missing_core_prediction_scores_as_the_worst_mask(four: Path, tmp_path: Path) -> None:
    predictions = _write_masks(tmp_path, four)
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(line for line in lines if not line.startswith("p003")) + "\n")
    with pytest.raises(ScoringError, match=r"1 patient.*p003"):
        score_files("core", predictions, dataset=four, bootstrap=0)
    [report] = score_files("core", predictions, dataset=four, bootstrap=0, allow_missing=True)
    assert report.missing_scored_as_wrong == 1
    assert report.metrics["dice"].value == pytest.approx(0.75)  # three perfect patients, one scored 0
    shape = _core(four, "p003")[0].shape
    diagonal = float(
        np.sqrt(((np.array(shape) * np.sqrt((_core(four, "p003")[1][:3, :3] ** 2).sum(0))) ** 2).sum())
    )
    assert report.metrics["hd95_mm"].value == pytest.approx(diagonal / 4)


def test_slice_level_regions_come_from_clot_and_atlas_slice_by_slice(four: Path, tmp_path: Path) -> None:
    manifests = {
        pid: PatientManifest.model_validate_json((four / pid / "patient.json").read_text())
        for pid in ("p000", "p001", "p002", "p003")
    }
    truth_rows = {}
    for pid, manifest in manifests.items():
        clot = np.asarray(nib.load(four / pid / manifest.images["CLOT"]).dataobj)  # type: ignore[index]
        atlas = np.asarray(nib.load(four / pid / manifest.images["ATLAS"]).dataobj)  # type: ignore[index]
        by_slice = regions_by_slice(clot, atlas)
        assert by_slice.max(axis=0).tolist() == patient_regions(
            four / pid,
            manifest.model_copy(update={"labels": manifest.labels.model_copy(update={"regions": None})}),
        )
        truth_rows[pid] = by_slice
    rng = np.random.default_rng(0)
    lines, y, z = [f"patient_id,slice,{REGIONS}"], [], []
    for pid, rows in truth_rows.items():
        for index, row in enumerate(rows):
            guess = np.where(rng.uniform(size=15) < 0.1, 1 - row, row)
            y.append(row)
            z.append(guess)
            lines.append(f"{pid},{index}," + ",".join(str(int(v)) for v in guess))
    (tmp_path / "slices.csv").write_text("\n".join(lines) + "\n")
    [report] = score_files("clot-regions", tmp_path / "slices.csv", dataset=four, bootstrap=100)
    assert report.unit == "slice" and report.n == 4 and report.n_units == len(y)
    assert report.metrics["micro_f1"].value == pytest.approx(
        sk.f1_score(np.array(y), np.array(z), average="micro", zero_division=0), abs=1e-9
    )
    assert report.metrics["exact_match"].value == pytest.approx(
        sk.accuracy_score(np.array(y), np.array(z)), abs=1e-9
    )
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ScoringError, match=r"p003.*some slices|some slices.*p003"):
        score_files("clot-regions", tmp_path / "short.csv", dataset=four, bootstrap=0)
    extra = [*lines, "p003,999," + ",".join("0" * 15)]
    (tmp_path / "extra.csv").write_text("\n".join(extra) + "\n")
    with pytest.raises(ScoringError, match="p003 slice 999"):
        score_files("clot-regions", tmp_path / "extra.csv", dataset=four, bootstrap=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 60), st.integers(2, 5))
def test_fold_scores_equal_scoring_each_fold_alone(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    truth = {f"p{i}": OCCLUSION[int(c)] for i, c in enumerate(rng.integers(0, 3, n))}
    guess = {pid: OCCLUSION[int(c)] for pid, c in zip(truth, rng.integers(0, 3, n), strict=True)}
    folds = {pid: str(i % k) for i, pid in enumerate(truth)}
    report = score("occlusion", Rows(guess, folds=folds), Rows(truth), bootstrap=0)
    assert report.per_fold is not None and report.fold_mean_std is not None
    assert [f.fold for f in report.per_fold] == [str(i) for i in range(k)]
    accuracies = []
    for fold in report.per_fold:
        ids = [pid for pid in truth if folds[pid] == fold.fold]
        alone = score(
            "occlusion", Rows({p: guess[p] for p in ids}), Rows({p: truth[p] for p in ids}), bootstrap=0
        )
        assert fold.n == len(ids)
        for name, value in fold.metrics.items():
            assert value == pytest.approx(alone.metrics[name].value, abs=1e-12)
        accuracies.append(alone.metrics["accuracy"].value)
    mean, std = report.fold_mean_std["accuracy"]
    assert mean == pytest.approx(np.mean(accuracies)) and std == pytest.approx(np.std(accuracies, ddof=1))


def test_a_model_column_gives_one_report_per_model(tmp_path: Path) -> None:
    truth = {f"p{i}": OCCLUSION[i % 3] for i in range(9)}
    (tmp_path / "truth.csv").write_text(
        "patient_id,label\n" + "".join(f"{p},{t}\n" for p, t in truth.items())
    )
    lines = ["patient_id,prediction,model"]
    lines += [f"{p},{t},zeta" for p, t in truth.items()] + [f"{p},M1,alpha" for p in truth]
    (tmp_path / "two.csv").write_text("\n".join(lines) + "\n")
    reports = score_files("occlusion", tmp_path / "two.csv", truth=tmp_path / "truth.csv", bootstrap=50)
    assert [r.model for r in reports] == ["alpha", "zeta"]
    assert (
        reports[0].metrics["accuracy"].value == pytest.approx(3 / 9)
        and reports[1].metrics["accuracy"].value == 1.0
    )
    alone = score("occlusion", Rows(dict.fromkeys(truth, "M1")), Rows(truth), bootstrap=50)
    assert alone.metrics == reports[0].metrics


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(9, 80))
def test_one_vs_rest_auc_agrees_with_scikit_learn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.r_[0, 1, 2, rng.integers(0, 3, n - 3)]
    probabilities = rng.dirichlet(np.ones(3), size=n).round(3)
    probabilities[:, 2] = 1 - probabilities[:, :2].sum(axis=1)
    ids = [f"p{i}" for i in range(n)]
    predicted = Rows(
        {pid: OCCLUSION[int(np.argmax(p))] for pid, p in zip(ids, probabilities, strict=True)},
        scores={pid: tuple(float(v) for v in p) for pid, p in zip(ids, probabilities, strict=True)},
    )
    report = score(
        "occlusion",
        predicted,
        Rows({pid: OCCLUSION[c] for pid, c in zip(ids, labels, strict=True)}),
        bootstrap=0,
    )
    expected = sk.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert report.metrics["roc_auc_ovr"].value == pytest.approx(expected, abs=1e-9)
    for k, name in enumerate(OCCLUSION):
        assert report.metrics[f"roc_auc[{name}]"].value == pytest.approx(
            sk.roc_auc_score(labels == k, probabilities[:, k]), abs=1e-9
        )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 40))
def test_patient_weights_equal_scoring_the_explicit_resample(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    labels = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    probability = rng.uniform(size=n).round(2)
    truth = Rows(dict(zip(ids, labels.tolist(), strict=True)))
    predicted = Rows(
        {p: int(q >= 0.5) for p, q in zip(ids, probability, strict=True)},
        scores={p: (float(q),) for p, q in zip(ids, probability, strict=True)},
    )
    evidence = build_evidence(TASKS["recanalization"], truth, predicted)
    weights = next(resample_weights(n, 5, seed))
    resampled = metrics_at(evidence, weights)
    for row, multiplicity in enumerate(weights):
        index = np.repeat(np.arange(n), multiplicity.astype(int))
        y, q = labels[index], probability[index]
        z = (q >= 0.5).astype(int)
        assert resampled["accuracy"][row] == pytest.approx(sk.accuracy_score(y, z), abs=1e-12)
        assert resampled["sensitivity"][row] == pytest.approx(
            sk.recall_score(y, z, zero_division=0), abs=1e-12
        )
        if len(set(y)) == 2:
            assert resampled["roc_auc"][row] == pytest.approx(sk.roc_auc_score(y, q), abs=1e-12)
        else:
            assert np.isnan(resampled["roc_auc"][row])


def test_bad_prediction_files_name_every_problem(tmp_path: Path) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("patient_id,label\np1,M1\np2,M2\n")
    cases = {
        "patient_id,prediction,fold_id\np1,M1,0\n": "unknown column.*fold_id",
        "patient_id,prediction,p_ICA-T,p_M1\np1,M1,0.5,0.5\n": "all of p_ICA-T, p_M1, p_M2",
        "patient_id,prediction,p_ICA-T,p_M1,p_M2\np1,M1,0.5,0.6,0.2\np2,M2,0.1,0.1,0.8\n": (
            "line 2.*sum to 1.3"
        ),
        "patient_id,prediction,model\np1,M1,\np2,M2,a\n": "line 2: empty model",
        "patient_id,prediction,fold\np1,M1,\np2,M2,1\n": "line 2: empty fold",
        "patient_id,prediction\np1,M1,extra\n": "more fields than columns",
    }
    for index, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"case{index}.csv"
        path.write_text(text)
        with pytest.raises(PredictionFileError, match=message):
            score_files("occlusion", path, truth=truth, bootstrap=0)
    slices = tmp_path / "slices.csv"
    zeros = ",".join("0" * 15)
    slices.write_text(f"patient_id,slice,{REGIONS}\np1,x,{zeros}\np1,2,{zeros}\np1,2,{zeros}\n")
    with pytest.raises(PredictionFileError) as caught:
        score_files("clot-regions", slices, truth=slices, bootstrap=0)
    assert "line 2: slice 'x'" in str(caught.value) and "slice 2 appears twice" in str(caught.value)


def test_the_truth_file_of_the_core_task_holds_mask_paths(four: Path, tmp_path: Path) -> None:
    predictions = _write_masks(tmp_path, four)
    (tmp_path / "truth").mkdir()
    lines = ["patient_id,mask"]
    for pid in ("p000", "p001", "p002", "p003"):
        shutil.copy(four / pid / "core.nii.gz", tmp_path / "truth" / f"{pid}.nii.gz")
        lines.append(f"{pid},{pid}.nii.gz")
    (tmp_path / "truth" / "truth.csv").write_text("\n".join(lines) + "\n")
    [from_file] = score_files("core", predictions, truth=tmp_path / "truth" / "truth.csv", bootstrap=0)
    [from_dataset] = score_files("core", predictions, dataset=four, bootstrap=0)
    assert from_file.metrics == from_dataset.metrics and from_file.metrics["dice"].value == 1.0


def test_recanalization_predictions_without_a_probability_are_refused() -> None:
    labels = {f"p{i}": i % 2 for i in range(6)}
    decisions = Rows(dict(labels), scores={pid: (0.5,) for pid in list(labels)[:4]})
    with pytest.raises(ScoringError, match=r"2 recanalization prediction\(s\) lack a probability: p4, p5"):
        score("recanalization", decisions, Rows(labels), bootstrap=0)
