"""Core task: reading each patient's predicted and true masks on one grid and scoring the pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strokedata.executor import Progress, executor_for, map_reporting
from strokedata.io import MAX_VOXELS, ImageReadError, Volume, read_volume
from strokemodels.benchmark.errors import ScoringError
from strokemodels.benchmark.segmentation import segmentation_metrics

_AFFINE_TOLERANCE_MM = 1e-3

MaskJob = tuple[str, Path, Path | None]
"""(patient id, truth mask, predicted mask or None for a missing prediction)."""


def _read_mask(pid: str, path: Path, role: str) -> Volume:
    """Return a mask image; ScoringError names the patient and the file when it is unreadable."""
    try:
        return read_volume(path, MAX_VOXELS)
    except (ImageReadError, OSError) as error:
        raise ScoringError(f"patient {pid}: the {role} mask {path} cannot be read: {error}") from None


def _binary(pid: str, volume: Volume, path: Path, role: str) -> np.ndarray:
    """Return the mask as bool; ScoringError when it is not 3D or holds values other than 0 and 1."""
    values = volume.scaled()
    if values.ndim != 3:
        raise ScoringError(f"patient {pid}: the {role} mask {path} is {values.ndim}D; masks are 3D")
    found = np.unique(values)
    if not np.isin(found, (0, 1)).all():
        raise ScoringError(
            f"patient {pid}: the {role} mask {path} holds values other than 0 and 1 "
            f"({', '.join(f'{v:g}' for v in found[:5])}...); threshold probabilities before scoring"
        )
    return np.asarray(values != 0)


def mask_pair_job(job: MaskJob) -> tuple[str, dict[str, float]]:
    """Return (patient id, segmentation_metrics of its predicted mask against the truth).

    A missing prediction (None) is scored as the worst mask: empty where the truth holds a lesion,
    full where it holds none. Raises ScoringError when a mask is unreadable, not binary, or on another
    grid than the truth (shape, or an affine differing by more than 0.001 mm).
    """
    pid, truth_path, predicted_path = job
    truth_volume = _read_mask(pid, truth_path, "true")
    truth = _binary(pid, truth_volume, truth_path, "true")
    if predicted_path is None:
        predicted = np.zeros_like(truth) if truth.any() else np.ones_like(truth)
    else:
        volume = _read_mask(pid, predicted_path, "predicted")
        predicted = _binary(pid, volume, predicted_path, "predicted")
        same_affine = np.allclose(volume.header.affine, truth_volume.header.affine, atol=_AFFINE_TOLERANCE_MM)
        if predicted.shape != truth.shape or not same_affine:
            raise ScoringError(
                f"patient {pid}: the predicted mask {predicted_path} lies on another grid than the truth "
                f"{truth_path} (shape {predicted.shape} vs {truth.shape}, affines "
                f"{'equal' if same_affine else 'differ'}); resample the prediction onto the truth's grid"
            )
    spacing = np.sqrt((truth_volume.header.affine[:3, :3] ** 2).sum(axis=0))
    return pid, segmentation_metrics(
        truth, predicted, (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    )


def score_masks(
    jobs: list[MaskJob], workers: int | None = None, progress: Progress | None = None
) -> dict[str, dict[str, float]]:
    """Return {patient id: segmentation metrics} of every job, read and scored in ``workers`` processes;
    ``progress`` hears of each patient (phase 'masks')."""
    with executor_for(workers, None) as runner:
        return dict(map_reporting(runner, mask_pair_job, jobs, "masks", progress))
