"""Throughput of `strokedata validate` against reading the same files with nibabel alone.

Generates (once, cached in benchmarks/data/) realistic phantoms with a CTA of 512x512x200 int16 and
CBF/CBV/MTT/TMAX maps of 512x512x27 float32 per patient, all .nii.gz. Then, in one run, it times:
  raw      nibabel.load + np.asarray(dataobj) of every image (the cost of just reading them),
  jobs=1   strokedata.validate(root, jobs=1),
  jobs=2   strokedata.validate(root, jobs=2),
each ``--repeats`` times, and prints medians in MB/s of decompressed image data.

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/validate.py
"""

from __future__ import annotations

import argparse
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
from common import cached_dataset, median_seconds

from strokedata import validate
from strokedata.manifest import Modality
from strokedata.phantoms import preset

MODALITIES = [Modality.CTA, Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX]


def build(root: Path, patients: int) -> Path:
    """Return the benchmark dataset at ``root``: realistic phantoms, generated once."""
    return cached_dataset(root, patients, preset("realistic", modalities=MODALITIES))


def _read_with_nibabel(root: Path) -> None:
    for path in sorted(root.glob("*/*.nii.gz")):
        np.asarray(nib.load(path).dataobj)


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
    raw = median_seconds(lambda: _read_with_nibabel(root), arguments.repeats)
    rows = [("nibabel read only", raw)]
    for jobs in (1, 2):
        rows.append(
            (
                f"validate --jobs {jobs}",
                median_seconds(lambda j=jobs: validate(root, jobs=j), arguments.repeats),
            )
        )
    print(f"{'what':<20} {'seconds':>8} {'MB/s':>8} {'x raw':>6}")
    for name, seconds in rows:
        print(f"{name:<20} {seconds:8.2f} {voxel_bytes / 1e6 / seconds:8.0f} {raw / seconds:6.2f}")


if __name__ == "__main__":
    main()
