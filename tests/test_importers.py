"""Importers: miniature copies of each layout (real names, nesting and quirks) -> canonical datasets that
validate; the source is never written; re-runs rewrite nothing; labels are normalised or reported."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from strokedata import validate
from strokedata.dataset import load_dataset
from strokedata.importers import (
    EXCLUDED_CSV,
    ImporterError,
    ImportOptions,
    LabelNormaliser,
    TableColumns,
    UnknownSpelling,
    import_ami,
    import_isles24,
    import_isles2018,
    import_table,
)
from strokedata.importers.normalise import (
    LOCATION_SPELLINGS,
    MTICI_SPELLINGS,
    SIDE_SPELLINGS,
    clinical_value,
)
from strokedata.io import TRAILING_MARGIN, ImageReadError, read_header, read_volume
from strokedata.labels import patient_regions
from strokedata.manifest import N_REGIONS, DatasetCard, Modality, PatientManifest
from strokedata.splits import make_split
from tests.builders import tree_digest

SHAPE = (12, 12, 4)


def _affine(spacing: float = 1.0, shift: float = 0.0) -> np.ndarray:
    affine = np.diag([spacing, spacing, 2.0, 1.0])
    affine[:3, 3] = [-6.0 + shift, -6.0, -4.0]
    return affine


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    """Write a NIfTI file (.nii or .nii.gz, as the name says) with sform and qform set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = _affine() if affine is None else affine
    image = nib.Nifti1Image(data, affine)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    nib.save(image, path)


