"""``score``: predictions against the truth, with seeded bootstrap 95% confidence intervals.

Every metric is computed once on all patients (pooled), then on each fold when the predictions carry a
``fold`` column (mean and sample standard deviation over folds, as papers report cross-validation),
and on ``bootstrap`` resamples of the patients for its 95% percentile interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from strokedata.executor import Progress
from strokemodels.benchmark.errors import ScoringError
from strokemodels.benchmark.evidence import (
    Evidence,
    bootstrap_metrics,
    metrics_at,
    paired_metrics,
    point_metrics,
)
from strokemodels.benchmark.files import Rows, read_table
from strokemodels.benchmark.pairing import build_evidence, check_patients, core_metrics
from strokemodels.benchmark.tasks import TASKS, TaskCard

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


class FoldScore(BaseModel):
    """The headline metrics of one fold's patients."""

    model_config = _CONFIG

    fold: str
    n: int
    metrics: dict[str, float | None]


class ScoreReport(BaseModel):
    """The scores of one model: what other tools read from ``strokebench score --json``."""

    model_config = _CONFIG

    task: str
    model: str | None = Field(default=None, description="the model column's value, when the file has one")
    n: int = Field(description="patients scored")
    unit: Literal["patient", "slice"] = "patient"
    n_units: int = Field(description="rows scored: patients, or slices at slice level")
    metrics: dict[str, MetricValue]
    confusion_matrix: ConfusionMatrix | None = None
    per_fold: list[FoldScore] | None = None
    fold_mean_std: dict[str, tuple[float | None, float | None]] | None = Field(
        default=None, description="headline metric -> (mean, sample std) over folds"
    )
    not_in_any_fold: int = Field(
        default=0,
        description="patients without a fold (missing, scored as wrong): in the pooled metrics only",
    )
    bootstrap: int = Field(description="resamples behind each ci95 (0: none)")
    seed: int
    missing_scored_as_wrong: int = Field(default=0, description="units without a prediction, scored as wrong")
    unlabelled_not_scored: int = Field(default=0, description="dataset patients without the task's label")
    outside_partition_not_scored: int = Field(
        default=0, description="predicted patients of the dataset outside the partition scored, left aside"
    )
    truth_fingerprint: str = Field(description="sha256 of the truth scored against: runs rank only on one")
    policies: dict[str, str]
    replicates: tuple[float | None, ...] | None = Field(
        default=None,
        exclude=True,
        description="the primary metric on each paired resample (resample_weights), for rank stability",
    )


def headline(task: TaskCard, metrics: Collection[str]) -> list[str]:
    """Return the task's headline metrics present in ``metrics`` (one-vs-rest AUC when scored)."""
    return [name for name in [*task.metrics, "roc_auc_ovr"] if name in metrics]


def finite_or_none(value: float) -> float | None:
    """Return ``value`` rounded to 12 decimals, or None when it is NaN or infinite (undefined)."""
    return None if not np.isfinite(value) else round(float(value), 12)


def interval95(samples: np.ndarray) -> tuple[float, float] | None:
    """Return the 95% percentile interval of the defined (finite) resampled values; None if none is."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _fold_key(fold: str) -> tuple[int, int, str]:
    return (0, int(fold), fold) if fold.isascii() and fold.isdigit() else (1, 0, fold)


def _folds(
    task: TaskCard, evidence: Evidence, folds: dict[str, str]
) -> tuple[list[FoldScore], dict[str, tuple[float | None, float | None]]]:
    """Return each fold's headline metrics and their (mean, sample std) over folds."""
    of = [folds.get(pid) for pid in evidence.patients]
    names = sorted({fold for fold in of if fold is not None}, key=_fold_key)
    weights = np.array([[fold == name for fold in of] for name in names], dtype=np.float64)
    values = metrics_at(evidence, weights)
    wanted = headline(task, values)
    per_fold = [
        FoldScore(
            fold=name, n=int(weights[j].sum()), metrics={m: finite_or_none(values[m][j]) for m in wanted}
        )
        for j, name in enumerate(names)
    ]
    summary = {}
    for metric in wanted:
        finite = values[metric][np.isfinite(values[metric])]
        mean = finite_or_none(finite.mean()) if finite.size else None
        std = finite_or_none(finite.std(ddof=1)) if finite.size > 1 else None
        summary[metric] = (mean, std)
    return per_fold, summary


def _confusion(task: TaskCard, evidence: Evidence) -> ConfusionMatrix | None:
    if task.name not in ("occlusion", "recanalization"):
        return None
    k = len(task.classes)
    counts = np.bincount(evidence.cells, minlength=k * k).reshape(k, k)
    return ConfusionMatrix(labels=task.classes, matrix=counts.tolist())


