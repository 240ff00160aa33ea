"""Throughput of `strokedata validate` against reading the same files with nibabel alone.

Generates (once, cached in benchmarks/data/) a dataset of realistic sizes: per patient a CTA of
512x512x200 int16 and CBF/CBV/MTT/TMAX maps of 512x512x27 float32, all .nii.gz with head-like content
(air, skull, brain, noise) so that compression behaves like CT. Then, in one run, it times:
  raw      nibabel.load + np.asarray(dataobj) of every image (the cost of just reading them),
  jobs=1   strokedata.validate(root, jobs=1),
  jobs=2   strokedata.validate(root, jobs=2),
each ``--repeats`` times, and prints medians in MB/s of decompressed image data.

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/validate.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np

from strokedata import validate
from strokedata.manifest import DatasetCard, Modality, PatientManifest

CTA_SHAPE = (512, 512, 200)
MAP_SHAPE = (512, 512, 27)
MAPS = {
    Modality.CBF: (50.0, 15.0),
    Modality.CBV: (4.0, 1.0),
    Modality.MTT: (4.0, 1.0),
    Modality.TMAX: (1.0, 0.5),
}


def _head(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (brain mask, skull mask) of an ellipsoidal head filling most of the volume."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = axes[0][:, None, None] / 0.8, axes[1][None, :, None] / 0.9, axes[2][None, None, :] / 1.1
    radius = x**2 + y**2 + z**2
    scale = rng.uniform(0.95, 1.05)
    return radius < 0.85 * scale, (radius >= 0.85 * scale) & (radius < scale)


def _write_patient(root: Path, index: int) -> None:
    rng = np.random.default_rng(index)
    folder = root / f"bench{index:03d}"
    folder.mkdir(parents=True)
    brain, skull = _head(CTA_SHAPE, rng)
    cta = rng.normal(-1000, 8, CTA_SHAPE).astype(np.int16)
    cta[brain] = rng.normal(40, 6, int(brain.sum())).astype(np.int16)
    cta[skull] = rng.normal(1200, 150, int(skull.sum())).astype(np.int16)
    affine = np.diag([0.45, 0.45, 0.8, 1.0])
    images = {Modality.CTA: "cta.nii.gz"}
    nib.save(nib.Nifti1Image(cta, affine), folder / "cta.nii.gz")
    brain, _ = _head(MAP_SHAPE, rng)
    map_affine = np.diag([0.45, 0.45, 5.0, 1.0])
    for modality, (mean, sd) in MAPS.items():
        values = np.zeros(MAP_SHAPE, dtype=np.float32)
        values[brain] = np.abs(rng.normal(mean, sd, int(brain.sum())))
        name = f"{modality.value.lower()}.nii.gz"
        nib.save(nib.Nifti1Image(values, map_affine), folder / name)
        images[modality] = name
    manifest = PatientManifest(patient_id=folder.name, images=images)
    (folder / "patient.json").write_text(manifest.model_dump_json(indent=2))


def build(root: Path, patients: int) -> Path:
    """Return the benchmark dataset at ``root``, writing it first if it is not complete."""
    if (root / "dataset.json").is_file() and len(list(root.glob("*/patient.json"))) == patients:
        return root
    if root.exists():
        raise SystemExit(f"{root} exists but is not a complete {patients}-patient dataset; remove it")
    for index in range(patients):
        _write_patient(root, index)
    card = DatasetCard(
        name="validate-benchmark",
        version="1",
        license="CC0-1.0",
        modalities=[Modality.CTA, *MAPS],
        description="synthetic",
    )
    (root / "dataset.json").write_text(card.model_dump_json(indent=2))
    return root


def _read_with_nibabel(root: Path) -> None:
    for path in sorted(root.glob("*/*.nii.gz")):
        np.asarray(nib.load(path).dataobj)


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Build the dataset if needed, time the three ways of reading it and print a table."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "validate")
    arguments = parser.parse_args()
    root = build(arguments.data, arguments.patients)
    voxel_bytes = sum(
        nib.load(path).header.get_data_dtype().itemsize * int(np.prod(nib.load(path).shape))
        for path in root.glob("*/*.nii.gz")
    )
    file_bytes = sum(path.stat().st_size for path in root.glob("*/*.nii.gz"))
    report = validate(root, jobs=1)
    if not report.valid:
        raise SystemExit(f"the benchmark dataset is not valid: {report.findings[:3]}")
    print(
        f"{arguments.patients} patients, {voxel_bytes / 1e6:.0f} MB of voxels in {file_bytes / 1e6:.0f} MB "
        f"of .nii.gz; indexed_gzip installed: {find_spec('indexed_gzip') is not None}; "
        f"median of {arguments.repeats}"
    )
    raw = _median_seconds(lambda: _read_with_nibabel(root), arguments.repeats)
    rows = [("nibabel read only", raw)]
    for jobs in (1, 2):
        rows.append(
            (
                f"validate --jobs {jobs}",
                _median_seconds(lambda j=jobs: validate(root, jobs=j), arguments.repeats),
            )
        )
    print(f"{'what':<20} {'seconds':>8} {'MB/s':>8} {'x raw':>6}")
    for name, seconds in rows:
        print(f"{name:<20} {seconds:8.2f} {voxel_bytes / 1e6 / seconds:8.0f} {raw / seconds:6.2f}")


if __name__ == "__main__":
    main()
