"""`strokedata validate` on thousands of small patients: time per patient and peak memory of the parent.

Generates (once, cached in benchmarks/data/) N tiny phantoms with CBF, CBV, TMAX and CORE of 64x64x16
(.nii.gz), then validates with --jobs 1 and --jobs 2 and prints seconds, patients/s and the parent's
peak resident memory.

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/validate_scale.py
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from common import cached_dataset

from strokedata import validate
from strokedata.manifest import Modality
from strokedata.phantoms import preset

MODALITIES = [Modality.CBF, Modality.CBV, Modality.TMAX, Modality.CORE]


def build(root: Path, patients: int) -> Path:
    """Return the benchmark dataset at ``root``: tiny phantoms, generated once."""
    return cached_dataset(root, patients, preset("tiny", modalities=MODALITIES))


def main() -> None:
    """Build the dataset if needed, validate it with one and two jobs and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "scale")
    arguments = parser.parse_args()
    root = build(arguments.data, arguments.patients)
    print(f"{arguments.patients} patients x {len(MODALITIES)} images of {preset('tiny').perfusion.shape}")
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
