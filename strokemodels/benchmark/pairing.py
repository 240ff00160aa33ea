"""Pairing a model's predictions with the truth, task by task, into Evidence.

Patients are those of the truth, sorted. A predicted patient the truth lacks is an error; a patient of
the truth without a prediction is an error too, unless ``allow_missing``, which scores it as wrong:
the next class (occlusion, with probability 1 on it), the opposite label and probability
(recanalization), every region flipped (clot-regions, per patient or per slice), the worst mask (core).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from strokedata.executor import Progress
from strokedata.manifest import N_REGIONS
from strokemodels.benchmark.errors import ScoringError
from strokemodels.benchmark.evidence import Evidence
from strokemodels.benchmark.files import REGION_COLUMNS, Rows
from strokemodels.benchmark.masks import MaskJob, score_masks
from strokemodels.benchmark.metrics import Ranking, binary_metrics, confusion_metrics, multilabel_metrics
from strokemodels.benchmark.segmentation import SEGMENTATION_METRICS
from strokemodels.benchmark.tasks import TaskCard

_LISTED = 20  # patients named in one message


def _listing(ids: list[str]) -> str:
    return ", ".join(ids[:_LISTED]) + (" ..." if len(ids) > _LISTED else "")


def check_patients(truth: Rows, predicted: Rows, allow_missing: bool, model: str | None = None) -> int:
    """Return how many units (patients, or slices at slice level) of the truth lack a prediction.

    Raises ScoringError for predicted patients or slices the truth lacks, and for missing ones unless
    ``allow_missing``.
    """
    whose = f" (model {model})" if model else ""
    unknown = sorted(set(predicted.values) - set(truth.values))
    if unknown:
        raise ScoringError(
            f"{len(unknown)} predicted patient(s){whose} are not in the truth: {_listing(unknown)}"
        )
    if truth.slice_level != predicted.slice_level:
        raise ScoringError(
            "the predictions and the truth must both have a slice column, or neither "
            "(slice-level truth comes from a dataset's CLOT and ATLAS, or from a truth file with slices)"
        )
    missing = sorted(set(truth.values) - set(predicted.values))
    units = len(missing)
    if truth.slice_level:
        extra = [
            f"{pid} slice {z}"
            for pid, slices in sorted(predicted.values.items())
            for z in sorted(set(slices) - set(truth.values[pid]))
        ]
        if extra:
            raise ScoringError(
                f"{len(extra)} predicted slice(s){whose} are not in the truth: {_listing(extra)}"
            )
        units = sum(
            len(set(slices) - set(predicted.values.get(pid, {}))) for pid, slices in truth.values.items()
        )
        missing = sorted(
            {pid for pid, slices in truth.values.items() if set(slices) - set(predicted.values.get(pid, {}))}
        )
    if missing and not allow_missing:
        raise ScoringError(
            f"{len(missing)} patient(s) of the truth{whose} have no prediction"
            f"{' for some slices' if truth.slice_level else ''}: {_listing(missing)}; "
            "add them, or pass --allow-missing to score them as wrong"
        )
    return units


def build_evidence(
    task: TaskCard, truth: Rows, predicted: Rows, core: dict[str, dict[str, float]] | None = None
) -> Evidence:
    """Return the Evidence of ``predicted`` against ``truth``; missing predictions count as wrong.

    ``core`` gives the per-patient segmentation metrics of the core task (``core_metrics``).
    """
    ids = tuple(sorted(truth.values))
    if task.name == "occlusion":
        return _occlusion(task, ids, truth, predicted)
    if task.name == "recanalization":
        return _recanalization(ids, truth, predicted)
    if task.name == "clot-regions":
        return _regions(ids, truth, predicted)
    if core is None:
        raise ValueError("the core task needs its per-patient metrics (core_metrics)")
    return Evidence(
        patients=ids,
        cells=np.zeros(len(ids), dtype=np.intp),
        n_cells=1,
        from_counts=lambda counts: {},
        values={name: np.array([core[pid][name] for pid in ids]) for name in SEGMENTATION_METRICS},
    )


def core_metrics(
    truth: Rows, predicted: Rows, workers: int | None = None, progress: Progress | None = None
) -> dict[str, dict[str, float]]:
    """Return {patient id: segmentation metrics} for every patient of the truth (None: worst mask)."""
    jobs: list[MaskJob] = [
        (pid, Path(path), predicted.values.get(pid)) for pid, path in sorted(truth.values.items())
    ]
    return score_masks(jobs, workers, progress)


def _occlusion(task: TaskCard, ids: tuple[str, ...], truth: Rows, predicted: Rows) -> Evidence:
    classes, k = task.classes, len(task.classes)
    true = np.array([classes.index(truth.values[pid]) for pid in ids], dtype=np.intp)
    wrong = (true + 1) % k
    given = [predicted.values.get(pid) for pid in ids]
    guess = np.array(
        [wrong[i] if g is None else classes.index(g) for i, g in enumerate(given)], dtype=np.intp
    )
    rankings: dict[str, Ranking] = {}
    macros: dict[str, list[str]] = {}
    if predicted.scores:
        worst = np.eye(k)[wrong]
        scores = np.array(
            [predicted.scores.get(pid, worst[i]) for i, pid in enumerate(ids)], dtype=np.float64
        )
        rankings = {f"roc_auc[{name}]": Ranking(true == c, scores[:, c]) for c, name in enumerate(classes)}
        macros = {"roc_auc_ovr": list(rankings)}

    def from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
        return confusion_metrics(counts.reshape(*counts.shape[:-1], k, k), classes)

    return Evidence(
        patients=ids,
        cells=true * k + guess,
        n_cells=k * k,
        from_counts=from_counts,
        rankings=rankings,
        macros=macros,
        correct=true == guess,
    )


def _recanalization(ids: tuple[str, ...], truth: Rows, predicted: Rows) -> Evidence:
    unscored = sorted(set(predicted.values) - set(predicted.scores))
    if unscored:
        raise ScoringError(
            f"{len(unscored)} recanalization prediction(s) lack a probability: {_listing(unscored)}"
        )
    true = np.array([truth.values[pid] for pid in ids], dtype=np.intp)
    decided = np.array(
        [predicted.values.get(pid, 1 - t) for pid, t in zip(ids, true, strict=True)], dtype=np.intp
    )
    probability = np.array(
        [
            predicted.scores[pid][0] if pid in predicted.scores else 1.0 - t
            for pid, t in zip(ids, true, strict=True)
        ]
    )

    def from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
        return binary_metrics(counts.reshape(*counts.shape[:-1], 2, 2))

    return Evidence(
        patients=ids,
        cells=true * 2 + decided,
        n_cells=4,
        from_counts=from_counts,
        rankings={"roc_auc": Ranking(true == 1, probability)},
        correct=true == decided,
    )


def _regions(ids: tuple[str, ...], truth: Rows, predicted: Rows) -> Evidence:
    owner = None
    if truth.slice_level:
        units = [(i, pid, z) for i, pid in enumerate(ids) for z in sorted(truth.values[pid])]
        true = np.array([truth.values[pid][z] for _, pid, z in units], dtype=bool).reshape(-1, N_REGIONS)
        given: list[Any] = [predicted.values.get(pid, {}).get(z) for _, pid, z in units]
        owner = np.array([i for i, _, _ in units], dtype=np.intp)
    else:
        true = np.array([truth.values[pid] for pid in ids], dtype=bool).reshape(-1, N_REGIONS)
        given = [predicted.values.get(pid) for pid in ids]
    guess = np.array(
        [~true[u] if g is None else np.array(g, dtype=bool) for u, g in enumerate(given)], dtype=bool
    )
    guess = guess.reshape(-1, N_REGIONS)
    unique, inverse = np.unique(np.concatenate([true, guess], axis=1), axis=0, return_inverse=True)
    t, p = unique[:, :N_REGIONS], unique[:, N_REGIONS:]
    stats = np.stack([t & p, ~t & p, t & ~p, ~t & ~p]).astype(np.float64)  # (4, cells, regions)
    exact = np.stack([(t == p).all(axis=1), np.ones(len(unique), dtype=bool)], axis=1).astype(np.float64)

    def from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.einsum("...u,kul->k...l", counts, stats)
        return multilabel_metrics(totals[0], totals[1], totals[2], totals[3], counts @ exact, REGION_COLUMNS)

    return Evidence(
        patients=ids,
        cells=inverse.ravel().astype(np.intp),
        n_cells=len(unique),
        from_counts=from_counts,
        owner=owner,
        correct=None if owner is not None else (true == guess).all(axis=1),
    )
