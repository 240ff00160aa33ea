"""Hostile and broken input files: a decompression bomb costs no memory and is refused by every reader,
valid files with extensions or another byte order are read alike by every reader, an unreadable patient
folder is one finding while the others are validated, and the score reader is bounded."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torchio as tio
from hypothesis import given
from hypothesis import strategies as st

from strokedata import load_dataset, validate
from strokedata.csvcells import neutralise, restore
from strokedata.importers.nifti import check_data
from strokedata.io import ImageReadError, nifti_bytes, read_header, read_volume
from strokedata.manifest import PatientManifest
from strokedata.preprocess import preprocess_dataset
from strokedata.show import PatientShowError, render_patient
from strokedata.subjects import patient_subject
from tests.builders import CTA_AFFINE, tree_digest
from tests.corruptions import big_endian
from tests.hostile import shared_folder, unprivileged, write_gzip_bomb

ROOT = Path(__file__).parent.parent
BOMB_EXTRA = 1 << 30  # the bomb inflates to 1 GiB more than its header declares
_PEAK = """
import json, re, sys
from pathlib import Path
from strokedata import validate
report = validate(sys.argv[1], jobs=1)
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024
print(json.dumps({"codes": sorted(report.codes()), "peak": peak}))
"""
"""Validates a dataset in a new process and prints its peak resident memory: VmHWM, the high-water mark
of this program alone (ru_maxrss would also count the test process it was started from)."""


def _bomb_mcta1(root: Path) -> Path:
    """Replace p001's MCTA1 by a bomb: its own header and voxels, then 1 GiB of zeros; return its path."""
    path = root / "p001" / "mcta1.nii.gz"
    volume = read_volume(path, 10**6)
    write_gzip_bomb(path, nifti_bytes(volume.data, volume.header.affine), BOMB_EXTRA)
    assert path.stat().st_size < 8 * 2**20
    return path


