"""``score``: a predictions file against the truth, with seeded bootstrap 95% confidence intervals.

Resampling patients with replacement leaves confusion-based metrics depending only on how many
patients fall in each (truth, prediction) cell, so a resample is a multinomial draw over the cells: exact
in distribution, and fast for millions of rows. ROC-AUC needs the scores themselves and resamples
patient indices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from strokedata.errors import StrokedataError
from strokedata.manifest import N_REGIONS
from strokemodels.benchmark.files import REGION_COLUMNS, read_rows
from strokemodels.benchmark.metrics import binary_metrics, confusion_metrics, multilabel_metrics, roc_auc
from strokemodels.benchmark.tasks import TASKS, TaskCard

_AUC_CHUNK = 64  # resamples scored at once for ROC-AUC (memory: chunk x n)
_CONFIG = ConfigDict(extra="forbid", frozen=True)


class MetricValue(BaseModel):
    """A metric's point estimate and its 95% percentile bootstrap interval (null without bootstrap)."""

    model_config = _CONFIG

    value: float | None
    ci95: tuple[float, float] | None


class ConfusionMatrix(BaseModel):
    """Rows = truth, columns = prediction, in the order of ``labels``."""

    model_config = _CONFIG

    labels: list[str]
    matrix: list[list[int]]


class ScoreReport(BaseModel):
    """The scores of one predictions file: what other tools read from ``strokebench score --json``."""

    model_config = _CONFIG

    task: str
    n: int
    metrics: dict[str, MetricValue]
    confusion_matrix: ConfusionMatrix | None = None
    per_fold: list[dict[str, float | None]] | None = None
    bootstrap: int = Field(description="resamples behind each ci95 (0: none)")
    seed: int
    missing_scored_as_wrong: int = 0
    unlabelled_not_scored: int = Field(default=0, description="dataset patients without the task's label")
    policies: dict[str, str]


class ScoringError(StrokedataError):
    """Predictions and truth do not match (missing or unknown patients)."""


def _interval(samples: np.ndarray) -> tuple[float, float] | None:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _metric_values(
    point: dict[str, np.ndarray], resampled: dict[str, np.ndarray] | None
) -> dict[str, MetricValue]:
    values = {}
    for name, value in point.items():
        estimate = float(value)
        values[name] = MetricValue(
            value=None if np.isnan(estimate) else round(estimate, 12),
            ci95=None if resampled is None else _interval(resampled[name]),
        )
    return values


def _cell_bootstrap(cells: np.ndarray, bootstrap: int, seed: int) -> np.ndarray:
    """Return (bootstrap, cells) counts: patients resampled with replacement, drawn per cell."""
    total = int(cells.sum())
    rng = np.random.default_rng(seed)
    return rng.multinomial(total, cells / max(total, 1), size=bootstrap)


def _pair(
    truth: dict[str, object], predicted: dict[str, object], allow_missing: bool
) -> tuple[list[str], int]:
    """Return the patients to score (the truth's, sorted) and how many lack a prediction."""
    unknown = sorted(set(predicted) - set(truth))
    missing = sorted(set(truth) - set(predicted))
    if unknown:
        raise ScoringError(
            f"{len(unknown)} predicted patient(s) are not in the truth: "
            f"{', '.join(unknown[:20])}{' ...' if len(unknown) > 20 else ''}"
        )
    if missing and not allow_missing:
        raise ScoringError(
            f"{len(missing)} patient(s) of the truth have no prediction: "
            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; "
            "add them, or pass --allow-missing to score them as wrong"
        )
    return sorted(truth), len(missing)


def _score_occlusion(
    task: TaskCard,
    ids: list[str],
    truth: dict[str, object],
    predicted: dict[str, object],
    bootstrap: int,
    seed: int,
) -> tuple[dict[str, MetricValue], ConfusionMatrix]:
    classes = task.classes
    cells = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for pid in ids:
        row = classes.index(str(truth[pid]))
        wrong = classes[(row + 1) % len(classes)]  # a missing prediction is scored as a wrong class
        cells[row, classes.index(str(predicted.get(pid, wrong)))] += 1
    resampled = None
    if bootstrap:
        draws = _cell_bootstrap(cells.ravel(), bootstrap, seed).reshape(bootstrap, *cells.shape)
        resampled = confusion_metrics(draws, classes)
    return _metric_values(confusion_metrics(cells, classes), resampled), ConfusionMatrix(
        labels=classes, matrix=cells.tolist()
    )


