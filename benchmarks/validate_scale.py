"""`strokedata validate` on thousands of small patients: time per patient and peak memory of the parent.

Generates (once, cached in benchmarks/data/) N patients with CBF, CBV, TMAX, CORE maps of 64x64x16
(.nii.gz), then validates with --jobs 1 and --jobs 2 and prints seconds, patients/s and the parent's
peak resident memory.

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/validate_scale.py
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from strokedata import validate
from strokedata.manifest import DatasetCard, Modality, PatientManifest

SHAPE = (64, 64, 16)
MAPS = {Modality.CBF: 50.0, Modality.CBV: 4.0, Modality.TMAX: 2.0}


def build(root: Path, patients: int) -> Path:
    """Return the dataset at ``root``, writing it first if it is not complete."""
    if (root / "dataset.json").is_file() and len(list(root.glob("*/patient.json"))) == patients:
        return root
    if root.exists():
        raise SystemExit(f"{root} exists but is not a complete {patients}-patient dataset; remove it")
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 5.0, 1.0])
    for index in range(patients):
        folder = root / f"s{index:05d}"
        folder.mkdir(parents=True)
        images = {}
        for modality, mean in MAPS.items():
            values = rng.gamma(4.0, mean / 4.0, SHAPE).astype(np.float32)
            nib.save(nib.Nifti1Image(values, affine), folder / f"{modality.value.lower()}.nii.gz")
            images[modality] = f"{modality.value.lower()}.nii.gz"
        core = (rng.uniform(size=SHAPE) > 0.95).astype(np.uint8)
        nib.save(nib.Nifti1Image(core, affine), folder / "core.nii.gz")
        images[Modality.CORE] = "core.nii.gz"
        manifest = PatientManifest(patient_id=folder.name, images=images)
        (folder / "patient.json").write_text(manifest.model_dump_json())
    card = DatasetCard(name="scale", version="1", license="CC0-1.0", modalities=[*MAPS, Modality.CORE])
    (root / "dataset.json").write_text(card.model_dump_json())
    return root


def main() -> None:
    """Build the dataset if needed, validate it with one and two jobs and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "scale")
    arguments = parser.parse_args()
    root = build(arguments.data, arguments.patients)
    print(f"{arguments.patients} patients x 4 images of {SHAPE}")
    print(f"{'what':<18} {'seconds':>8} {'patients/s':>11} {'findings':>9}")
    for jobs in (1, 2):
        start = time.perf_counter()
        report = validate(root, jobs=jobs)
        seconds = time.perf_counter() - start
        rate = arguments.patients / seconds
        print(f"validate --jobs {jobs} {seconds:8.2f} {rate:11.0f} {len(report.findings):9d}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parent peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