def _ct(rng: np.random.Generator, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return rng.normal(40, 10, shape).astype(np.int16)


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Return {path: (mtime_ns, link target or sha256)} of every file and link below root."""
    state = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            content = (
                os.readlink(path) if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
            )
            state[str(path.relative_to(root))] = (path.lstat().st_mtime_ns, content)
    return state


def _manifest(out: Path, patient_id: str) -> PatientManifest:
    return PatientManifest.model_validate_json((out / patient_id / "patient.json").read_bytes())


def _assert_valid(out: Path) -> None:
    report = validate(out, jobs=1)
    errors = [
        f"{f.code} {f.patient_id} {f.file}: {f.message}" for f in report.findings if f.severity == "error"
    ]
    assert errors == []
    assert report.valid


# --- AMI --------------------------------------------------------------------------------------------


def _atlas() -> np.ndarray:
    """Atlas values by row: y in 1..7 -> value y (left), 8..14 on the other half; 0 at the border."""
    atlas = np.zeros(SHAPE, dtype=np.uint8)
    for y in range(1, 8):
        atlas[:6, y, :] = y
        atlas[6:, y, :] = y + 7
    return atlas


def _ami_patient(
    root: Path, name: str, *, gz: bool = False, clot_rows: tuple[int, ...] = (2,), **flags: bool
) -> None:
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    folder = root / name
    suffix = ".nii.gz" if gz else ".nii"
    cta = _ct(rng)
    cta1_shape = (12, 12, 5) if flags.get("cta1_unregistered") else SHAPE
    _save(folder / "CTA1.nii", _ct(rng, cta1_shape))  # always .nii: a mix within the folder
    _save(folder / f"CTA2regA{suffix}", cta)
    _save(folder / f"CTA3regA{suffix}", cta + 7)
    clot = np.zeros(SHAPE, dtype=np.uint8)
    for row in clot_rows:
        clot[2, row, 1] = 1
        clot[3, row, 2] = 2
    _save(folder / f"{name}_clot{suffix}", clot)
    _save(folder / f"ATLASMASKregA{suffix}", _atlas())
    if not flags.get("no_spiral"):
        _save(folder / "SpiralregA.nii", rng.uniform(0, 1, SHAPE).astype(np.float32))
    if flags.get("corrupt_atlas"):
        (folder / f"ATLASMASKregA{suffix}").write_bytes(b"not a nifti file " * 40)


@pytest.fixture(scope="module")
def ami_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ami") / "AMI"
    _ami_patient(root, "379", clot_rows=(2, 5))
    _ami_patient(root, "412", gz=True, clot_rows=(3,), cta1_unregistered=True)
    _ami_patient(root, "500", clot_rows=(), no_spiral=True)
    _ami_patient(root, "613", corrupt_atlas=True)
    (root / "notes").mkdir()
    (root / "notes" / "README.txt").write_text("export notes")
    return root


def test_ami_import_maps_every_file_and_validates(ami_src: Path, tmp_path: Path) -> None:
    before = tree_digest(ami_src)
    out = tmp_path / "ami"
    report = import_ami(ami_src, out)
    assert tree_digest(ami_src) == before
    assert [o.patient_id for o in report.imported] == ["379", "412", "500"]
    (failed,) = report.failed
    assert failed.patient_id == "613" and failed.file == "613/ATLASMASKregA.nii" and "F002" in failed.reason
    assert not report.ok
    manifest = _manifest(out, "379")
    assert manifest.images == {
        Modality.MCTA1: "mcta1.nii",
        Modality.MCTA2: "mcta2.nii",
        Modality.MCTA3: "mcta3.nii",
        Modality.SPIRAL: "spiral.nii",
        Modality.ATLAS: "atlas.nii",
        Modality.CLOT: "clot.nii",
    }
    assert manifest.provenance.original_ids["MCTA1"] == "379/CTA1.nii (unregistered)"
    assert manifest.provenance.original_ids["MCTA2"] == "379/CTA2regA.nii (registered)"
    assert manifest.provenance.source == "AMI mCTA folders (the AMI-Net report)"
    link = out / "379" / "mcta2.nii"
    assert link.is_symlink() and not Path(os.readlink(link)).is_absolute()
    assert link.resolve() == (ami_src / "379" / "CTA2regA.nii").resolve()
    gz = _manifest(out, "412")
    assert Modality.MCTA1 not in gz.images and gz.images[Modality.CLOT] == "clot.nii.gz"
    assert "not imported" in gz.provenance.original_ids["CTA1"]
    assert any(n.patient_id == "412" and "CTA1 grid" in n.message for n in report.notes)
    assert Modality.SPIRAL not in _manifest(out, "500").images
    assert any(n.patient_id is None and "notes/" in n.message for n in report.notes)
    card = DatasetCard.model_validate_json((out / "dataset.json").read_bytes())
    assert card.linked_sources == [os.path.relpath(ami_src.resolve(), out.resolve())]
    _assert_valid(out)


def test_ami_regions_equal_atlas_values_under_the_clot(ami_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "ami"
    import_ami(ami_src, out)
    dataset = load_dataset(out)
    expected = {"379": {2, 5}, "412": {3}, "500": set()}  # the clot rows; x 2 and 3 lie in the left half
    for patient_id, values in expected.items():
        regions = patient_regions(out / patient_id, dataset.patients[patient_id])
        assert regions is not None
        assert {index for index in range(N_REGIONS) if regions[index]} == values


def test_rerun_is_idempotent_and_writes_nothing(ami_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "ami"
    import_ami(ami_src, out)
    before = _snapshot(out)
    again = import_ami(ami_src, out)
    assert [o.changed for o in again.imported] == [False, False, False]
    assert _snapshot(out) == before


def test_changed_source_rewrites_only_that_patient(tmp_path: Path) -> None:
    src = tmp_path / "AMI"
    _ami_patient(src, "1")
    _ami_patient(src, "2")
    out = tmp_path / "out"
    import_ami(src, out, ImportOptions(mode="copy"))
    _save(src / "2" / "SpiralregA.nii", np.full(SHAPE, 0.5, dtype=np.float32))
    report = import_ami(src, out, ImportOptions(mode="copy"))
    assert {o.patient_id: o.changed for o in report.imported} == {"1": False, "2": True}
    assert (out / "2" / "spiral.nii").read_bytes() == (src / "2" / "SpiralregA.nii").read_bytes()


def test_copy_and_hardlink_modes(ami_src: Path, tmp_path: Path) -> None:
    copied = tmp_path / "copied"
    import_ami(ami_src, copied, ImportOptions(mode="copy"))
    target = copied / "379" / "atlas.nii"
    assert not target.is_symlink()
    assert target.read_bytes() == (ami_src / "379" / "ATLASMASKregA.nii").read_bytes()
    assert DatasetCard.model_validate_json((copied / "dataset.json").read_bytes()).linked_sources == []
    _assert_valid(copied)
    linked = tmp_path / "linked"
    import_ami(ami_src, linked, ImportOptions(mode="hardlink"))
    assert os.path.samefile(linked / "379" / "atlas.nii", ami_src / "379" / "ATLASMASKregA.nii")
    assert not (linked / "379" / "atlas.nii").is_symlink()


def test_hardlinks_impossible_is_a_clear_error(
    ami_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    out = tmp_path / "out"
    with pytest.raises(ImporterError, match="--copy"):
        import_ami(ami_src, out, ImportOptions(mode="hardlink"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial folder left


def test_require_excludes_and_lists_the_patients(ami_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "ami"
    report = import_ami(ami_src, out, ImportOptions(require=[Modality.SPIRAL, Modality.MCTA1]))
    assert [(o.patient_id, o.reason) for o in report.excluded] == [
        ("412", "lacks MCTA1 (required)"),
        ("500", "lacks SPIRAL (required)"),
    ]
    assert (out / EXCLUDED_CSV).read_text() == (
        "patient_id,source,reason\n412,412,lacks MCTA1 (required)\n500,500,lacks SPIRAL (required)\n"
    )
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["379"]
    _assert_valid(out)  # excluded.csv in the root is ignored by validate


def test_bad_source_and_output_are_clear_errors(ami_src: Path, tmp_path: Path) -> None:
    with pytest.raises(ImporterError, match="not a folder"):
        import_ami(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ImporterError, match="AMI layout"):
        import_ami(tmp_path, tmp_path / "out")
    with pytest.raises(ImporterError, match="inside the source"):
        import_ami(ami_src, ami_src / "out")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("x")
    with pytest.raises(ImporterError, match="not empty"):
        import_ami(ami_src, busy)


# --- ISLES 2018 -------------------------------------------------------------------------------------


def _isles2018_case(root: Path, split: str, number: int, *, five_d: bool = True, skip: str = "") -> None:
    rng = np.random.default_rng(100 * number + len(split))
    case = root / split / f"case_{number}"
    frames = 4 + number
    series = {
        "CT": _ct(rng, (12, 12, 2)),
        "CT_4DPWI": _ct(rng, (12, 12, 2, 1, frames) if five_d else (12, 12, 2, frames)),
        "CT_CBF": rng.uniform(1, 60, (12, 12, 2)).astype(np.float32),
        "CT_CBV": rng.uniform(1, 5, (12, 12, 2)).astype(np.float32),
        "CT_MTT": rng.uniform(1, 12, (12, 12, 2)).astype(np.float32),
        "CT_Tmax": rng.uniform(0, 15, (12, 12, 2)).astype(np.float32),
    }
    if split == "TRAINING":
        series["OT"] = (rng.uniform(0, 1, (12, 12, 2)) > 0.8).astype(np.uint8)
    for index, (kind, data) in enumerate(series.items()):
        if kind == skip:
            continue
        name = f"SMIR.Brain.XX.O.{kind}.{345000 + 10 * number + index}"
        _save(case / name / f"{name}.nii", data)


@pytest.fixture(scope="module")
def isles2018_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isles2018") / "ISLES2018"
    _isles2018_case(root, "TRAINING", 1)
    _isles2018_case(root, "TRAINING", 2, five_d=False)
    _isles2018_case(root, "TRAINING", 3, skip="CT_CBV")
    _isles2018_case(root, "TRAINING", 4)
    _isles2018_case(root, "TESTING", 1)
    _isles2018_case(root, "TESTING", 2)
    return root


def test_isles2018_import_squeezes_5d_ctp_and_validates(isles2018_src: Path, tmp_path: Path) -> None:
    before = tree_digest(isles2018_src)
    out = tmp_path / "isles"
    report = import_isles2018(isles2018_src, out)
    assert tree_digest(isles2018_src) == before
    assert report.ok and not report.failed
    ids = [o.patient_id for o in report.imported]
    assert ids == [
        "test_case_1",
        "test_case_2",
        "train_case_1",
        "train_case_2",
        "train_case_3",
        "train_case_4",
    ]
    train = _manifest(out, "train_case_1")
    assert train.images == {
        Modality.NCCT: "ncct.nii",
        Modality.CTP: "ctp.nii",
        Modality.CBF: "cbf.nii",
        Modality.CBV: "cbv.nii",
        Modality.MTT: "mtt.nii",
        Modality.TMAX: "tmax.nii",
        Modality.CORE: "core.nii",
    }
    assert train.provenance.original_ids["case"] == "TRAINING/case_1"
    assert train.provenance.original_ids["CTP"] == "SMIR.Brain.XX.O.CT_4DPWI.345011 (5D, squeezed to 4D)"
    squeezed = out / "train_case_1" / "ctp.nii"
    assert not squeezed.is_symlink() and read_header(squeezed).shape == (12, 12, 2, 5)
    source = next((isles2018_src / "TRAINING" / "case_1").glob("SMIR.Brain.XX.O.CT_4DPWI.*/*.nii"))
    original = read_volume(source, 10**8)
    assert np.array_equal(read_volume(squeezed, 10**8).data, original.data[:, :, :, 0, :])
    assert (out / "train_case_2" / "ctp.nii").is_symlink()  # already 4D: linked like the rest
    assert Modality.CORE not in _manifest(out, "test_case_1").images  # no OT in TESTING
    assert Modality.CBV not in _manifest(out, "train_case_3").images
    assert any(n.patient_id == "train_case_3" and "CT_CBV" in n.message for n in report.notes)
    assert not any(n.patient_id and n.patient_id.startswith("test") for n in report.notes)
    _assert_valid(out)
    again = import_isles2018(isles2018_src, out)
    assert not any(o.changed for o in again.imported)


def test_slab_map_groups_slabs_in_one_partition(isles2018_src: Path, tmp_path: Path) -> None:
    slabs = tmp_path / "slabs.csv"
    slabs.write_text("case,patient\nTRAINING/case_1,patient-A\ntrain_case_2,patient-A\nTRAINING/case_9,x\n")
    out = tmp_path / "isles"
    report = import_isles2018(isles2018_src, out, slab_map=slabs)
    groups = {pid: _manifest(out, pid).clinical["scan_group"] for pid in load_dataset(out).ids}
    assert groups["train_case_1"] == groups["train_case_2"] == "patient-A"
    assert groups["train_case_3"] == "train_case_3"
    assert any("TRAINING/case_9" in n.message for n in report.notes)
    for seed in range(4):
        split, _ = make_split(out, [], test_size=0.3, folds=2, group_by="scan_group", seed=seed, jobs=1)
        homes = {name for name, ids in split.partitions().items() if "train_case_1" in ids}
        together = {name for name, ids in split.partitions().items() if "train_case_2" in ids}
        assert homes == together


def test_bad_slab_map_is_a_clear_error(isles2018_src: Path, tmp_path: Path) -> None:
    slabs = tmp_path / "slabs.csv"
    slabs.write_text("scan,who\ncase_1,a\n")
    with pytest.raises(ImporterError, match="'case' and 'patient'"):
        import_isles2018(isles2018_src, tmp_path / "out", slab_map=slabs)


# --- ISLES'24 ---------------------------------------------------------------------------------------


def _isles24_subject(root: Path, number: int, *, long_sessions: bool = False, skip: str = "") -> None:
    rng = np.random.default_rng(number)
    sub = f"sub-stroke{number:04d}"
    acute, follow = ("ses-0001", "ses-0002") if long_sessions else ("ses-01", "ses-02")
    raw, derived = root / "raw_data" / sub, root / "derivatives" / sub
    native = _affine(1.5, 3.0)
    files = {
        raw / acute / f"{sub}_{acute}_ncct.nii.gz": (_ct(rng), None),
        raw / acute / f"{sub}_{acute}_cta.nii.gz": (_ct(rng, (10, 10, 4)), native),
        raw / acute / f"{sub}_{acute}_ctp.nii.gz": (_ct(rng, (10, 10, 4, 6)), native),
        raw / follow / f"{sub}_{follow}_dwi.nii.gz": (rng.uniform(0, 9, SHAPE).astype(np.float32), None),
        derived / acute / f"{sub}_{acute}_space-ncct_cta.nii.gz": (_ct(rng), None),
        derived / acute / f"{sub}_{acute}_space-ncct_ctp.nii.gz": (_ct(rng, (*SHAPE, 6)), None),
        derived / acute / f"{sub}_{acute}_space-ncct_lvo-msk.nii.gz": (np.ones(SHAPE, np.uint8), None),
        derived / acute / f"{sub}_{acute}_space-ncct_cow-msk.nii.gz": (np.ones(SHAPE, np.uint8) * 3, None),
        derived / follow / f"{sub}_{follow}_space-ncct_lesion-msk.nii.gz": (
            (rng.uniform(0, 1, SHAPE) > 0.7).astype(np.uint8),
            None,
        ),
    }
    for kind in ("tmax", "mtt", "cbf", "cbv"):
        files[raw / acute / "perfusion-maps" / f"{sub}_{acute}_{kind}.nii.gz"] = (
            rng.uniform(0.5, 10, (10, 10, 4)).astype(np.float32),
            native,
        )
        files[derived / acute / "perfusion-maps" / f"{sub}_{acute}_space-ncct_{kind}.nii.gz"] = (
            rng.uniform(0.5, 10, SHAPE).astype(np.float32),
            None,
        )
    for path, (data, affine) in files.items():
        if skip and path.name.endswith(skip):
            continue
        _save(path, data, affine)
    phenotype = root / "phenotype" / sub
    (phenotype / acute).mkdir(parents=True)
    (phenotype / follow).mkdir(parents=True)
    sex = "Female" if number % 2 else "M"
    header = "Age,Sex,NIHSS at admission,mRS at admission,Atrial fibrillation"
    (phenotype / acute / f"{sub}_{acute}_demographic_baseline.csv").write_text(
        f"{header}\n{60 + number},{sex},{number + 3},0,yes\n"
    )
    (phenotype / follow / f"{sub}_{acute}_outcome.csv").write_text(f"mRS 3 months\n{number % 6}\n")


@pytest.fixture(scope="module")
def isles24_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isles24") / "train"
    _isles24_subject(root, 1)
    _isles24_subject(root, 2, skip="space-ncct_ctp.nii.gz")
    _isles24_subject(root, 7, long_sessions=True)
    (root / "clinical_data-description.xlsx").write_bytes(b"PK not read")
    return root


def test_isles24_import_ncct_space(isles24_src: Path, tmp_path: Path) -> None:
    before = tree_digest(isles24_src)
    out = tmp_path / "isles24"
    report = import_isles24(isles24_src, out)
    assert tree_digest(isles24_src) == before
    assert [o.patient_id for o in report.imported] == ["stroke0001", "stroke0002", "stroke0007"]
    manifest = _manifest(out, "stroke0001")
    assert manifest.images == {
        Modality.NCCT: "ncct.nii.gz",
        Modality.CTA: "cta.nii.gz",
        Modality.CTP: "ctp.nii.gz",
        Modality.CBF: "cbf.nii.gz",
        Modality.CBV: "cbv.nii.gz",
        Modality.MTT: "mtt.nii.gz",
        Modality.TMAX: "tmax.nii.gz",
        Modality.CORE: "core.nii.gz",
    }
    ids = manifest.provenance.original_ids
    assert ids["CTA"] == "derivatives/sub-stroke0001/ses-01/sub-stroke0001_ses-01_space-ncct_cta.nii.gz"
    assert ids["NCCT"] == "raw_data/sub-stroke0001/ses-01/sub-stroke0001_ses-01_ncct.nii.gz"
    assert ids["lvo_msk"].endswith("_space-ncct_lvo-msk.nii.gz") and ids["cow_msk"].endswith("cow-msk.nii.gz")
    assert ids["CORE"].endswith("ses-02/sub-stroke0001_ses-02_space-ncct_lesion-msk.nii.gz")
    assert manifest.clinical == {
        "age": 61,
        "sex": "F",
        "nihss": 4,
        "mrs_admission": 0,
        "atrial_fibrillation": True,
        "mrs_90d": 1,
    }
    assert _manifest(out, "stroke0007").images[Modality.CORE] == "core.nii.gz"  # ses-0001 / ses-0002
    assert Modality.CTP not in _manifest(out, "stroke0002").images
    assert any(n.patient_id == "stroke0002" and "no CTP" in n.message for n in report.notes)
    assert "final-infarct" in DatasetCard.model_validate_json((out / "dataset.json").read_bytes()).description
    _assert_valid(out)


def test_isles24_native_space_has_no_core(isles24_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "native"
    report = import_isles24(isles24_src, out, ImportOptions(mode="copy"), space="native")
    manifest = _manifest(out, "stroke0002")
    assert Modality.CORE not in manifest.images and Modality.CTP in manifest.images
    assert manifest.provenance.original_ids["CTP"].startswith("raw_data/")
    assert any("not imported as CORE" in n.message for n in report.notes)
    _assert_valid(out)


# --- table ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_src(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("table")
    root = base / "images"
    rng = np.random.default_rng(5)
    for number in range(1, 6):
        folder = root / f"P0{number}"
        if number != 4:
            _save(folder / "cbf.nii.gz", rng.uniform(1, 60, SHAPE).astype(np.float32))
        _save(folder / f"P0{number}_Tmax_map.nii", rng.uniform(0, 15, SHAPE).astype(np.float32))
    tmax = root / "P05" / "P05_Tmax_map.nii"
    tmax.write_bytes(tmax.read_bytes()[:-100])  # truncated: the header needs more data
    csv_path = base / "labels.csv"
    csv_path.write_text(
        "id,occlusion,side,TICI,Age,sex,center\n"
        "P01,ICA T,links,2C,71,female,A\n"
        "P02,M1 segment,R,TICI 2b,64,M,A\n"
        "P03,basilar,L,3,80,F,B\n"
        "P04,left M2,,eTICI 2b67,59,m,B\n"
        "P05,ICAT,right,0,66,F,A\n"
    )
    return csv_path, root


def test_table_import_normalises_labels_and_reports_the_rest(
    table_src: tuple[Path, Path], tmp_path: Path
) -> None:
    csv_path, root = table_src
    before = tree_digest(root)
    out = tmp_path / "table"
    columns = TableColumns(
        id="id", occlusion_location="occlusion", occlusion_side="side", mtici="TICI", site="center"
    )
    patterns = {Modality.CBF: "{id}/cbf.nii.gz", Modality.TMAX: "{id}/*_Tmax_*.nii*"}
    report = import_table(
        csv_path, root, out, patterns, ImportOptions(require=[Modality.CBF]), columns=columns
    )
    assert tree_digest(root) == before
    assert [o.patient_id for o in report.imported] == ["P01", "P02", "P03"]
    assert [(o.patient_id, o.reason) for o in report.excluded] == [("P04", "lacks CBF (required)")]
    (failed,) = report.failed
    assert failed.patient_id == "P05" and failed.file == "P05/P05_Tmax_map.nii" and "F003" in failed.reason
    assert [(p.patient_id, p.field, p.value) for p in report.unmapped] == [
        ("P03", "occlusion_location", "basilar")
    ]
    first = _manifest(out, "P01")
    assert (first.labels.occlusion_location, first.labels.occlusion_side, first.labels.mtici) == (
        "ICA-T",
        "L",
        "2c",
    )
    assert first.site == "A" and first.clinical == {"age": 71, "sex": "F"}
    assert first.images == {Modality.CBF: "cbf.nii.gz", Modality.TMAX: "tmax.nii"}
    second = _manifest(out, "P02")
    assert (second.labels.occlusion_location, second.labels.occlusion_side, second.labels.mtici) == (
        "M1",
        "R",
        "2b",
    )
    third = _manifest(out, "P03")
    assert third.labels.occlusion_location is None and third.labels.mtici == "3"
    assert (out / EXCLUDED_CSV).read_text().splitlines()[1] == "P04,labels.csv line 5,lacks CBF (required)"
    _assert_valid(out)


def test_table_bad_column_is_a_clear_error(table_src: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, root = table_src
    with pytest.raises(ImporterError, match="no column 'patient'"):
        import_table(
            csv_path, root, tmp_path / "o", {Modality.CBF: "{id}/cbf.nii.gz"}, columns=TableColumns("patient")
        )
    with pytest.raises(ImporterError, match="refers to case"):
        import_table(csv_path, root, tmp_path / "o", {Modality.CBF: "{case}/cbf.nii.gz"})


def test_cli_table_renders_and_exits_1_when_something_needs_attention(
    table_src: tuple[Path, Path], tmp_path: Path
) -> None:
    from cli.strokedata_app import app

    csv_path, root = table_src
    out = tmp_path / "cli"
    args = ["import", "table", str(csv_path), "--root", str(root), "--out", str(out)]
    args += ["--column", "CBF={id}/cbf.nii.gz", "--column", "TMAX={id}/*_Tmax_*.nii*", "--require", "CBF"]
    args += ["--location-column", "occlusion", "--side-column", "side", "--mtici-column", "TICI"]
    result = CliRunner().invoke(app, [*args, "--alias", "location:basilar=M2"])
    assert result.exit_code == 1, result.output  # P05 is truncated
    assert "P05" in result.output and "3 imported" in result.output
    assert _manifest(out, "P03").labels.occlusion_location == "M2"
    assert CliRunner().invoke(app, [*args, "--copy", "--link"]).exit_code == 2
    assert CliRunner().invoke(app, [*args, "--require", "BOLD"]).exit_code == 2


def test_cli_ami_exit_codes(tmp_path: Path) -> None:
    from cli.strokedata_app import app

    src = tmp_path / "AMI"
    _ami_patient(src, "1")
    result = CliRunner().invoke(app, ["import", "ami", str(src), "--out", str(tmp_path / "out"), "--copy"])
    assert result.exit_code == 0, result.output
    assert "1 imported (1 written, 0 up to date)" in result.output
    missing = CliRunner().invoke(
        app, ["import", "ami", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 2 and "Traceback" not in missing.output


# --- validation of linked sources -------------------------------------------------------------------


def test_links_into_a_linked_source_validate_and_others_do_not(tmp_path: Path) -> None:
    from tests.builders import build_dataset

    root = build_dataset(tmp_path / "data", n_patients=1)
    outside = tmp_path / "archive"
    outside.mkdir()
    image = root / "p000" / "cbf.nii.gz"
    image.rename(outside / "cbf.nii.gz")
    image.symlink_to(os.path.relpath(outside / "cbf.nii.gz", image.parent))
    assert "F005" in validate(root, jobs=1).codes()
    card = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**card, "linked_sources": ["../archive"]}))
    assert "F005" not in validate(root, jobs=1).codes()
    (root / "dataset.json").write_text(json.dumps({**card, "linked_sources": [str(tmp_path / "elsewhere")]}))
    assert "F005" in validate(root, jobs=1).codes()


# --- label normalisation ----------------------------------------------------------------------------


def _variants(draw: st.DrawFn, text: str) -> str:
    """Return ``text`` with random letter case and random spaces around it."""
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in text)
    return draw(st.sampled_from(["", " ", "  ", "\t"])) + cased + draw(st.sampled_from(["", " ", "\n"]))


@st.composite
def _spelling(draw: st.DrawFn, table: dict[str, tuple[str, ...]]) -> tuple[str, str]:
    value = draw(st.sampled_from(sorted(table)))
    spelling = draw(st.sampled_from([value, *table[value]]))
    return _variants(draw, spelling), value


@given(_spelling(LOCATION_SPELLINGS))
def test_every_location_spelling_maps_whatever_its_case_and_spaces(case: tuple[str, str]) -> None:
    text, value = case
    assert LabelNormaliser().location(text) == value


@given(_spelling(SIDE_SPELLINGS))
def test_every_side_spelling_maps(case: tuple[str, str]) -> None:
    text, value = case
    assert LabelNormaliser().side(text) == value


@given(_spelling(MTICI_SPELLINGS))
def test_every_mtici_spelling_maps(case: tuple[str, str]) -> None:
    text, value = case
    assert LabelNormaliser().mtici(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ICA-T", "ICA-T"),
        ("ICAT", "ICA-T"),
        ("ica terminus", "ICA-T"),
        ("ICA T", "ICA-T"),
        ("ICA_T", "ICA-T"),
        ("M1", "M1"),
        ("M1 segment", "M1"),
        ("M2 segment", "M2"),
        ("MCA-M2", "M2"),
    ],
)
def test_location_table(text: str, expected: str) -> None:
    assert LabelNormaliser().location(text) == expected


def test_sides_grades_and_combined_spellings() -> None:
    normaliser = LabelNormaliser()
    assert [normaliser.side(t) for t in ("left", "L", "links", "R", "rechts", "NA", "")] == [
        "L",
        "L",
        "L",
        "R",
        "R",
        None,
        None,
    ]
    assert [normaliser.mtici(t) for t in ("2C", "2c", "TICI 2c", "mTICI 2 C", "eTICI 2b50", "3.0")] == [
        "2c",
        "2c",
        "2c",
        "2c",
        "2b",
        "3",
    ]
    assert normaliser.occlusion("left M1") == ("M1", "L")
    assert normaliser.occlusion("ICA-T (R)") == ("ICA-T", "R")
    assert clinical_value("7.5") == 7.5 and clinical_value("n/a") is None


@pytest.mark.parametrize(
    ("method", "text"),
    [("location", "ICA"), ("location", "MCA"), ("location", "basilar"), ("side", "both"), ("mtici", "2")],
)
def test_unknown_spellings_are_refused_not_guessed(method: str, text: str) -> None:
    with pytest.raises(UnknownSpelling):
        getattr(LabelNormaliser(), method)(text)


def test_aliases_extend_a_field_and_are_checked() -> None:
    normaliser = LabelNormaliser().with_aliases("occlusion_location", {"carotid top": "ICA-T"})
    assert normaliser.location("Carotid-Top") == "ICA-T"
    with pytest.raises(ValueError, match="must be one of"):
        LabelNormaliser().with_aliases("mtici", {"4": "4"})


# --- NIfTI helpers ----------------------------------------------------------------------------------


def test_squeeze_keeps_voxels_and_moves_the_frame_interval(tmp_path: Path) -> None:
    from strokedata.importers.nifti import check_data, squeezed_bytes

    series = np.arange(6 * 5 * 2 * 7, dtype=np.int16).reshape(6, 5, 2, 1, 7)
    source = tmp_path / "ctp.nii.gz"
    image = nib.Nifti1Image(series, _affine())
    image.header.set_zooms((1.0, 1.0, 2.0, 1.0, 1.5))
    nib.save(image, source)
    target = tmp_path / "squeezed.nii.gz"
    target.write_bytes(squeezed_bytes(source))
    assert squeezed_bytes(source) == target.read_bytes()  # reproducible
    volume = read_volume(target, 10**6)
    assert volume.header.shape == (6, 5, 2, 7) and volume.header.pixdim[3] == 1.5
    assert np.array_equal(volume.data, series[:, :, :, 0, :])
    assert np.array_equal(volume.header.affine, read_header(source).affine)
    check_data(target, volume.header)
    target.write_bytes(target.read_bytes()[:-30])
    with pytest.raises(ImageReadError) as caught:
        check_data(target, read_header(target))
    assert caught.value.kind in ("truncated", "corrupt") and "squeezed.nii.gz" in str(caught.value)
    larger = gzip.decompress(source.read_bytes()) + bytes(TRAILING_MARGIN + 1)
    target.write_bytes(gzip.compress(larger))
    with pytest.raises(ImageReadError) as caught:
        check_data(target, read_header(target))
    assert caught.value.kind == "trailing"
    with pytest.raises(ImageReadError) as caught:
        squeezed_bytes(target)
    assert caught.value.kind == "trailing"
    with pytest.raises(ValueError, match="not \\(x, y, z, 1, t\\)"):
        _save(tmp_path / "ncct.nii", np.ones(SHAPE, np.int16))
        squeezed_bytes(tmp_path / "ncct.nii")


def test_importers_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, strokedata.importers; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