def _score_recanalization(
    ids: list[str], truth: dict[str, object], predicted: dict[str, object], bootstrap: int, seed: int
) -> tuple[dict[str, MetricValue], ConfusionMatrix]:
    labels = np.array([int(truth[pid]) for pid in ids])  # type: ignore[call-overload]
    worst = {pid: (1.0 - labels[i], 1 - int(labels[i])) for i, pid in enumerate(ids)}
    pairs = [predicted.get(pid, worst[pid]) for pid in ids]
    probabilities = np.array([float(p[0]) for p in pairs])  # type: ignore[index]
    decisions = np.array([int(p[1]) for p in pairs])  # type: ignore[index]
    cells = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cells, (labels, decisions), 1)
    point = {"roc_auc": roc_auc(labels, probabilities), **binary_metrics(cells)}
    resampled = None
    if bootstrap:
        draws = _cell_bootstrap(cells.ravel(), bootstrap, seed).reshape(bootstrap, 2, 2)
        rng = np.random.default_rng(seed + 1)
        aucs = []
        for start in range(0, bootstrap, _AUC_CHUNK):
            index = rng.integers(0, len(ids), size=(min(_AUC_CHUNK, bootstrap - start), len(ids)))
            aucs.append(roc_auc(labels[index], probabilities[index]))
        resampled = {"roc_auc": np.concatenate(aucs), **binary_metrics(draws)}
    return _metric_values(point, resampled), ConfusionMatrix(labels=["0", "1"], matrix=cells.tolist())


def _score_regions(
    ids: list[str], truth: dict[str, object], predicted: dict[str, object], bootstrap: int, seed: int
) -> dict[str, MetricValue]:
    truth_bits = {pid: list(truth[pid]) for pid in ids}  # type: ignore[call-overload]
    true = np.array([truth_bits[pid] for pid in ids]) > 0
    worst = {pid: [1 - int(b) for b in truth_bits[pid]] for pid in ids}  # missing: every region wrong
    pred = np.array([predicted.get(pid, worst[pid]) for pid in ids]) > 0
    rows = np.concatenate([true, pred], axis=1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(unique))
    t, p = unique[:, :N_REGIONS], unique[:, N_REGIONS:]
    stats = np.stack([t & p, ~t & p, t & ~p, ~t & ~p], axis=0).astype(np.float64)  # (4, U, L)
    exact = np.stack([(t == p).all(axis=1), np.ones(len(unique), dtype=bool)], axis=1).astype(np.float64)

    def metrics(weights: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.einsum("...u,kul->k...l", weights, stats)
        return multilabel_metrics(totals[0], totals[1], totals[2], totals[3], weights @ exact, REGION_COLUMNS)

    point = metrics(counts.astype(np.float64))
    resampled = metrics(_cell_bootstrap(counts, bootstrap, seed).astype(np.float64)) if bootstrap else None
    return _metric_values(point, resampled)


def score(
    task_name: str,
    predicted: dict[str, object],
    truth: dict[str, object],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
) -> ScoreReport:
    """Return the scores of predictions against truth ({patient_id: value}, as files.read_rows gives).

    Raises ScoringError when patients are unknown, or missing without ``allow_missing``.
    """
    task = TASKS[task_name]
    if task_name == "core":
        raise ScoringError("the core task is not scored yet (segmentation metrics are still to come)")
    ids, missing = _pair(truth, predicted, allow_missing)
    if not ids:
        raise ScoringError("the truth holds no patient to score")
    scorers: dict[str, Callable[[], tuple[dict[str, MetricValue], ConfusionMatrix | None]]] = {
        "occlusion": lambda: _score_occlusion(task, ids, truth, predicted, bootstrap, seed),
        "recanalization": lambda: _score_recanalization(ids, truth, predicted, bootstrap, seed),
        "clot-regions": lambda: (_score_regions(ids, truth, predicted, bootstrap, seed), None),
    }
    metrics, confusion = scorers[task_name]()
    return ScoreReport(
        task=task_name,
        n=len(ids),
        metrics=metrics,
        confusion_matrix=confusion,
        bootstrap=bootstrap,
        seed=seed,
        missing_scored_as_wrong=missing,
        policies=task.policies,
    )


def score_files(
    task_name: str,
    predictions: Path,
    *,
    truth: Path | None = None,
    dataset: Path | None = None,
    split: Path | None = None,
    partition: str | None = None,
    threshold: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
) -> ScoreReport:
    """Return the scores of a predictions CSV against a truth CSV, or against the truth derived from a
    dataset (optionally one partition of a split); patients lacking the task's label are not scored.

    Raises ScoringError for a wrong combination of sources, PredictionFileError for bad files.
    """
    from strokemodels.benchmark.truth import truth_from_dataset

    if (
        (truth is None) == (dataset is None)
        or (split is None) != (partition is None)
        or (split and not dataset)
    ):
        raise ScoringError("give a truth file or a dataset (with a split file and a partition to score one)")
    task = TASKS[task_name]
    predicted = read_rows(predictions, task, "prediction", threshold)
    unlabelled: list[str] = []
    if truth is not None:
        truths = read_rows(truth, task, "label", 0.5)
    else:
        truths, unlabelled = truth_from_dataset(task_name, dataset, split, partition)  # type: ignore[arg-type]
        left_out = set(unlabelled)
        predicted = {pid: value for pid, value in predicted.items() if pid not in left_out}
    report = score(task_name, predicted, truths, bootstrap=bootstrap, seed=seed, allow_missing=allow_missing)
    return report.model_copy(update={"unlabelled_not_scored": len(unlabelled)})
