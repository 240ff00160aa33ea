"""Speed of scoring: 1,000,000 occlusion rows with 1,000 bootstrap resamples.

Times `score` on in-memory rows and `score_files` end to end from two CSV files (reading, checking,
scoring), median of ``--repeats``; then the recanalization task, whose ROC-AUC resamples patients.

Run: python benchmarks/score.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import median_seconds

from strokemodels.benchmark import score, score_files

CLASSES = np.array(["ICA-T", "M1", "M2"])


def main() -> None:
    """Print the seconds each scoring takes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    truth_labels = rng.choice(CLASSES, size=arguments.rows, p=[0.148, 0.588, 0.264])
    predicted_labels = np.where(
        rng.uniform(size=arguments.rows) < 0.8, truth_labels, rng.choice(CLASSES, arguments.rows)
    )
    ids = [f"p{i:07d}" for i in range(arguments.rows)]
    truth = dict(zip(ids, truth_labels.tolist(), strict=True))
    predicted = dict(zip(ids, predicted_labels.tolist(), strict=True))
    seconds = median_seconds(lambda: score("occlusion", predicted, truth, bootstrap=1000), arguments.repeats)
    print(f"occlusion, {arguments.rows:,} rows in memory, 1,000 resamples: {seconds:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        truth_csv, predictions_csv = Path(folder, "truth.csv"), Path(folder, "predictions.csv")
        truth_csv.write_text("patient_id,label\n" + "".join(f"{i},{t}\n" for i, t in truth.items()))
        predictions_csv.write_text(
            "patient_id,prediction\n" + "".join(f"{i},{p}\n" for i, p in predicted.items())
        )
        seconds = median_seconds(
            lambda: score_files("occlusion", predictions_csv, truth=truth_csv, bootstrap=1000),
            arguments.repeats,
        )
        print(f"occlusion, {arguments.rows:,} rows from CSV files, 1,000 resamples: {seconds:.2f} s")
    n = 10_000
    labels = {f"p{i}": int(v) for i, v in enumerate(rng.uniform(size=n) < 0.4)}
    probabilities = {
        pid: (float(p), int(p >= 0.5)) for pid, p in zip(labels, rng.uniform(size=n), strict=True)
    }
    seconds = median_seconds(
        lambda: score("recanalization", probabilities, labels, bootstrap=1000), arguments.repeats
    )
    print(f"recanalization (ROC-AUC resamples patients), {n:,} rows, 1,000 resamples: {seconds:.2f} s")


if __name__ == "__main__":
    main()
