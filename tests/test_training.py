"""Training and prediction: the loss falls, a resumed run equals an uninterrupted one, the loader's worker
count changes nothing, the cache follows its inputs, fold ensembles are scored, and bad requests get a
clear message and exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.strokebench_app import app
from strokedata import load_dataset
from strokedata.manifest import Modality
from strokedata.preprocess import preprocess_dataset
from strokedata.splits import make_split, write_split
from strokemodels.training.cache import CacheSpec, build_cache
from strokemodels.training.run import LAST, METRICS_FILE
from strokemodels.training.train import TrainRequest, train
from tests.builders import build_dataset

runner = CliRunner()
SIZE = (16, 16, 8)


@pytest.fixture(scope="module")
def occlusion_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Twelve tiny patients (three of each site, three without a label) through the occlusion pipeline
    (registration off: seconds, not minutes), and a split with a test set and two folds."""
    folder = tmp_path_factory.mktemp("zoo")
    raw = build_dataset(folder / "raw", n_patients=12)
    pre = folder / "pre"
    assert preprocess_dataset(raw, "occlusion", pre, parameters={"registration": None}, jobs=1).ok
    split, _ = make_split(pre, ["occlusion"], test_size=0.25, folds=2, seed=0, missing="exclude", jobs=1)
    write_split(split, folder / "split.json")
    return pre, folder / "split.json"


def _request(data: tuple[Path, Path], out: Path, **changes: object) -> TrainRequest:
    base = {
        "model": "cbam3d", "dataset": data[0], "split": data[1], "out": out, "fold": 0, "epochs": 6,
        "input_size": SIZE, "cache_root": out.parent / "cache", "jobs": 1, "device": "cpu",
    }  # fmt: skip
    return TrainRequest(**{**base, **changes})  # type: ignore[arg-type]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(run / LAST, weights_only=False)["state_dict"]
    return state


def _same_run(a: Path, b: Path) -> None:
    assert (a / METRICS_FILE).read_bytes() == (b / METRICS_FILE).read_bytes()
    for (key, x), y in zip(_weights(a).items(), _weights(b).values(), strict=True):
        assert torch.equal(x, y), key


def test_the_loss_falls_a_resumed_run_is_the_same_and_loader_workers_change_nothing(
    occlusion_data: tuple[Path, Path], tmp_path: Path
) -> None:
    straight = train(_request(occlusion_data, tmp_path / "straight"))
    losses = [float(line.split(",")[1]) for line in (straight / METRICS_FILE).read_text().splitlines()[1:]]
    assert losses[-1] < losses[0], losses

    def killed_after_three(row: dict[str, float | int]) -> None:
        if row["epoch"] == 3:
            raise KeyboardInterrupt  # as a kill -9 would: the epoch's checkpoint is already on disk

    interrupted = _request(occlusion_data, tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, on_epoch=killed_after_three)
    assert len((tmp_path / "resumed" / METRICS_FILE).read_text().splitlines()) == 4  # header and 3 epochs
    with pytest.raises(Exception, match="--resume"):
        train(interrupted)
    train(_request(occlusion_data, tmp_path / "resumed", resume=True))
    _same_run(straight, tmp_path / "resumed")
    workers = train(_request(occlusion_data, tmp_path / "workers", loader_workers=2))
    _same_run(straight, workers)


def test_the_cache_is_reused_until_an_input_changes(
    occlusion_data: tuple[Path, Path], tmp_path: Path
) -> None:
    dataset = load_dataset(occlusion_data[0])
    manifests = list(dataset)[:3]
    spec = CacheSpec((Modality.CBF, Modality.TMAX), SIZE, "occlusion")
    first = build_cache(dataset.root, manifests, spec, cache_root=tmp_path, jobs=1)
    assert first.made == 3 and np.load(first.arrays[manifests[0].patient_id]).shape == (2, *SIZE)
    assert build_cache(dataset.root, manifests, spec, cache_root=tmp_path, jobs=1).made == 0
    image = dataset.image_path(manifests[1].patient_id, Modality.TMAX)
    copy = Path(shutil.copytree(dataset.root, tmp_path / "copy"))
    os.utime(copy / image.relative_to(dataset.root), (1, 1))  # touched, not changed
    assert build_cache(copy, manifests, spec, cache_root=tmp_path, jobs=1).made == 3  # another dataset root
    assert build_cache(copy, manifests, spec, cache_root=tmp_path, jobs=1).made == 0
    os.utime(copy / image.relative_to(dataset.root), (2, 2))
    assert build_cache(copy, manifests, spec, cache_root=tmp_path, jobs=1).made == 0  # same content
    changed = copy / image.relative_to(dataset.root)
    import nibabel as nib

    loaded = nib.load(changed)
    nib.save(nib.Nifti1Image(np.asarray(loaded.dataobj) * 0.5, loaded.affine, loaded.header), changed)
    again = build_cache(copy, manifests, spec, cache_root=tmp_path, jobs=1)
    assert again.made == 1


