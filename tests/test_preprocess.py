"""`strokedata preprocess`: every pipeline's output validates, records its provenance, is skipped when
up to date, is redone when an input or a parameter changes, never half-written, and leaves the input
untouched; a failing patient is reported while the others go on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.strokedata_app import app
from strokedata import __version__, load_dataset, validate
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.labels import occluded_side_from_tmax, regions_from_clot
from strokedata.manifest import PATIENT_MANIFEST, PatientManifest
from strokedata.phantoms import generate_dataset, preset
from strokedata.preprocess import PIPELINES, PreprocessError, preprocess_dataset
from strokedata.preprocess.run import cache_key, file_sha256
from strokedata.splits import dataset_hash
from tests.builders import tree_digest

runner = CliRunner()
N_PATIENTS = 2  # seed 3 gives one left and one right occlusion: enough, and registration is the cost


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny phantom patients with every modality, one occlusion on each side; never modified."""
    root = generate_dataset(tmp_path_factory.mktemp("pre") / "in", N_PATIENTS, preset("tiny"), seed=3, jobs=1)
    sides = {m.labels.occlusion_side for m in load_dataset(root)}
    assert sides == {"L", "R"}, "the fixture must hold both sides"
    return root


@pytest.fixture(scope="module")
def outputs(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every pipeline run once over the phantoms, serially."""
    before = tree_digest(phantoms)
    out = {}
    for name in PIPELINES:
        target = tmp_path_factory.mktemp(name) / "out"
        report = preprocess_dataset(phantoms, name, target, jobs=1)
        assert report.ok, report.failed
        assert report.ids("written") == sorted(load_dataset(phantoms).ids)
        out[name] = target
    assert tree_digest(phantoms) == before, "preprocessing wrote into its input"
    return out


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_output_validates_with_no_finding(outputs: dict[str, Path], name: str) -> None:
    report = validate(outputs[name], jobs=1)
    assert [(f.code, f.patient_id, f.message) for f in report.findings] == []


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_provenance_names_pipeline_parameters_version_and_input_hashes(
    phantoms: Path, outputs: dict[str, Path], name: str
) -> None:
    pipeline = PIPELINES[name]
    defaults = pipeline.params().model_dump(mode="json")
    for manifest in load_dataset(outputs[name]):
        done = manifest.provenance.preprocessing
        assert done is not None
        assert (done.pipeline, done.tool_version, done.parameters) == (name, __version__, defaults)
        source = PatientManifest.model_validate_json(
            (phantoms / manifest.patient_id / PATIENT_MANIFEST).read_bytes()
        )
        expected = {f"{manifest.patient_id}/{PATIENT_MANIFEST}"} | {
            f"{manifest.patient_id}/{path}" for m, path in source.images.items() if m in pipeline.reads
        }
        assert set(done.inputs) == expected
        for relative, digest in done.inputs.items():
            assert digest == file_sha256(phantoms / relative)
        assert done.cache_key == cache_key(name, defaults, done.inputs)
        assert [step["transform"] for step in done.steps] == [
            type(t).__name__ for t in pipeline.transform().transforms
        ]
        assert set(manifest.images) <= set(pipeline.writes)
        assert set(pipeline.requires) & set(pipeline.writes) <= set(manifest.images)


def test_occlusion_puts_every_lesion_on_the_canonical_side(phantoms: Path, outputs: dict[str, Path]) -> None:
    out = load_dataset(outputs["occlusion"])
    flipped = 0
    for manifest in out:
        source = load_dataset(phantoms).patients[manifest.patient_id]
        tmax = read_volume(out.image_path(manifest.patient_id, "TMAX"), MAX_VOXELS)  # type: ignore[arg-type]
        assert occluded_side_from_tmax(tmax.data, tmax.header.affine) == "R"
        steps = {step["transform"]: step for step in manifest.provenance.preprocessing.steps}  # type: ignore[union-attr]
        mirrored = steps["MirrorToCanonicalSide"]["arguments"]["flip"]  # type: ignore[index,call-overload]
        flipped += bool(mirrored)
        swapped = {"L": "R", "R": "L"}[source.labels.occlusion_side or "L"]
        assert manifest.labels.occlusion_side == (swapped if mirrored else source.labels.occlusion_side)
        for key in ("CBF", "CBV", "TMAX"):
            volume = read_volume(out.image_path(manifest.patient_id, key), MAX_VOXELS)  # type: ignore[arg-type]
            assert volume.data.dtype == np.float32
            assert volume.data.min() >= 0.0 and volume.data.max() <= 1.0
    assert 0 < flipped < N_PATIENTS


def test_clot_regions_derives_the_region_labels(phantoms: Path, outputs: dict[str, Path]) -> None:
    source = load_dataset(phantoms)
    for manifest in load_dataset(outputs["clot-regions"]):
        clot = read_volume(source.image_path(manifest.patient_id, "CLOT"), MAX_VOXELS).data  # type: ignore[arg-type]
        atlas = read_volume(source.image_path(manifest.patient_id, "ATLAS"), MAX_VOXELS).data  # type: ignore[arg-type]
        assert manifest.labels.regions == [int(v) for v in regions_from_clot(clot, atlas)]


def test_core_resamples_the_series_to_32_frames_over_the_same_duration(
    phantoms: Path, outputs: dict[str, Path]
) -> None:
    source, out = load_dataset(phantoms), load_dataset(outputs["core"])
    for patient in out.ids:
        before = read_volume(source.image_path(patient, "CTP"), MAX_VOXELS).header  # type: ignore[arg-type]
        after = read_volume(out.image_path(patient, "CTP"), MAX_VOXELS).header  # type: ignore[arg-type]
        assert after.shape == (*before.shape[:3], 32)
        duration = before.pixdim[3] * (before.shape[3] - 1)
        assert after.pixdim[3] * 31 == pytest.approx(duration, rel=1e-6)
    loading = PIPELINES["core"].loading()
    assert [type(t).__name__ for t in loading.transforms] == ["AddMirroredChannel"]


def test_rerun_skips_everything_and_changes_no_byte(phantoms: Path, outputs: dict[str, Path]) -> None:
    target = outputs["clot-regions"]
    before = tree_digest(target)
    report = preprocess_dataset(phantoms, "clot-regions", target, jobs=1)
    assert report.ids("skipped") == sorted(load_dataset(phantoms).ids)
    assert tree_digest(target) == before


def test_changed_input_or_parameter_redoes_exactly_what_it_affects(phantoms: Path, tmp_path: Path) -> None:
    source = Path(shutil.copytree(phantoms, tmp_path / "in"))
    out = tmp_path / "out"
    assert preprocess_dataset(source, "core", out, jobs=1).ok
    first = sorted(load_dataset(source).ids)[0]
    manifest_path = source / first / PATIENT_MANIFEST
    data = json.loads(manifest_path.read_text())
    data["clinical"]["age"] = 33
    manifest_path.write_text(json.dumps(data))
    before = load_dataset(out).card.derived_from
    report = preprocess_dataset(source, "core", out, jobs=1)
    assert report.ids("written") == [first]
    assert load_dataset(out).patients[first].clinical["age"] == 33
    after = load_dataset(out).card.derived_from  # a split of the changed input fits, not one of the old
    assert after == [dataset_hash(load_dataset(source))] and before != after
    report = preprocess_dataset(source, "core", out, parameters={"frames": 20}, jobs=1)
    assert report.ids("written") == sorted(load_dataset(source).ids)
    assert read_volume(load_dataset(out).image_path(first, "CTP"), MAX_VOXELS).header.shape[3] == 20  # type: ignore[arg-type]


def test_same_output_bytes_whatever_the_worker_count(phantoms: Path, tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert preprocess_dataset(phantoms, "core", serial, jobs=1).ok
    assert preprocess_dataset(phantoms, "core", parallel, jobs=2).ok
    assert tree_digest(serial) == tree_digest(parallel)


def test_failing_patient_is_reported_and_the_others_written(phantoms: Path, tmp_path: Path) -> None:
    source = Path(shutil.copytree(phantoms, tmp_path / "in"))
    ids = sorted(load_dataset(source).ids)
    broken = load_dataset(source).image_path(ids[1], "CTP")  # type: ignore[arg-type]
    broken.write_bytes(broken.read_bytes()[:400])
    out = tmp_path / "out"
    report = preprocess_dataset(source, "core", out, jobs=1)
    assert [o.patient_id for o in report.failed] == [ids[1]]
    assert load_dataset(out).card.derived_from == []  # incomplete: no split of the input fits it yet
    assert broken.name in report.failed[0].reason
    assert report.ids("written") == [i for i in ids if i != ids[1]]
    assert not (out / ids[1]).exists()
    result = runner.invoke(
        app, ["preprocess", str(source), "--pipeline", "core", "--out", str(out), "-j", "1"]
    )
    assert result.exit_code == 1, result.output
    assert ids[1] in result.output and f"{N_PATIENTS - 1} up to date" in result.output


def test_patient_lacking_a_required_modality_fails_with_the_reason(phantoms: Path, tmp_path: Path) -> None:
    source = Path(shutil.copytree(phantoms, tmp_path / "in"))
    patient = sorted(load_dataset(source).ids)[0]
    manifest_path = source / patient / PATIENT_MANIFEST
    data = json.loads(manifest_path.read_text())
    (source / patient / data["images"].pop("CTP")).unlink()
    manifest_path.write_text(json.dumps(data))
    report = preprocess_dataset(source, "core", tmp_path / "out", jobs=1)
    assert [(o.patient_id, o.reason) for o in report.failed] == [(patient, "lacks CTP, required by 'core'")]


def test_an_interrupted_write_leaves_no_patient_folder(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import strokedata.preprocess.run as run

    out = tmp_path / "out"
    original = run.write_nifti
    calls = []

    def dying(path: Path, *args: object, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run, "write_nifti", dying)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(phantoms, "clot-regions", out, jobs=1)
    assert [entry.name for entry in out.iterdir()] == ["dataset.json"]
    monkeypatch.setattr(run, "write_nifti", original)
    leftover = out / ".p00000.partial-0123"
    leftover.mkdir()
    (leftover / "half.nii").write_bytes(b"x")
    report = preprocess_dataset(phantoms, "clot-regions", out, jobs=1)
    assert report.ok and len(report.ids("written")) == N_PATIENTS
    assert not leftover.exists()
    assert validate(out, jobs=1).valid


def test_bad_requests_are_refused_before_anything_is_written(phantoms: Path, tmp_path: Path) -> None:
    with pytest.raises(PreprocessError, match="frames"):
        preprocess_dataset(phantoms, "core", tmp_path / "a", parameters={"frames": 1})
    with pytest.raises(PreprocessError, match="unknown_name"):
        preprocess_dataset(phantoms, "core", tmp_path / "a", parameters={"unknown_name": 1})
    with pytest.raises(PreprocessError, match="unknown pipeline"):
        preprocess_dataset(phantoms, "segment-everything", tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(PreprocessError, match="inside the input"):
        preprocess_dataset(phantoms, "core", phantoms / "derived")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PreprocessError, match="not empty"):
        preprocess_dataset(phantoms, "core", other)
    used = tmp_path / "used"
    assert preprocess_dataset(phantoms, "clot-regions", used, jobs=1).ok
    with pytest.raises(PreprocessError, match="another dataset"):
        preprocess_dataset(phantoms, "core", used)


def test_cli_lists_pipelines_and_rejects_bad_settings(phantoms: Path, tmp_path: Path) -> None:
    listing = runner.invoke(app, ["pipelines"])
    assert listing.exit_code == 0 and all(name in listing.output for name in PIPELINES)
    one = runner.invoke(app, ["pipelines", "occlusion"])
    assert one.exit_code == 0 and "tmax_range" in one.output and "MirrorToCanonicalSide" in one.output
    bad = runner.invoke(
        app, ["preprocess", str(phantoms), "-p", "core", "--out", str(tmp_path / "o"), "--set", "frames=1"]
    )
    assert bad.exit_code == 2 and "frames" in bad.output
    ok = runner.invoke(
        app,
        [
            "preprocess",
            str(phantoms),
            "-p",
            "core",
            "--out",
            str(tmp_path / "o"),
            "--set",
            "frames=8",
            "-j",
            "1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert f"{N_PATIENTS} written" in ok.output
