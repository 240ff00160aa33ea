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
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from cli.strokebench_app import app
from strokedata import load_dataset
from strokedata.manifest import Modality
from strokedata.preprocess import preprocess_dataset
from strokedata.splits import make_split, write_split
from strokemodels.training.cache import CacheSpec, build_cache
from strokemodels.training.outputs import Output, _probabilities, combine
from strokemodels.training.run import BEST, LAST, METRICS_FILE, read_record
from strokemodels.training.train import TrainRequest, train
from tests.builders import build_dataset

runner = CliRunner()
SIZE = (16, 16, 8)


@pytest.fixture(scope="module")
def occlusion_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Twelve tiny patients (three of each site, three without a label) through the occlusion pipeline
    (registration off: seconds, not minutes), and a split of the raw dataset with a test set and two
    folds."""
    folder = tmp_path_factory.mktemp("zoo")
    raw = build_dataset(folder / "raw", n_patients=12)
    split, _ = make_split(raw, ["occlusion"], test_size=0.25, folds=2, seed=0, missing="exclude", jobs=1)
    write_split(split, folder / "split.json")  # made on the raw dataset: it fits the preprocessed one
    pre = folder / "pre"
    assert preprocess_dataset(raw, "occlusion", pre, parameters={"registration": None}, jobs=1).ok
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


def _same_best(a: Path, b: Path) -> None:
    """best.pt of both runs holds the same epoch and weights, and run.json says which."""
    first, second = (torch.load(run / BEST, weights_only=True) for run in (a, b))
    assert first["epoch"] == second["epoch"] == read_record(b).best_epoch
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key


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
    _same_best(straight, tmp_path / "resumed")
    workers = train(_request(occlusion_data, tmp_path / "workers", loader_workers=2))
    _same_run(straight, workers)


def test_an_interruption_between_the_two_checkpoints_is_repaired_on_resume(
    occlusion_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = train(_request(occlusion_data, tmp_path / "straight", epochs=1))
    from strokemodels.training import networks

    writes = networks.atomic_write_bytes

    def killed_before_best(path: Path, data: bytes) -> None:
        if path.name == BEST:  # epoch 1 is always the best so far: killed after last.pt, before best.pt
            raise KeyboardInterrupt
        writes(path, data)

    monkeypatch.setattr(networks, "atomic_write_bytes", killed_before_best)
    with pytest.raises(KeyboardInterrupt):
        train(_request(occlusion_data, tmp_path / "cut", epochs=1))
    monkeypatch.setattr(networks, "atomic_write_bytes", writes)
    assert (tmp_path / "cut" / LAST).is_file() and not (tmp_path / "cut" / BEST).exists()
    train(_request(occlusion_data, tmp_path / "cut", epochs=1, resume=True))  # nothing left but the repair
    _same_run(straight, tmp_path / "cut")
    _same_best(straight, tmp_path / "cut")


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


def _invoke(*words: object) -> Result:
    """Return the result of ``strokebench`` with ``words`` (paths and numbers as text)."""
    return runner.invoke(app, [str(word) for word in words])


def test_fold_ensembles_and_rules_are_predicted_and_scored(
    occlusion_data: tuple[Path, Path], tmp_path: Path
) -> None:
    pre, split = occlusion_data
    data = ["--dataset", pre, "--split", split]
    common = ["--task", "occlusion", *data, "--cache", tmp_path / "cache"]
    folds = tmp_path / "runs" / "cbam3d"
    network = ["--model", "cbam3d", "--all-folds", "--epochs", 2, "--input-size", "16,16,8", "--out", folds]
    result = _invoke("train", *common, *network, "--device", "cpu", "-j", 1)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folds.iterdir()) == ["fold0", "fold1"]
    for model in ("tmax-territory", "majority-occlusion"):
        result = _invoke("train", *common, "--model", model, "--fold", 0, "--out", tmp_path / "runs" / model)
        assert result.exit_code == 0, result.output
    test = [*data, "--partition", "test", "--cache", tmp_path / "cache"]
    for run, out in ((folds, "ensemble.csv"), (tmp_path / "runs" / "tmax-territory", "rule.csv")):
        result = _invoke("predict", "--run", run, *test, "--out", tmp_path / out)
        assert result.exit_code == 0, result.output
        scored = _invoke(
            "score", tmp_path / out, "--task", "occlusion", *data, "--partition", "test", "--bootstrap", 20
        )
        assert scored.exit_code == 0, scored.output
    again = _invoke("predict", "--run", folds, *test, "--out", tmp_path / "again.csv")
    assert "2 run(s), vote ensemble" in again.output
    rule = tmp_path / "runs" / "tmax-territory"
    mixed = _invoke(
        "predict", "--run", folds / "fold0", "--run", rule, *test, "--out", tmp_path / "mixed.csv"
    )
    assert mixed.exit_code == 2 and "cannot join an ensemble" in mixed.output
    damaged = Path(shutil.copytree(folds / "fold0", tmp_path / "damaged"))
    (damaged / BEST).write_bytes(b"not a checkpoint")
    result = _invoke("predict", "--run", damaged, *test, "--out", tmp_path / "d.csv")
    assert result.exit_code == 2 and "cannot be read as a checkpoint" in result.output
    broken = Path(shutil.copytree(rule, tmp_path / "damaged-rule"))
    for text in ("[1, 2]", '{"model": "tmax-territory", "state": {"aca": 1}}'):
        (broken / "rule.json").write_text(text)
        result = _invoke("predict", "--run", broken, *test, "--out", tmp_path / "r.csv")
        assert result.exit_code == 2 and "rule.json" in result.output, result.output
    seen = _invoke("predict", "--run", folds, "--dataset", pre, "--out", tmp_path / "all.csv")
    assert seen.exit_code == 0 and "training or validation partition" in seen.output


def test_vote_probabilities_agree_with_the_vote_after_rounding() -> None:
    members = [Output(np.array(p)) for p in ([0.4, 0.45, 0.15], [0.4, 0.45, 0.15], [0.6, 0.3, 0.1])]
    voted = combine("occlusion", members, "vote")
    assert int(np.argmax(voted.values)) == 1  # M1 has two votes though ICA-T has the higher mean
    rounded = _probabilities(voted.values)
    assert int(np.argmax(rounded)) == 1 and rounded[1] > rounded[0] and round(float(rounded.sum()), 6) == 1


def test_bad_requests_get_a_message_and_exit_2(occlusion_data: tuple[Path, Path], tmp_path: Path) -> None:
    pre, split = occlusion_data
    data = ["--dataset", pre, "--split", split, "--fold", 0]
    occlusion = ["train", "--task", "occlusion", "--model"]
    unknown = _invoke(*occlusion, "cbam", *data, "--out", tmp_path / "run")
    assert unknown.exit_code == 2 and "did you mean cbam3d" in unknown.output
    other_task = _invoke("train", "--task", "core", "--model", "cbam3d", *data, "--out", tmp_path / "run")
    assert other_task.exit_code == 2 and "is a occlusion model, not a core one" in other_task.output
    stranger = build_dataset(tmp_path / "other", n_patients=4)
    for folder in sorted(p for p in stranger.iterdir() if p.is_dir()):
        folder.rename(stranger / f"x{folder.name}")
        manifest = stranger / f"x{folder.name}" / "patient.json"
        manifest.write_text(manifest.read_text().replace(f'"{folder.name}"', f'"x{folder.name}"'))
    other_split, _ = make_split(stranger, ["mtici"], test_size=0.25, folds=2, seed=0, jobs=1)
    write_split(other_split, tmp_path / "other.json")
    foreign = _invoke(*occlusion, "cbam3d", "--dataset", pre, "--split", tmp_path / "other.json", "--fold", 0)
    assert foreign.exit_code == 2 and "made for another dataset" in foreign.output
    run = tmp_path / "rule"
    assert _invoke(*occlusion, "majority-occlusion", *data, "--out", run).exit_code == 0
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "tool_version": "0.0.1"}))
    old = _invoke("predict", "--run", run, "--dataset", pre, "--out", tmp_path / "p.csv")
    assert old.exit_code == 2 and "trained by strokebench 0.0.1" in old.output
    resumed = _invoke(*occlusion, "majority-occlusion", *data, "--out", run, "--resume")
    assert resumed.exit_code == 2 and "trained by strokebench 0.0.1" in resumed.output
    raw = _invoke(*occlusion, "cbam3d", "--dataset", pre.parent / "raw", *data[2:], "--out", tmp_path / "raw")
    assert raw.exit_code == 2 and "strokedata preprocess" in raw.output
    zero = _invoke(*occlusion, "cbam3d", *data, "--out", tmp_path / "run", "--lr", 0)
    assert zero.exit_code == 2 and "learning rate must be above 0" in zero.output


def test_a_split_of_another_dataset_with_the_same_ids_is_refused(
    occlusion_data: tuple[Path, Path], tmp_path: Path
) -> None:
    pre, split = occlusion_data
    twin = Path(shutil.copytree(pre.parent / "raw", tmp_path / "twin"))
    manifest = twin / "p000" / "patient.json"
    manifest.write_text(manifest.read_text().replace('"site": "', '"site": "other-'))  # same ids, other data
    twin_split, _ = make_split(
        twin, ["occlusion"], test_size=0.25, folds=2, seed=0, missing="exclude", jobs=1
    )
    write_split(twin_split, tmp_path / "twin.json")
    for command in (
        [
            "train",
            "--task",
            "occlusion",
            "--model",
            "majority-occlusion",
            "--fold",
            "0",
            "--out",
            str(tmp_path / "r"),
        ],
        ["predict", "--run", str(tmp_path / "r"), "--partition", "test", "--out", str(tmp_path / "p.csv")],
    ):
        if command[0] == "predict":  # a run to predict with, trained on the right split
            base = ["--task", "occlusion", "--model", "majority-occlusion", "--dataset", str(pre)]
            ok = runner.invoke(
                app, ["train", *base, "--split", str(split), "--fold", "0", "--out", str(tmp_path / "r")]
            )
            assert ok.exit_code == 0, ok.output
        result = runner.invoke(app, [*command, "--dataset", str(pre), "--split", str(tmp_path / "twin.json")])
        assert result.exit_code == 2 and "was made on another dataset than" in result.output, result.output


def test_a_patient_without_an_input_image_is_named(occlusion_data: tuple[Path, Path], tmp_path: Path) -> None:
    pre, split = occlusion_data
    copy = Path(shutil.copytree(pre, tmp_path / "copy"))
    chosen = json.loads(split.read_text())["folds"][0]["train"][0]
    manifest = load_dataset(copy).patients[chosen]
    kept = {m: path for m, path in manifest.images.items() if m != Modality.TMAX}
    (copy / chosen / "patient.json").write_text(
        manifest.model_copy(update={"images": kept}).model_dump_json()
    )
    (copy / chosen / manifest.images[Modality.TMAX]).unlink()
    command = ["train", "--task", "occlusion", "--model", "tmax-territory", "--dataset", str(copy)]
    result = runner.invoke(
        app, [*command, "--split", str(split), "--fold", "0", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and chosen in result.output and "TMAX" in result.output, result.output


def test_a_binary_network_trains_with_weighted_bce_and_is_scored(
    occlusion_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recanalization network (one logit) trains with the positive class weighted, predicts and is
    scored: the binary path of the machinery, on a network small enough for the suite."""
    from strokemodels import registry
    from strokemodels.spec import ModelSpec, Recipe

    registry.list_models()  # the built-in models are loaded before the registry is swapped
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = ModelSpec(
        name="test-binary", task="recanalization", kind="learned", summary="mean CBF through a linear layer",
        inputs=[Modality.CBF], pipeline="none", input_shape=(1, 8, 8, 4), parameters=2, citation="a test",
        recipe=Recipe(epochs=2, batch_size=2, loss="weighted-bce", augment=[], class_weight_mu=1.0),
    )  # fmt: skip

    @registry.register_model(spec)
    def build(spec: ModelSpec, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(1, 1))

    raw, split = occlusion_data[0].parent / "raw", occlusion_data[1]
    data = ["--dataset", str(raw), "--split", str(split)]
    common = ["--task", "recanalization", "--model", "test-binary", *data, "--cache", str(tmp_path / "c")]
    trained = runner.invoke(app, ["train", *common, "--fold", "0", "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    rows = (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    assert rows[0].split(",")[3:] == [
        f"val_{m}" for m in ("roc_auc", "accuracy", "precision", "sensitivity", "specificity")
    ]
    assert all(np.isfinite(float(row.split(",")[1])) for row in rows[1:])
    test = [*data, "--partition", "test"]
    out = tmp_path / "binary.csv"
    predicted = runner.invoke(app, ["predict", "--run", str(tmp_path / "run"), *test, "--out", str(out)])
    assert predicted.exit_code == 0, predicted.output
    scored = runner.invoke(app, ["score", str(out), "--task", "recanalization", *test, "--bootstrap", "10"])
    assert scored.exit_code == 0, scored.output


def test_threaded_batches_are_the_loaders_batches(tmp_path: Path) -> None:
    """The GPU's threaded reader yields the DataLoader's batches, in the sampler's order, the last
    partial batch dropped or kept alike."""
    from torch.utils.data import DataLoader

    from strokemodels.training.inputs import CachedInputs, EpochShuffle, ThreadedBatches

    paths = []
    for index in range(7):
        paths.append(tmp_path / f"{index}.npy")
        np.save(paths[-1], np.random.default_rng(index).random((2, 4, 4, 3), dtype=np.float32))
    dataset = CachedInputs(paths, [index % 3 for index in range(7)])
    for drop in (True, False):
        sampler = EpochShuffle(7, seed=5)
        sampler.set_epoch(2)
        expected = list(DataLoader(dataset, 3, sampler=sampler, drop_last=drop))
        found = list(ThreadedBatches(dataset, 3, sampler=sampler, drop_last=drop, threads=3, ahead=2))
        assert len(found) == len(expected) == (2 if drop else 3)
        for (a, la, ia), (b, lb, ib) in zip(expected, found, strict=True):
            assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(ia, ib)
    from strokemodels.training.cache import label_path
    from strokemodels.training.slices import SliceInputs

    for path in paths:  # slice samples: (C, X, Y) slices with a label tensor each
        np.save(label_path(path), np.random.default_rng(1).integers(0, 2, (2, 15)).astype(np.uint8))
    slices = SliceInputs(paths)
    expected = list(DataLoader(slices, 4))
    found = list(ThreadedBatches(slices, 4, threads=2))
    for (a, la, ia), (b, lb, ib) in zip(expected, found, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(ia, ib)


def test_inputs_on_different_grids_are_cached_on_the_first_ones() -> None:
    """An NCCT of few thick slices and a CTA of many thin ones (both registered to the template) meet on
    the NCCT's grid before the cache resizes them: a constant CTA stays constant there."""
    import torchio as tio

    from strokemodels.training.cache import on_one_grid

    ncct = tio.ScalarImage(tensor=torch.rand(1, 8, 8, 4), affine=np.diag([2.0, 2.0, 5.0, 1.0]))
    cta = tio.ScalarImage(tensor=torch.full((1, 16, 16, 40), 7.0), affine=np.diag([1.0, 1.0, 0.5, 1.0]))
    subject = on_one_grid(tio.Subject(NCCT=ncct, CTA=cta), ["NCCT", "CTA"])
    assert subject["CTA"].spatial_shape == (8, 8, 4)
    assert np.allclose(subject["CTA"].affine, ncct.affine)
    assert torch.equal(subject["NCCT"].data, ncct.data)
    inside = subject["CTA"].data[0, 1:-1, 1:-1, 1:-1]
    assert torch.allclose(inside, torch.full_like(inside, 7.0))


@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 2), min_size=1, max_size=3),
    st.sampled_from([(9, 7), (16, 16), (5, 11)]),
)
@settings(max_examples=20, deadline=None)
def test_slice_stack_gives_the_bytes_of_resizing_all_channels_at_once(
    seed: int, channels: list[int], size: tuple[int, int]
) -> None:
    """One volume at a time (int16 HU or float32) makes the same (Z, C, *size) float32 slices as stacking
    every channel first and resizing them together."""
    import torch.nn.functional as F

    from strokemodels.training.cache import slice_stack

    rng = np.random.default_rng(seed)
    volumes = [rng.integers(-1000, 2000, (count, 16, 16, 6)).astype(np.int16) for count in channels]
    volumes[0] = volumes[0].astype(np.float32) / 7
    joint = torch.cat([torch.as_tensor(v, dtype=torch.float32) for v in volumes]).permute(3, 0, 1, 2)
    if size != (16, 16):
        joint = F.interpolate(joint, size=size, mode="bilinear", align_corners=False)
    found = slice_stack(iter(volumes), size)
    assert found.dtype == np.float32 and found.flags.c_contiguous
    assert found.shape == (6, sum(channels), *size)
    assert np.array_equal(found, joint.numpy())