def truth_fingerprint(task: TaskCard, truth: Rows) -> str:
    """Return the sha256 of a task's truth: patients, labels, slices, and the bytes of core masks."""
    digest = hashlib.sha256(task.name.encode())
    for pid, value in sorted(truth.values.items()):
        digest.update(f"\n{pid}\t".encode())
        if isinstance(value, Path):
            digest.update(hashlib.sha256(value.read_bytes()).digest())
        elif isinstance(value, dict):
            digest.update(repr(sorted(value.items())).encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def evaluate(
    task: TaskCard,
    predicted: Rows,
    truth: Rows,
    *,
    allow_missing: bool = False,
    model: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[Evidence, int]:
    """Return (the Evidence of ``predicted`` against ``truth``, units scored as wrong for lack of a
    prediction). Raises ScoringError when patients are unknown, or missing without ``allow_missing``."""
    if not truth.values:
        raise ScoringError("the truth holds no patient to score")
    missing = check_patients(truth, predicted, allow_missing, model)
    core = core_metrics(truth, predicted, workers, progress) if task.name == "core" else None
    return build_evidence(task, truth, predicted, core), missing


def score(
    task_name: str,
    predicted: Rows,
    truth: Rows,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
    model: str | None = None,
    replicates: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    """Return the scores of one model's predictions against the truth.

    With ``replicates``, the report also holds the primary metric on each paired resample (for the
    leaderboard's rank stability). Raises ScoringError when patients are unknown, or missing without
    ``allow_missing``, and when a core mask is unreadable or on another grid.
    """
    task = TASKS[task_name]
    evidence, missing = evaluate(
        task, predicted, truth, allow_missing=allow_missing, model=model, workers=workers, progress=progress
    )
    point = point_metrics(evidence)
    resampled = bootstrap_metrics(evidence, bootstrap, seed) if bootstrap else None
    names = headline(task, point)
    ordered = names + [name for name in point if name not in names]
    per_fold, fold_summary = _folds(task, evidence, predicted.folds) if predicted.folds else (None, None)
    foldless = sum(pid not in predicted.folds for pid in evidence.patients) if predicted.folds else 0
    paired = None
    if replicates and bootstrap:
        paired = paired_metrics([evidence], bootstrap, seed)[0][task.primary]
    return ScoreReport(
        task=task_name,
        model=model,
        n=evidence.n,
        unit="slice" if truth.slice_level else "patient",
        n_units=len(evidence.cells),
        metrics={
            name: MetricValue(
                value=finite_or_none(point[name]),
                ci95=None if resampled is None else interval95(resampled[name]),
            )
            for name in ordered
        },
        confusion_matrix=_confusion(task, evidence),
        per_fold=per_fold,
        fold_mean_std=fold_summary,
        not_in_any_fold=foldless,
        bootstrap=bootstrap,
        seed=seed,
        missing_scored_as_wrong=missing,
        truth_fingerprint=truth_fingerprint(task, truth),
        policies=task.policies,
        replicates=None if paired is None else tuple(finite_or_none(v) for v in paired),
    )


@dataclass(frozen=True)
class Scoring:
    """What a scoring run reads: the truth, each file's models, the patients left unlabelled."""

    task: TaskCard
    truth: Rows
    files: list[dict[str | None, Rows]]
    unlabelled: list[str]
    outside_partition: int = 0
    """Patients of the dataset that the files predict but that lie outside the partition scored."""


def _without(rows: Rows, left_out: set[str]) -> Rows:
    """Return ``rows`` without the patients in ``left_out``."""
    return Rows(
        {pid: v for pid, v in rows.values.items() if pid not in left_out},
        {pid: v for pid, v in rows.scores.items() if pid not in left_out},
        {pid: v for pid, v in rows.folds.items() if pid not in left_out},
        rows.slice_level,
    )


def load_scoring(
    task_name: str,
    predictions: Sequence[Path],
    *,
    truth: Path | None = None,
    dataset: Path | None = None,
    split: Path | None = None,
    partition: str | None = None,
    threshold: float = 0.5,
    workers: int | None = None,
) -> Scoring:
    """Return each predictions file's models and the truth, from a truth CSV or derived from a dataset
    (optionally one partition of a split); patients lacking the task's label are left out of both.

    Raises ScoringError for a wrong combination of sources, PredictionFileError for bad files.
    """
    from strokedata import load_dataset
    from strokemodels.benchmark.truth import truth_from_dataset

    if (
        (truth is None) == (dataset is None)
        or (split is None) != (partition is None)
        or (split and not dataset)
    ):
        raise ScoringError("give a truth file or a dataset (with a split file and a partition to score one)")
    task = TASKS[task_name]
    files = [read_table(path, task, "prediction", threshold) for path in predictions]
    slice_level = next(iter(files[0].values())).slice_level
    unlabelled: list[str] = []
    if truth is not None:
        truths = read_table(truth, task, "label")[None]
    else:
        assert dataset is not None  # checked above
        truths, unlabelled = truth_from_dataset(
            task_name, dataset, split, partition, slice_level=slice_level, jobs=workers
        )
        left_out = set(unlabelled)
        aside: set[str] = set()
        if split is not None:  # the partition is scored; other patients of the dataset are left aside
            everyone = set(load_dataset(dataset).ids)
            predicted = {pid for found in files for rows in found.values() for pid in rows.values}
            aside = (predicted & everyone) - left_out - set(truths.values)
        files = [
            {model: _without(rows, left_out | aside) for model, rows in found.items()} for found in files
        ]
        return Scoring(task, truths, files, unlabelled, len(aside))
    return Scoring(task, truths, files, unlabelled)


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
    replicates: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[ScoreReport]:
    """Return one ScoreReport per model of a predictions CSV (one without a model column), scored
    against a truth CSV or the truth derived from a dataset; see ``load_scoring`` and ``score``."""
    scoring = load_scoring(
        task_name,
        [predictions],
        truth=truth,
        dataset=dataset,
        split=split,
        partition=partition,
        threshold=threshold,
        workers=workers,
    )
    return [
        score(
            task_name,
            rows,
            scoring.truth,
            bootstrap=bootstrap,
            seed=seed,
            allow_missing=allow_missing,
            model=model,
            replicates=replicates,
            workers=workers,
            progress=progress,
        ).model_copy(
            update={
                "unlabelled_not_scored": len(scoring.unlabelled),
                "outside_partition_not_scored": scoring.outside_partition,
            }
        )
        for model, rows in sorted(scoring.files[0].items(), key=lambda item: item[0] or "")
    ]
