"""Model outputs as the benchmark reads them: ensembles of several runs' outputs, and the task's
predictions CSV (core masks as NIfTI files beside it), ready for ``strokebench score``.

An output per patient is an array: occlusion (3,) class probabilities; recanalization (1,) the
probability of favourable recanalization; clot-regions (slices, 15) region probabilities per slice; core
a probability mask on the truth's grid, with its affine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from strokedata.csvcells import csv_text
from strokedata.io import atomic_write_text, write_nifti
from strokemodels.benchmark.files import REGION_COLUMNS
from strokemodels.benchmark.tasks import TASKS

Ensemble = Literal["vote", "mean"]


@dataclass(frozen=True)
class Output:
    """One patient's output: the array (see the module), and the affine of a core mask."""

    values: np.ndarray
    affine: np.ndarray | None = None


VOTE_MARGIN = 1e-4
"""How far a voted class is lifted above the largest mean probability: it stays the largest after the
probabilities are rounded to six decimals."""


def combine(task: str, members: Sequence[Output], how: Ensemble) -> Output:
    """Return the ensemble of several models' outputs for one patient: ``mean`` averages them; ``vote``
    (Papakyriakou et al.'s choice) takes each member's decision and keeps the most frequent, ties broken
    by the mean probability, reporting the mean probabilities beside it (the voted class rescaled to the
    largest, so that the prediction and the probabilities agree)."""
    stacked = np.stack([np.asarray(member.values, dtype=np.float64) for member in members])
    mean = stacked.mean(axis=0)
    affine = members[0].affine
    if how == "mean" or len(members) == 1:
        return Output(mean, affine)
    if task == "occlusion":
        votes = np.bincount(stacked.argmax(axis=-1), minlength=stacked.shape[-1]).astype(np.float64)
        winner = int(np.lexsort((mean, votes))[-1])  # most votes, then the highest mean probability
        if mean.argmax() != winner:  # keep probabilities that agree with the vote: lift the winner
            mean = mean.copy()
            mean[winner] = mean.max() + VOTE_MARGIN
            mean /= mean.sum()
        return Output(mean, affine)
    decisions = (stacked >= 0.5).mean(axis=0)  # the share of members deciding positive
    voted = np.where(decisions == 0.5, mean, decisions)  # a tie falls back to the mean probability
    return Output(voted, affine)


def predictions_csv(task: str, outputs: Mapping[str, Output], out: Path, *, slice_level: bool = False) -> str:
    """Return the task's predictions CSV for ``outputs`` by patient id; core masks are written as
    ``<out stem>-masks/<patient>.nii.gz`` (0/1 at 0.5) and named relative to ``out``'s folder."""
    ordered = sorted(outputs.items())
    if task == "occlusion":
        classes = TASKS[task].classes
        rows = [
            (pid, classes[int(np.argmax(o.values))], *(f"{p:.6f}" for p in _probabilities(o.values)))
            for pid, o in ordered
        ]
        return csv_text(["patient_id", "prediction", *(f"p_{c}" for c in classes)], rows)
    if task == "recanalization":
        return csv_text(
            ["patient_id", "probability"], [(pid, f"{float(o.values[0]):.6f}") for pid, o in ordered]
        )
    if task == "clot-regions":
        if slice_level:
            rows = [
                (pid, str(z), *(f"{v:.6f}" for v in row))
                for pid, o in ordered
                for z, row in enumerate(o.values)
            ]
            return csv_text(["patient_id", "slice", *REGION_COLUMNS], rows)
        patient_rows = [(pid, *(f"{v:.6f}" for v in np.asarray(o.values).max(axis=0))) for pid, o in ordered]
        return csv_text(["patient_id", *REGION_COLUMNS], patient_rows)
    masks = out.parent / f"{out.name.removesuffix('.csv')}-masks"
    rows = []
    for pid, output in ordered:
        path = masks / f"{pid}.nii.gz"
        affine = output.affine if output.affine is not None else np.eye(4)
        write_nifti(path, (np.asarray(output.values) >= 0.5).astype(np.uint8), affine)
        rows.append((pid, os.path.relpath(path, out.parent)))
    return csv_text(["patient_id", "mask"], rows)


def _probabilities(values: np.ndarray) -> np.ndarray:
    """Return class probabilities that sum to 1 at six decimals (what score checks)."""
    exact = np.asarray(values, dtype=np.float64) / np.sum(values)
    rounded: np.ndarray = np.round(exact, 6)
    rounded[int(np.argmax(exact))] += round(1.0 - float(rounded.sum()), 6)  # the leftover to the largest
    return rounded


def write_predictions(
    task: str, outputs: Mapping[str, Output], out: Path, *, slice_level: bool = False
) -> None:
    """Write the predictions CSV of ``outputs`` (and core masks) to ``out``, atomically."""
    atomic_write_text(out, predictions_csv(task, outputs, out, slice_level=slice_level))
