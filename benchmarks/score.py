"""Speed of scoring, median of ``--repeats`` runs of each:

- occlusion, 1,000,000 rows with 1,000 bootstrap resamples, in memory and end to end from two CSV
  files (reading, checking, scoring);
- recanalization, 1,000,000 rows with 1,000 resamples (ROC-AUC resamples patients by weight);
- the leaderboard's paired replicates (resampling by patient weights) of 1,000,000 occlusion rows;
- core: segmentation metrics of 20 patients with 256 x 256 x 32 masks, one and four processes.

Run: python benchmarks/score.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import median_seconds
from scipy import ndimage

from strokedata.io import write_nifti
from strokemodels.benchmark import Rows, score, score_files

CLASSES = np.array(["ICA-T", "M1", "M2"])


def _occlusion(rng: np.random.Generator, rows: int) -> tuple[Rows, Rows]:
    truth_labels = rng.choice(CLASSES, size=rows, p=[0.148, 0.588, 0.264])
    predicted_labels = np.where(rng.uniform(size=rows) < 0.8, truth_labels, rng.choice(CLASSES, rows))
    ids = [f"p{i:07d}" for i in range(rows)]
    return (
        Rows(dict(zip(ids, truth_labels.tolist(), strict=True))),
        Rows(dict(zip(ids, predicted_labels.tolist(), strict=True))),
    )


def _core_files(folder: Path, rng: np.random.Generator, patients: int) -> tuple[Path, Path]:
    """Write ``patients`` pairs of 256 x 256 x 32 lesion masks and the truth and predictions CSVs."""
    affine = np.diag([0.9, 0.9, 5.0, 1.0])
    truth_lines, predicted_lines = ["patient_id,mask"], ["patient_id,mask"]
    for index in range(patients):
        noise = ndimage.gaussian_filter(rng.normal(size=(256, 256, 32)), sigma=(8, 8, 2))
        truth = noise > np.percentile(noise, 95)
        predicted = ndimage.binary_dilation(truth, iterations=2) & (rng.uniform(size=truth.shape) < 0.9)
        write_nifti(folder / f"t{index}.nii.gz", truth.astype(np.uint8), affine)
        write_nifti(folder / f"p{index}.nii.gz", predicted.astype(np.uint8), affine)
        truth_lines.append(f"c{index},t{index}.nii.gz")
        predicted_lines.append(f"c{index},p{index}.nii.gz")
    (folder / "truth.csv").write_text("\n".join(truth_lines) + "\n")
    (folder / "predictions.csv").write_text("\n".join(predicted_lines) + "\n")
    return folder / "predictions.csv", folder / "truth.csv"


def main() -> None:
    """Print the seconds each scoring takes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, repeats = arguments.rows, arguments.repeats
    truth, predicted = _occlusion(rng, rows)
    seconds = median_seconds(lambda: score("occlusion", predicted, truth, bootstrap=1000), repeats)
    print(f"occlusion, {rows:,} rows in memory, 1,000 resamples: {seconds:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        truth_csv, predictions_csv = Path(folder, "truth.csv"), Path(folder, "predictions.csv")
        truth_csv.write_text("patient_id,label\n" + "".join(f"{i},{t}\n" for i, t in truth.values.items()))
        predictions_csv.write_text(
            "patient_id,prediction\n" + "".join(f"{i},{p}\n" for i, p in predicted.values.items())
        )
        seconds = median_seconds(
            lambda: score_files("occlusion", predictions_csv, truth=truth_csv, bootstrap=1000), repeats
        )
        print(f"occlusion, {rows:,} rows from CSV files, 1,000 resamples: {seconds:.2f} s")
    seconds = median_seconds(
        lambda: score("occlusion", predicted, truth, bootstrap=1000, replicates=True), repeats
    )
    print(f"occlusion, {rows:,} rows, 1,000 resamples and the paired replicates: {seconds:.2f} s")
    labels = rng.uniform(size=rows) < 0.4
    probabilities = np.clip(labels * 0.3 + rng.uniform(size=rows) * 0.7, 0, 1)
    ids = [f"p{i:07d}" for i in range(rows)]
    recanalization_truth = Rows(dict(zip(ids, labels.astype(int).tolist(), strict=True)))
    recanalization = Rows(
        dict(zip(ids, (probabilities >= 0.5).astype(int).tolist(), strict=True)),
        scores={pid: (float(p),) for pid, p in zip(ids, probabilities, strict=True)},
    )
    seconds = median_seconds(
        lambda: score("recanalization", recanalization, recanalization_truth, bootstrap=1000), repeats
    )
    print(f"recanalization, {rows:,} rows, 1,000 resamples (ROC-AUC by patient weights): {seconds:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        core_predictions, core_truth = _core_files(Path(folder), rng, 20)
        for workers in (1, 2):
            seconds = median_seconds(
                lambda jobs=workers: score_files(  # type: ignore[misc]
                    "core", core_predictions, truth=core_truth, bootstrap=1000, workers=jobs
                ),
                repeats,
            )
            print(f"core, 20 masks of 256 x 256 x 32, 1,000 resamples, {workers} processes: {seconds:.2f} s")


if __name__ == "__main__":
    main()
