"""The dataset as a table and as TorchIO subjects: derived labels against the phantoms' truth, geometry
against the headers, laziness, partitions, and refusals."""

from __future__ import annotations

import doctest
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torchio as tio
from typer.testing import CliRunner

import strokedata.labels
from cli.strokedata_app import app
from strokedata.labels import core_volume_ml, occlusion_class_index, patient_regions
from strokedata.manifest import LABEL_MAPS, Modality, PatientManifest
from strokedata.phantoms import generate_dataset, preset
from strokedata.splits import make_split, write_split
from strokedata.subjects import SubjectsError, read_image, subject_dicts, subjects, subjects_dataset
from strokedata.table import FIXED_COLUMNS, REGION_COLUMNS, TableError, dataset_table, table_bytes
from tests.builders import tree_digest

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("cohort") / "data", 6, preset("tiny"), seed=3, jobs=1)


def _manifests(root: Path) -> dict[str, PatientManifest]:
    return {
        p.name: PatientManifest.model_validate_json((p / "patient.json").read_text())
        for p in sorted(root.iterdir())
        if p.is_dir()
    }


def test_the_label_doctests_hold() -> None:
    assert doctest.testmod(strokedata.labels).failed == 0


def test_derived_labels_in_the_table_equal_the_phantoms_truth(cohort: Path) -> None:
    before = tree_digest(cohort)
    table = dataset_table(cohort, jobs=1)
    manifests = _manifests(cohort)
    assert (
        table["patient_id"].tolist() == sorted(manifests)
        and list(table.columns[: len(FIXED_COLUMNS)]) == FIXED_COLUMNS
    )
    for row in table.to_dict("records"):
        manifest = manifests[row["patient_id"]]
        folder = cohort / row["patient_id"]
        assert row["occlusion_class"] == ["ICA-T", "M1", "M2"].index(manifest.labels.occlusion_location)
        assert [row[c] for c in REGION_COLUMNS] == patient_regions(folder, manifest)
        core = nib.load(folder / manifest.images[Modality.CORE])
        voxels = int(np.count_nonzero(np.asarray(core.dataobj)))
        assert row["core_volume_ml"] == pytest.approx(
            voxels * np.prod(core.header.get_zooms()[:3]) / 1000, rel=1e-6
        )
        assert row["occlusion_side_tmax"] == manifest.labels.occlusion_side and row["side_agrees"] is True
        assert row["favourable_recanalization"] == (manifest.labels.mtici in ("2c", "3"))
        cta = nib.load(folder / manifest.images[Modality.CTA])
        assert row["CTA_shape"] == "x".join(str(n) for n in cta.shape)
        assert [float(v) for v in row["CTA_spacing_mm"].split("x")] == pytest.approx(
            cta.header.get_zooms()[:3], rel=1e-3
        )
        assert row["clinical_age"] == manifest.clinical["age"]
    assert tree_digest(cohort) == before  # reading the dataset never writes into it


def test_the_table_is_the_same_bytes_whatever_the_worker_count(cohort: Path) -> None:
    serial = table_bytes(dataset_table(cohort, jobs=1), ".csv")
    parallel = table_bytes(dataset_table(cohort, jobs=2), ".csv")
    assert serial == parallel
    back = pd.read_csv(io.BytesIO(serial))
    assert len(back) == 6 and back["patient_id"].is_monotonic_increasing
    parquet = pd.read_parquet(io.BytesIO(table_bytes(dataset_table(cohort, jobs=1), ".parquet")))
    assert parquet["core_volume_ml"].tolist() == pytest.approx(back["core_volume_ml"].tolist())


