"""Registration accuracy and time per grid, driver and preset (docs/registration.md's table).

For each grid and driver, the phantom template is registered to phantom patients of seed 0, whose pose
is the answer; errors as tests/test_registration.py measures them (rotation, RMS displacement over the
template's brain, scale). Settings to compare are given as JSON: name -> elastix overrides, with an
optional "__transform" preset.

Run (the tiny rows of docs/registration.md, before and after issue 16's sample count):
    python benchmarks/registration.py tiny:NCCT,tiny:CBF --patients 6 \
        --settings '{"default": {}, "4096 samples": {"NumberOfSpatialSamples": 4096},
                     "similarity": {"__transform": "similarity"}}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strokedata.manifest import Modality
from strokedata.phantoms import Grid, generate_patient, phantom_template, preset
from strokedata.registration import register
from tests.test_registration import _errors, _pose_matrix

GRIDS = {
    "tiny": Grid(shape=(64, 64, 16), spacing=(3.6, 3.6, 8.0)),
    "64x64x48": Grid(shape=(64, 64, 48), spacing=(3.6, 3.6, 4.0)),
    "512x512x27": Grid(shape=(512, 512, 27), spacing=(0.45, 0.45, 5.0)),
}
FIXED = {"NCCT": "ct", "CBF": "cbf"}


def measure(grid: Grid, driver: str, patients: int, settings: dict[str, object]) -> tuple[np.ndarray, float]:
    """Return (per patient: rotation degrees, scale ratio, centre error mm, RMS mm) and the median seconds."""
    config = preset("tiny", perfusion=grid, ncct=grid, modalities=[Modality.NCCT, Modality.CBF])
    template = phantom_template(grid)
    voxels = np.argwhere(template.atlas > 0)
    points = np.c_[voxels, np.ones(len(voxels))] @ template.affine.T
    overrides = dict(settings)
    transform = str(overrides.pop("__transform", "affine"))
    errors, seconds = [], []
    for index in range(patients):
        patient = generate_patient(0, index, config)
        data, affine, _ = patient.images[Modality(driver)]
        began = time.perf_counter()
        result = register(
            np.asarray(getattr(template, FIXED[driver])), template.affine, data, affine,
            transform=transform, overrides=overrides,  # type: ignore[arg-type]
        )  # fmt: skip
        seconds.append(time.perf_counter() - began)
        errors.append(_errors(result.matrix, _pose_matrix(patient.pose), points))
    return np.array(errors), statistics.median(seconds)


def main() -> None:
    """Print one table row per grid, driver and setting."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "cases", help="GRID:DRIVER,... with GRID one of " + ", ".join(GRIDS) + "; DRIVER NCCT or CBF"
    )
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--settings", default='{"default": {}}', help="JSON: name -> elastix overrides")
    arguments = parser.parse_args()
    import itk

    itk.ElastixRegistrationMethod  # noqa: B018 - the 10-15 s import, outside the timings
    columns = ["grid", "driver", "setting", "rotation error, max (mean)", "RMS error, max (mean)"]
    print("| " + " | ".join([*columns, "scale error, max", "time"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case in arguments.cases.split(","):
        name, driver = case.split(":")
        for setting, overrides in json.loads(arguments.settings).items():
            errors, seconds = measure(GRIDS[name], driver, arguments.patients, overrides)
            print(
                f"| {name} | {driver} | {setting} | "
                f"{errors[:, 0].max():.2f} ({errors[:, 0].mean():.2f}) degrees | "
                f"{errors[:, 3].max():.2f} ({errors[:, 3].mean():.2f}) mm | "
                f"{100 * np.abs(errors[:, 1] - 1).max():.2f}% | {seconds:.2f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