def test_fold_ensembles_and_rules_are_predicted_and_scored(
    occlusion_data: tuple[Path, Path], tmp_path: Path
) -> None:
    pre, split = occlusion_data
    common = [
        "--task",
        "occlusion",
        "--dataset",
        str(pre),
        "--split",
        str(split),
        "--cache",
        str(tmp_path / "cache"),
    ]
    folds = tmp_path / "runs" / "cbam3d"
    result = runner.invoke(
        app,
        [
            "train",
            *common,
            "--model",
            "cbam3d",
            "--all-folds",
            "--epochs",
            "2",
            "--input-size",
            "16,16,8",
            "--out",
            str(folds),
            "--device",
            "cpu",
            "-j",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folds.iterdir()) == ["fold0", "fold1"]
    for model in ("tmax-territory", "majority-occlusion"):
        result = runner.invoke(
            app, ["train", *common, "--model", model, "--fold", "0", "--out", str(tmp_path / "runs" / model)]
        )
        assert result.exit_code == 0, result.output
    test = [
        "--dataset",
        str(pre),
        "--split",
        str(split),
        "--partition",
        "test",
        "--cache",
        str(tmp_path / "cache"),
    ]
    for runs, out in (
        (["--run", str(folds)], "ensemble.csv"),
        (["--run", str(tmp_path / "runs" / "tmax-territory")], "rule.csv"),
    ):
        result = runner.invoke(app, ["predict", *runs, *test, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        scored = runner.invoke(
            app,
            [
                "score",
                str(tmp_path / out),
                "--task",
                "occlusion",
                "--dataset",
                str(pre),
                "--split",
                str(split),
                "--partition",
                "test",
                "--bootstrap",
                "20",
            ],
        )
        assert scored.exit_code == 0, scored.output
    assert (
        "2 run(s), vote ensemble"
        in runner.invoke(
            app, ["predict", "--run", str(folds), *test, "--out", str(tmp_path / "again.csv")]
        ).output
    )
    mixed = runner.invoke(
        app,
        [
            "predict",
            "--run",
            str(folds / "fold0"),
            "--run",
            str(tmp_path / "runs" / "tmax-territory"),
            *test,
            "--out",
            str(tmp_path / "mixed.csv"),
        ],
    )
    assert mixed.exit_code == 2 and "cannot join an ensemble" in mixed.output


def test_bad_requests_get_a_message_and_exit_2(occlusion_data: tuple[Path, Path], tmp_path: Path) -> None:
    pre, split = occlusion_data
    common = ["--dataset", str(pre), "--split", str(split), "--fold", "0", "--out", str(tmp_path / "run")]
    unknown = runner.invoke(app, ["train", "--task", "occlusion", "--model", "cbam", *common])
    assert unknown.exit_code == 2 and "did you mean cbam3d" in unknown.output
    other_task = runner.invoke(app, ["train", "--task", "core", "--model", "cbam3d", *common])
    assert other_task.exit_code == 2 and "is a occlusion model, not a core one" in other_task.output
    stranger = build_dataset(tmp_path / "other", n_patients=4)
    for folder in sorted(p for p in stranger.iterdir() if p.is_dir()):
        folder.rename(stranger / f"x{folder.name}")
        manifest = stranger / f"x{folder.name}" / "patient.json"
        manifest.write_text(manifest.read_text().replace(f'"{folder.name}"', f'"x{folder.name}"'))
    other_split, _ = make_split(stranger, ["mtici"], test_size=0.25, folds=2, seed=0, jobs=1)
    write_split(other_split, tmp_path / "other.json")
    foreign = runner.invoke(
        app,
        [
            "train",
            "--task",
            "occlusion",
            "--model",
            "cbam3d",
            "--dataset",
            str(pre),
            "--split",
            str(tmp_path / "other.json"),
            "--fold",
            "0",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert foreign.exit_code == 2 and "made for another dataset" in foreign.output
    run = tmp_path / "rule"
    assert (
        runner.invoke(
            app,
            [
                "train",
                "--task",
                "occlusion",
                "--model",
                "majority-occlusion",
                *common[:-2],
                "--out",
                str(run),
            ],
        ).exit_code
        == 0
    )
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "tool_version": "0.0.1"}))
    old = runner.invoke(
        app, ["predict", "--run", str(run), "--dataset", str(pre), "--out", str(tmp_path / "p.csv")]
    )
    assert old.exit_code == 2 and "trained by strokebench 0.0.1" in old.output
    raw = pre.parent / "raw"
    unprocessed = runner.invoke(
        app,
        [
            "train",
            "--task",
            "occlusion",
            "--model",
            "cbam3d",
            "--dataset",
            str(raw),
            "--split",
            str(split),
            "--fold",
            "0",
            "--out",
            str(tmp_path / "raw-run"),
        ],
    )
    assert unprocessed.exit_code == 2 and "strokedata preprocess" in unprocessed.output