def test_the_hemisphere_rule_can_disagree_and_the_table_says_so(cohort: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    import shutil

    shutil.copytree(cohort, copy)
    manifest_path = copy / "p00000" / "patient.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["labels"]["occlusion_side"] = "R" if manifest["labels"]["occlusion_side"] == "L" else "L"
    manifest_path.write_text(json.dumps(manifest))
    table = dataset_table(copy, jobs=1)
    assert table.loc[0, "side_agrees"] == False  # noqa: E712 (pandas boolean)
    result = runner.invoke(app, ["table", str(copy)])
    assert result.exit_code == 0 and "disagrees" in result.output and "p00000" in result.output


def test_table_command_writes_csv_outside_the_dataset_only(cohort: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["table", str(cohort), "--out", str(tmp_path / "t.csv"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "t.csv").shape[0] == 6
    inside = runner.invoke(app, ["table", str(cohort), "--out", str(cohort / "t.csv")])
    assert inside.exit_code == 2 and not (cohort / "t.csv").exists()
    wrong = runner.invoke(app, ["table", str(cohort), "--out", str(tmp_path / "t.xlsx")])
    assert wrong.exit_code == 2


def test_an_unreadable_image_names_the_patient(cohort: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(cohort, copy)
    (copy / "p00002" / "core.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(TableError, match="p00002"):
        dataset_table(copy, jobs=1)
    result = runner.invoke(app, ["table", str(copy)])
    assert result.exit_code == 2 and "p00002" in result.output and "Traceback" not in result.output


def test_subjects_are_lazy_typed_and_carry_the_labels(cohort: Path) -> None:
    found = subjects(cohort)
    manifests = _manifests(cohort)
    assert [s["patient_id"] for s in found] == sorted(manifests)
    first = found[0]
    manifest = manifests[first["patient_id"]]
    for modality in manifest.images:
        image = first[modality.value]
        assert isinstance(image, tio.LabelMap if modality in LABEL_MAPS else tio.ScalarImage)
        assert not image._loaded  # nothing read yet
    assert first["occlusion_class"] == occlusion_class_index(manifest.labels.occlusion_location)
    header = nib.load(cohort / first["patient_id"] / manifest.images[Modality.CBF])
    assert tuple(first["CBF"].shape[1:]) == header.shape
    dataset = subjects_dataset(
        cohort, modalities=[Modality.CBF, Modality.CORE], transform=tio.RescaleIntensity()
    )
    loaded = dataset[0]
    assert set(loaded.get_images_names()) == {"CBF", "CORE"} and float(
        loaded["CBF"].data.max()
    ) == pytest.approx(1.0)


def test_subjects_of_a_partition_and_plain_dicts(cohort: Path, tmp_path: Path) -> None:
    split, _ = make_split(cohort, ["occlusion"], test_size=0.34, folds=None, val_size=0.2, seed=0, jobs=1)
    write_split(split, tmp_path / "split.json")
    test = subjects(cohort, split=tmp_path / "split.json", partition="test")
    assert [s["patient_id"] for s in test] == sorted(split.test)
    dicts = subject_dicts(cohort, split=tmp_path / "split.json", partition="test", modalities=[Modality.TMAX])
    assert [d["patient_id"] for d in dicts] == sorted(split.test)
    assert all(Path(d["TMAX"]).is_absolute() and Path(d["TMAX"]).is_file() and "CBF" not in d for d in dicts)


def test_patients_lacking_a_requested_modality_are_listed(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "data", 2, preset("tiny", modalities=["CBF", "CORE"]), seed=0, jobs=1)  # type: ignore[list-item]
    with pytest.raises(SubjectsError, match=r"2 patient\(s\) lack requested modalities: p00000 \(CTA\)"):
        subjects(root, modalities=[Modality.CBF, Modality.CTA])


def test_core_volume_is_voxels_times_voxel_volume() -> None:
    core = np.zeros((4, 4, 4))
    core[:2, :2, :2] = 1
    assert core_volume_ml(core, np.diag([0.5, 0.5, 4.0, 1.0])) == pytest.approx(8 * 1.0 / 1000)
    rotated = np.array([[0.0, -2.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0], [0, 0, 0, 1]])
    assert core_volume_ml(core, rotated) == pytest.approx(8 * 12 / 1000)


def test_read_image_gives_channels_first_scaled_voxels_of_the_named_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stored = rng.integers(-100, 100, (5, 4, 3)).astype(np.int16)
    image = nib.Nifti1Image(stored, np.diag([2.0, 2.0, 3.0, 1.0]))
    image.header.set_slope_inter(0.5, 10.0)
    nib.save(image, tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.int16), np.eye(4)), tmp_path / "ct.nii")  # a sibling
    data, affine = read_image(tmp_path / "ct.nii.gz")
    assert data.shape == (1, 5, 4, 3) and data.flags.writeable
    np.testing.assert_allclose(data[0], stored * 0.5 + 10.0)
    np.testing.assert_array_equal(affine, np.diag([2.0, 2.0, 3.0, 1.0]))
    series = rng.random((5, 4, 3, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(series, np.eye(4)), tmp_path / "ctp.nii")
    nib.save(nib.Nifti1Image(series[:, :, :, None, :], np.eye(4)), tmp_path / "ctp5d.nii")
    for name in ("ctp.nii", "ctp5d.nii"):
        data, _ = read_image(tmp_path / name)
        np.testing.assert_array_equal(data, np.moveaxis(series, -1, 0))
    loaded = tio.ScalarImage(tmp_path / "ctp5d.nii", reader=read_image)
    assert loaded.shape == (7, 5, 4, 3)
