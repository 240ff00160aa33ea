"""The three other tasks' networks through train, predict and score: slice networks (clot-regions) train
on every slice and predict per slice and per patient, the recanalization networks on whole volumes, and
the core networks in two stages whose chained prediction writes masks with the truth's geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.strokebench_app import app
from strokedata import load_dataset
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.manifest import Modality
from strokedata.preprocess import preprocess_dataset
from strokedata.splits import make_split, write_split
from strokemodels.benchmark.scoring import score_files
from strokemodels.training.predict import PredictRequest, predict
from strokemodels.training.run import METRICS_FILE, read_record
from strokemodels.training.train import TrainRequest, train
from tests.builders import build_dataset

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Eight tiny patients and a split of them (a test partition and two folds)."""
    folder = tmp_path_factory.mktemp("tasks")
    raw = build_dataset(folder / "raw", n_patients=8)
    split, _ = make_split(raw, ["recanalization"], test_size=0.25, folds=2, seed=0, missing="exclude", jobs=1)
    write_split(split, folder / "split.json")
    return raw, folder / "split.json"


def _preprocessed(cohort: tuple[Path, Path], task: str, **parameters: object) -> Path:
    out = cohort[0].parent / f"pre-{task}"
    if not out.is_dir():
        assert preprocess_dataset(cohort[0], task, out, parameters=parameters, jobs=1).ok
    return out


def _train(cohort: tuple[Path, Path], data: Path, model: str, out: Path, **changes: object) -> Path:
    request = {
        "model": model, "dataset": data, "split": cohort[1], "out": out, "fold": 0, "epochs": 2,
        "cache_root": out.parent / "cache", "jobs": 1, "device": "cpu", **changes,
    }  # fmt: skip
    return train(TrainRequest(**request))  # type: ignore[arg-type]


def _predicted_and_scored(
    cohort: tuple[Path, Path], data: Path, run: Path, out: Path, **options: object
) -> int:
    """Predict the test partition with ``run`` into ``out``, score it, and return the patients predicted."""
    request = PredictRequest(
        (run,), data, out, split=cohort[1], partition="test", cache_root=out.parent / "cache", **options
    )  # type: ignore[arg-type]
    summary = predict(request)
    task = read_record(run).spec.task
    (report,) = score_files(task, out, dataset=data, split=cohort[1], partition="test", bootstrap=0)
    assert report.metrics
    return summary.patients


def _losses(run: Path) -> list[float]:
    return [float(line.split(",")[1]) for line in (run / METRICS_FILE).read_text().splitlines()[1:]]


def test_a_slice_network_trains_on_slices_and_predicts_slices_and_patients(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    data = _preprocessed(cohort, "clot-regions", window="angiography")
    run = _train(cohort, data, "cnn4", tmp_path / "cnn4", epochs=4, input_size=(32, 32, 1), batch_size=8)
    losses = _losses(run)
    assert losses[-1] < losses[0], losses
    assert read_record(run).parameters.input_size == (32, 32, 1)
    slices = _predicted_and_scored(cohort, data, run, tmp_path / "slices.csv", slice_level=True)
    patients = _predicted_and_scored(cohort, data, run, tmp_path / "p.csv", skip_empty_slices=True)
    dataset = load_dataset(data)
    rows = (tmp_path / "slices.csv").read_text().splitlines()[1:]
    depth = sum(
        read_volume(data / pid / dataset.patients[pid].images[Modality.MCTA1], MAX_VOXELS).data.shape[2]
        for pid in sorted({row.split(",")[0] for row in rows})
    )
    assert len(rows) == depth  # one row per slice of every predicted patient
    assert slices == patients == 2


def test_the_recanalization_networks_train_predict_and_score(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    data = _preprocessed(cohort, "recanalization", registration=None, skull_strip=False)
    for model in ("scanet",):  # resnet34-2d: the contract suite (21 million weights train slowly here)
        run = _train(cohort, data, model, tmp_path / model, input_size=(32, 32, 8), batch_size=2)
        assert len(_losses(run)) == 2
        assert _predicted_and_scored(cohort, data, run, tmp_path / f"{model}.csv") == 2


def test_the_core_stages_chain_into_masks_on_the_truths_grid(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    data = _preprocessed(cohort, "core")
    common = {"attention_stride": 8, "batch_size": 16}
    first = _train(
        cohort, data, "ctp-transformer", tmp_path / "tfa", epochs=1, samples_per_epoch=32, **common
    )
    refused = runner.invoke(
        app,
        ["train", "--task", "core", "--model", "ctp-unet", "--dataset", str(data), "--split", str(cohort[1]),
         "--fold", "1", "--stage1", str(first), "--out", str(tmp_path / "wrong"), "--device", "cpu"],
    )  # fmt: skip
    assert refused.exit_code == 2 and "same dataset, split and fold" in refused.output
    missing = runner.invoke(
        app,
        ["train", "--task", "core", "--model", "ctp-unet", "--dataset", str(data), "--split", str(cohort[1]),
         "--fold", "0", "--out", str(tmp_path / "none"), "--device", "cpu"],
    )  # fmt: skip
    assert missing.exit_code == 2 and "give --stage1 RUN" in missing.output
    assert not (tmp_path / "none").exists()
    second = _train(cohort, data, "ctp-unet", tmp_path / "unet", stage1=first, **common)
    assert (second / "stage1.pt").read_bytes() == (first / "best.pt").read_bytes()
    for run in (first, second):
        out = tmp_path / f"{run.name}.csv"
        assert _predicted_and_scored(cohort, data, run, out) == 2
        dataset = load_dataset(data)
        for line in out.read_text().splitlines()[1:]:
            pid, mask = line.split(",")
            written = read_volume(out.parent / mask, MAX_VOXELS)
            truth = read_volume(data / pid / dataset.patients[pid].images[Modality.CORE], MAX_VOXELS)
            assert written.data.shape == truth.data.shape
            assert np.allclose(written.header.affine, truth.header.affine)


def test_head_epochs_train_the_head_alone_then_everything_at_the_lower_rate(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    """The AMI-Net report's transfer schedule: the head alone first, then every weight at a tenth."""
    import torch

    from strokemodels.registry import get_model
    from strokemodels.training.run import LAST

    data = _preprocessed(cohort, "clot-regions", window="angiography")
    common = {"input_size": (32, 32, 1), "batch_size": 8, "head_epochs": 1}
    first = _train(cohort, data, "cnn4", tmp_path / "one", epochs=1, **common)
    both = _train(cohort, data, "cnn4", tmp_path / "two", epochs=2, **common)
    entry = get_model("cnn4")
    initial = entry.build(entry.spec.at_size((32, 32, 1)), 0).state_dict()
    after_one = torch.load(first / LAST, weights_only=True)["state_dict"]
    after_two = torch.load(both / LAST, weights_only=True)["state_dict"]
    for name, value in initial.items():
        assert torch.equal(value, after_one[name]) != name.startswith("head."), name  # only the head moved
        assert not torch.equal(value, after_two[name]), name  # then everything did
    rates = [float(line.split(",")[2]) for line in (both / METRICS_FILE).read_text().splitlines()[1:]]
    assert rates[1] == pytest.approx(rates[0] * 0.1)