def _peak_validate(root: Path) -> dict[str, object]:
    """Return the finding codes and the peak memory (bytes) of validating ``root`` in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(root)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_decompression_bomb_is_a_finding_and_costs_no_memory(dataset: Path, tmp_path: Path) -> None:
    clean = _peak_validate(dataset)
    assert clean["codes"] == []
    bomb = _bomb_mcta1(dataset)
    hostile = _peak_validate(dataset)
    assert hostile["codes"] == ["F007"]
    assert int(hostile["peak"]) - int(clean["peak"]) < 32 * 2**20  # type: ignore[call-overload]
    with gzip.open(bomb) as stream:  # the file really inflates to its header's bytes plus 1 GiB
        total = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 24), b""))
    assert total == read_header(bomb).vox_offset + read_header(bomb).nbytes + BOMB_EXTRA


def test_every_reader_refuses_the_bomb_naming_the_file(dataset: Path, tmp_path: Path) -> None:
    bomb = _bomb_mcta1(dataset)
    before = tree_digest(dataset)
    with pytest.raises(ImageReadError) as caught:
        read_volume(bomb, 10**6)
    assert caught.value.kind == "trailing" and "mcta1.nii.gz" in str(caught.value)
    with pytest.raises(ImageReadError, match=r"mcta1\.nii\.gz"):
        check_data(bomb, read_header(bomb))
    manifest = load_dataset(dataset).patients["p001"]
    with pytest.raises(ImageReadError, match=r"mcta1\.nii\.gz"):
        patient_subject(dataset, manifest).load()
    with pytest.raises(PatientShowError, match=r"mcta1\.nii\.gz"):
        render_patient(dataset, "p001", tmp_path / "p001.png")
    report = preprocess_dataset(dataset, "clot-regions", tmp_path / "out", jobs=1)
    assert [o.patient_id for o in report.failed] == ["p001"]
    assert (
        "mcta1.nii.gz" in report.failed[0].reason and "more data than its header" in report.failed[0].reason
    )
    assert tree_digest(dataset) == before


def _nifti_with_extension(path: Path) -> np.ndarray:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    image = nib.Nifti1Image(data, CTA_AFFINE)
    image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 1000))
    nib.save(image, path)
    return data


@pytest.mark.filterwarnings("ignore:Error loading image with SimpleITK")  # TorchIO falls back to nibabel
@pytest.mark.parametrize("name", ["nibabel-example-nifti2", "extension.nii", "extension.nii.gz"])
def test_files_with_header_extensions_are_read_like_nibabel_and_torchio(tmp_path: Path, name: str) -> None:
    if name.startswith("nibabel"):
        path = Path(nib.__file__).parent / "tests" / "data" / "example_nifti2.nii.gz"
    else:
        path = tmp_path / name
        _nifti_with_extension(path)
    image = nib.load(path)
    assert len(image.header.extensions) > 0
    volume = read_volume(path, 10**7)
    assert np.array_equal(volume.data, np.asarray(image.dataobj))
    assert np.allclose(volume.header.affine, image.affine)
    torchio = tio.ScalarImage(path).data.numpy()
    expected = np.asarray(image.dataobj)
    expected = expected[np.newaxis] if expected.ndim == 3 else np.moveaxis(expected, -1, 0)
    assert np.array_equal(torchio, expected)


def test_a_big_endian_image_is_read_and_preprocessed_like_its_little_endian_twin(
    dataset: Path, tmp_path: Path
) -> None:
    twin = Path(shutil.copytree(dataset, tmp_path / "twin"))
    path = twin / "p000" / "ctp.nii.gz"
    stored = np.asarray(nib.load(path).dataobj)
    big_endian(dataset / "p000" / "ctp.nii.gz", path)
    assert read_header(path).dtype.byteorder == ">"
    assert np.array_equal(read_volume(path, 10**6).data, stored)
    assert validate(twin, jobs=1).findings == []
    outputs = []
    for root in (dataset, twin):
        report = preprocess_dataset(root, "core", tmp_path / f"core-{root.name}", jobs=1)
        assert report.ok, report.failed
        outputs.append((tmp_path / f"core-{root.name}" / "p000" / "ctp.nii.gz").read_bytes())
    assert outputs[0] == outputs[1]


def test_an_unreadable_patient_folder_is_one_finding_and_the_others_are_validated(
    pristine_dataset: Path,
) -> None:
    assert validate(pristine_dataset, jobs=1).valid  # every module the run needs is imported already
    with shared_folder() as shared:
        root = Path(shutil.copytree(pristine_dataset, shared / "data"))
        (root / "p001").chmod(0)
        with unprivileged():
            report = validate(root, jobs=1)
    assert report.codes() == {"F009"}, [f.message for f in report.findings]
    assert [(f.patient_id, f.file) for f in report.findings] == [("p001", "p001/")]
    assert report.n_patients == 4 and report.image_bytes > 0


def test_an_output_in_a_read_only_folder_is_refused_before_any_work(pristine_dataset: Path) -> None:
    from strokedata.outputs import OutputPathError, check_output_file, check_output_folder

    with shared_folder() as shared:
        locked = shared / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        with unprivileged(), pytest.raises(OutputPathError, match="not writable"):
            check_output_file(locked / "report.json", "--json")
        with unprivileged(), pytest.raises(OutputPathError, match="not writable"):
            check_output_folder(locked / "out", "--out")
    for system in ("/proc/strokebench.json", "/sys/strokebench.json"):
        with pytest.raises(OutputPathError, match="system folder"):
            check_output_file(system, "--json")


def test_non_finite_clinical_values_are_refused_by_the_model() -> None:
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValueError, match="not a finite number"):
            PatientManifest.model_validate(
                {"patient_id": "p1", "images": {}, "clinical": {"age_weight": value}}, strict=False
            )


@given(st.text())
def test_csv_cells_round_trip_and_never_start_a_formula(cell: str) -> None:
    written = neutralise(cell)
    assert restore(written) == cell
    if written[:1] in ("=", "+", "-", "@", "\t", "\r"):
        float(written)  # only numbers may start with a formula character


def test_the_score_reader_refuses_a_file_above_its_bound_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strokemodels.benchmark import TASKS, files
    from strokemodels.benchmark.errors import PredictionFileError

    monkeypatch.setattr(files, "MAX_TABLE_BYTES", 4096)
    big = tmp_path / "predictions.csv"
    big.write_text("patient_id,prediction\n" + "".join(f"p{i},M1\n" for i in range(1000)))
    with pytest.raises(PredictionFileError, match="larger predictions and truth files are refused"):
        files.read_table(big, TASKS["occlusion"], "prediction")
    one_line = io.StringIO("x" * 100_000)  # a file without a line end, as a pipe would give it
    with pytest.raises(PredictionFileError, match="refused"):
        list(files._bounded_lines(one_line, big))
