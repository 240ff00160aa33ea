"""``compare``: two models on the same patients, with paired bootstrap intervals and paired tests.

Both models are scored on the same resamples of the patients (``paired_metrics``), so the interval of
the difference B - A accounts for their correlation. McNemar's exact test compares per-patient
correctness (classification tasks, patient level); DeLong's test compares ROC-AUCs on the same
patients. The core task and slice-level clot-regions get the paired bootstrap only: their units are
not independent 0/1 outcomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from strokemodels.benchmark.errors import ScoringError
from strokemodels.benchmark.evidence import paired_metrics, point_metrics
from strokemodels.benchmark.files import Rows
from strokemodels.benchmark.scoring import evaluate, finite_or_none, headline, interval95, load_scoring
from strokemodels.benchmark.significance import PairedTest, delong, mcnemar
from strokemodels.benchmark.tasks import TASKS

_CONFIG = ConfigDict(extra="forbid", frozen=True)


class MetricDifference(BaseModel):
    """One metric of models A and B, the difference B - A and its paired 95% bootstrap interval."""

    model_config = _CONFIG

    a: float | None
    b: float | None
    difference: float | None
    ci95: tuple[float, float] | None


class CompareReport(BaseModel):
    """What ``strokebench compare`` reports; ``--json`` writes it."""

    model_config = _CONFIG

    task: str
    a: str
    b: str
    n: int
    unit: Literal["patient", "slice"]
    metrics: dict[str, MetricDifference]
    tests: list[PairedTest]
    bootstrap: int
    seed: int
    missing_scored_as_wrong: dict[str, int] = Field(description="units without a prediction, per model")
    unlabelled_not_scored: int = Field(default=0, description="dataset patients without the task's label")
    outside_partition_not_scored: int = Field(
        default=0, description="predicted patients of the dataset outside the partition compared, left aside"
    )
    notes: list[str]


def _b_minus_a(test: PairedTest, metric: str) -> PairedTest:
    """Return DeLong's test of A against B in the comparison's one sign convention, B - A: the statistic
    z = (AUC B - AUC A) / se and the detail auc_a, auc_b, difference_b_minus_a, se."""
    detail = test.detail
    return test.model_copy(
        update={
            "name": f"DeLong ({metric})",
            "statistic": None if test.statistic is None else -test.statistic,
            "detail": {
                "auc_a": detail["auc_a"],
                "auc_b": detail["auc_b"],
                "difference_b_minus_a": detail["auc_b"] - detail["auc_a"],
                "se": detail["se"],
            },
        }
    )


def compare(
    task_name: str,
    a: Rows,
    b: Rows,
    truth: Rows,
    *,
    names: tuple[str, str] = ("A", "B"),
    bootstrap: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
    workers: int | None = None,
) -> CompareReport:
    """Return the paired comparison of models ``a`` and ``b`` on the patients of ``truth``.

    Raises ScoringError as ``score`` does, for either model.
    """
    task = TASKS[task_name]
    first, missing_a = evaluate(task, a, truth, allow_missing=allow_missing, model=names[0], workers=workers)
    second, missing_b = evaluate(task, b, truth, allow_missing=allow_missing, model=names[1], workers=workers)
    point_a, point_b = point_metrics(first), point_metrics(second)
    wanted = [name for name in headline(task, point_a) if name in point_b]
    resampled = paired_metrics([first, second], bootstrap, seed) if bootstrap else None
    metrics = {}
    for name in wanted:
        ci95 = None
        if resampled is not None:
            ci95 = interval95(resampled[1][name] - resampled[0][name])
        metrics[name] = MetricDifference(
            a=finite_or_none(point_a[name]),
            b=finite_or_none(point_b[name]),
            difference=finite_or_none(point_b[name] - point_a[name]),
            ci95=ci95,
        )
    tests, notes = [], []
    if any(name not in point_b for name in point_a) or any(name not in point_a for name in point_b):
        notes.append(
            "metrics only one model has (one-vs-rest AUC needs probabilities in both files) are left out"
        )
    if first.correct is not None and second.correct is not None:
        tests.append(mcnemar(first.correct, second.correct))
    else:
        notes.append("no McNemar test: the units are not one independent right-or-wrong outcome per patient")
    for name in sorted(set(first.rankings) & set(second.rankings)):
        try:
            found = delong(
                first.rankings[name].truth, first.rankings[name].scores, second.rankings[name].scores
            )
        except ValueError as error:
            notes.append(f"no DeLong test of {name}: {error}")
            continue
        tests.append(_b_minus_a(found, name))
    return CompareReport(
        task=task_name,
        a=names[0],
        b=names[1],
        n=first.n,
        unit="slice" if truth.slice_level else "patient",
        metrics=metrics,
        tests=tests,
        bootstrap=bootstrap,
        seed=seed,
        missing_scored_as_wrong={names[0]: missing_a, names[1]: missing_b},
        notes=notes,
    )


def compare_files(
    task_name: str,
    a: Path,
    b: Path,
    *,
    truth: Path | None = None,
    dataset: Path | None = None,
    split: Path | None = None,
    partition: str | None = None,
    threshold: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
    workers: int | None = None,
) -> CompareReport:
    """Return the paired comparison of two predictions files (one model each) against one truth.

    Raises ScoringError when a file holds several models, PredictionFileError for bad files.
    """
    scoring = load_scoring(
        task_name,
        [a, b],
        truth=truth,
        dataset=dataset,
        split=split,
        partition=partition,
        threshold=threshold,
        workers=workers,
    )
    models = []
    for path, found in zip((a, b), scoring.files, strict=True):
        if len(found) != 1:
            raise ScoringError(
                f"{path} holds {len(found)} models ({', '.join(sorted(str(m) for m in found))}); "
                "compare takes one model per file"
            )
        models.append(next(iter(found.values())))
    names = (a.name, b.name) if a.name != b.name else (str(a), str(b))
    if names[0] == names[1]:
        names = (f"A: {names[0]}", f"B: {names[1]}")
    report = compare(
        task_name,
        models[0],
        models[1],
        scoring.truth,
        names=names,
        bootstrap=bootstrap,
        seed=seed,
        allow_missing=allow_missing,
        workers=workers,
    )
    notes = list(report.notes)
    if scoring.unlabelled:
        notes.append(
            f"{len(scoring.unlabelled)} patients of the dataset lack the {task_name} label and were not "
            "scored"
        )
    if scoring.outside_partition:
        notes.append(
            f"{scoring.outside_partition} predicted patients lie outside the partition {partition} and "
            "were left aside"
        )
    return report.model_copy(
        update={
            "unlabelled_not_scored": len(scoring.unlabelled),
            "outside_partition_not_scored": scoring.outside_partition,
            "notes": notes,
        }
    )
