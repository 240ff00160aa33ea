"""Seconds per realistic patient for each preprocessing pipeline, and loading throughput of the TorchIO
pipeline against plain nibabel + numpy reading the same files.

Generates (once, cached in benchmarks/data/preprocess) realistic phantoms with every modality: CTA,
MCTA1-3, SPIRAL, ATLAS and CLOT of 512x512x200, CTP 512x512x27 x 30 frames and its maps, NCCT 512x512x32.
Then, in one process:
  1. loads itk-elastix once (its one-off cost is printed separately: a worker pays it once);
  2. runs every pipeline with one job into a fresh folder and prints the median and the maximum of the
     per-patient seconds (reading, transforms including registration, writing .nii);
  3. loads each preprocessed dataset ``--repeats`` times, as a training loop would, through
     ``strokedata.subjects.subjects_dataset`` with the pipeline's loading transforms (TorchIO), and
     with nibabel + numpy (``nib.load(mmap=False)``, ``np.asarray(dataobj, float32)``) reading the same
     files; prints
     subjects per second for both and their ratio (goal: TorchIO at least 0.8x).

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/preprocess.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from common import cached_dataset, median_seconds

from strokedata import load_dataset
from strokedata.phantoms import preset
from strokedata.preprocess import PIPELINES, preprocess_dataset
from strokedata.subjects import subjects_dataset


def _load_with_torchio(root: Path, pipeline: str) -> None:
    dataset = subjects_dataset(root, transform=PIPELINES[pipeline].loading())
    for index in range(len(dataset)):
        subject = dataset[index]
        for image in subject.get_images(intensity_only=False):
            image.data  # noqa: B018 - touching the data is the point


def _load_with_nibabel(root: Path) -> None:
    dataset = load_dataset(root)
    for manifest in dataset:
        for relative in manifest.images.values():
            image = nib.load(root / manifest.patient_id / relative, mmap=False)  # read, not mapped
            np.asarray(image.dataobj, dtype=np.float32)


def main() -> None:
    """Build the dataset if needed, time every pipeline and the two loaders, print the figures."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pipelines", nargs="*", default=sorted(PIPELINES))
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "preprocess")
    arguments = parser.parse_args()
    root = cached_dataset(arguments.data, arguments.patients, preset("realistic"))
    start = time.perf_counter()
    import itk

    itk.ElastixRegistrationMethod  # noqa: B018 - itk loads lazily: this pays the one-off cost per process
    print(
        f"{arguments.patients} realistic phantom patients; "
        f"loading itk-elastix: {time.perf_counter() - start:.1f} s"
    )
    scratch = Path(tempfile.mkdtemp(prefix="preprocess-benchmark-"))
    try:
        print(
            "| pipeline | s/patient (median) | s/patient (max) | loading TorchIO | nibabel + numpy | ratio |"
        )
        print("|---|---|---|---|---|---|")
        for name in arguments.pipelines:
            out = scratch / name
            report = preprocess_dataset(root, name, out, jobs=1)
            if not report.ok:
                raise SystemExit(f"{name} failed: {report.failed}")
            seconds = [outcome.seconds for outcome in report.outcomes]
            n = len(load_dataset(out))
            torchio_s = median_seconds(
                lambda out=out, name=name: _load_with_torchio(out, name), arguments.repeats
            )
            nibabel_s = median_seconds(lambda out=out: _load_with_nibabel(out), arguments.repeats)
            print(
                f"| {name} | {statistics.median(seconds):.1f} | {max(seconds):.1f} | "
                f"{n / torchio_s:.2f} subjects/s | {n / nibabel_s:.2f} subjects/s | "
                f"{nibabel_s / torchio_s:.2f}x |"
            )
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
