"""``report.html``: one self-contained page (pictures embedded as PNG data, no script, no request
leaving the file) rendered from ``templates/report.html.j2`` with jinja2, from the run's summary and
each model's predictions."""

from __future__ import annotations

import base64
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strokedata.io import atomic_write_text
from strokemodels.benchmark import TASKS
from strokemodels.benchmark.files import REGION_COLUMNS
from strokemodels.benchmark.leaderboard import PUBLISHED
from strokemodels.benchmark.scoring import headline
from strokemodels.report import figures
from strokemodels.report.montage import montage_png, quality
from strokemodels.report.summary import ModelResult, RunSummary, TaskResult

if TYPE_CHECKING:
    from strokemodels.report.run import Sources

TEMPLATE = Path(__file__).parent / "templates" / "report.html.j2"
SHOWN = 2
"""Patients shown among the best and among the worst predicted."""


@dataclass
class Picture:
    """An embedded picture: its data URI, its alternative text and its caption."""

    uri: str
    alt: str
    caption: str


@dataclass
class ModelSection:
    """What the report shows of one model."""

    result: ModelResult
    pictures: list[Picture] = field(default_factory=list)


def _picture(data: bytes, alt: str, caption: str) -> Picture:
    return Picture("data:image/png;base64," + base64.b64encode(data).decode("ascii"), alt, caption)


def _f1(matrix: list[list[int]]) -> list[float | None]:
    """Return each class's F1 from a confusion matrix (rows truth, columns prediction)."""
    values = np.asarray(matrix)
    scores: list[float | None] = []
    for index in range(len(values)):
        hit = values[index, index]
        denominator = values[:, index].sum() + values[index, :].sum()
        scores.append(None if denominator == 0 else float(2 * hit / denominator))
    return scores


def _region_probabilities(path: Path) -> dict[str, np.ndarray]:
    """Return each patient's 15 region probabilities from a clot-regions predictions CSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["patient_id"]: np.array([float(row[c]) for c in REGION_COLUMNS])
            for row in csv.DictReader(handle)
        }


def _pairs(
    task: str, truth: Any, found: Any, sources: Sources, classes: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return the (truth 0/1, probability) pairs of the ROC and calibration pictures: one per class
    (one against the rest) for occlusion, one for recanalization, clot-regions' regions pooled."""
    ids = sorted(pid for pid in truth.values if pid in found.scores)
    if task == "occlusion" and ids:
        scores = np.array([found.scores[pid] for pid in ids])
        return {
            name: (np.array([truth.values[pid] == name for pid in ids], dtype=int), scores[:, index])
            for index, name in enumerate(classes)
        }
    if task == "recanalization" and ids:
        return {
            "favourable": (
                np.array([truth.values[pid] for pid in ids]),
                np.array([found.scores[pid][0] for pid in ids]),
            )
        }
    if task == "clot-regions":
        probabilities = _region_probabilities(sources.predictions)
        ids = sorted(pid for pid in truth.values if pid in probabilities)
        if ids:
            return {
                "all regions": (
                    np.array([truth.values[pid] for pid in ids]).ravel(),
                    np.array([probabilities[pid] for pid in ids]).ravel(),
                )
            }
    return {}


def model_section(
    task: TaskResult, result: ModelResult, sources: Sources, regions: list[str], seed: int
) -> ModelSection:
    """Return the pictures of one model: confusion matrix, ROC with its band and calibration (where
    there are probabilities), F1 per class or region, training curves, best and worst patients."""
    from strokemodels.benchmark.scoring import load_scoring

    card = TASKS[task.task]
    section = ModelSection(result)
    name = f"{result.model} ({task.task})"
    score = result.score
    if score.confusion_matrix is not None:
        matrix = score.confusion_matrix
        section.pictures.append(
            _picture(
                figures.confusion_png(matrix.labels, matrix.matrix, f"{name}: confusion matrix"),
                f"Confusion matrix of {name}: rows the true classes {', '.join(matrix.labels)}, "
                "columns the predicted.",
                "Confusion matrix (rows: truth, columns: prediction).",
            )
        )
    partition = {"split": sources.split, "partition": "test"} if sources.has_test else {}
    scoring = load_scoring(task.task, [sources.predictions], dataset=sources.data, **partition)  # type: ignore[arg-type]
    truth, found = scoring.truth, next(iter(scoring.files[0].values()))
    pairs = _pairs(task.task, truth, found, sources, card.classes)
    if pairs:
        section.pictures.append(
            _picture(
                figures.roc_png(pairs, 200, seed, f"{name}: ROC"),
                f"ROC curves of {name} with 95% bootstrap bands: "
                + "; ".join(
                    f"{label}, AUC {figures.roc_points(*pair)[2]:.2f}" for label, pair in pairs.items()
                ),
                "ROC curves; the shaded band is a 95% bootstrap interval of the true positive rate "
                "(200 resamples).",
            )
        )
        section.pictures.append(
            _picture(
                figures.calibration_png(pairs, f"{name}: calibration"),
                f"Calibration of {name}: observed frequency against predicted probability in 5 bins.",
                "Calibration: observed frequency of the class in each predicted-probability bin (5 bins).",
            )
        )
    labels, f1 = _class_f1(task.task, score, regions)
    if labels:
        section.pictures.append(
            _picture(
                figures.f1_png(labels, f1, f"{name}: F1"),
                f"F1 of {name} per {'region' if task.task == 'clot-regions' else 'class'}: "
                + ", ".join(
                    f"{label} {'n/a' if value is None else f'{value:.2f}'}"
                    for label, value in zip(labels, f1, strict=True)
                ),
                f"F1 per {'atlas region' if task.task == 'clot-regions' else 'class'}.",
            )
        )
    if result.curves:
        metric = f"val_{card.primary}"
        section.pictures.append(
            _picture(
                figures.curves_png(result.curves, metric, f"{name}: training"),
                f"Training curves of {name}: training loss and validation {card.primary} by epoch, "
                "one colour per fold.",
                f"Training loss (solid) and validation {card.primary} (dashed) by epoch, from each "
                "run's metrics CSV.",
            )
        )
    section.pictures.extend(_extremes(name, task.task, truth, found, sources, card.classes))
    return section


def _class_f1(task: str, score: Any, regions: list[str]) -> tuple[list[str], list[float | None]]:
    """Return (names, F1) per class or atlas region: the score report's own f1[...] where the task's
    scoring gives them (occlusion's classes, clot-regions' regions), else (recanalization) from the
    confusion matrix."""
    if task == "clot-regions":
        return list(regions), [score.metrics[f"f1[{column}]"].value for column in REGION_COLUMNS]
    if score.confusion_matrix is None:
        return [], []
    labels = list(score.confusion_matrix.labels)
    if all(f"f1[{label}]" in score.metrics for label in labels):
        return labels, [score.metrics[f"f1[{label}]"].value for label in labels]
    return labels, _f1(score.confusion_matrix.matrix)


def _caption(task: str, pid: str, truth: Any, found: Any, value: float) -> str:
    """Return a montage panel's caption: the patient, what was true and predicted, how well."""
    if task == "core":
        return f"{pid}\nDice {value:.2f}"
    if task == "clot-regions":
        return f"{pid}: {sum(truth)} true, {sum(found)} predicted\nF1 {value:.2f}"
    return f"{pid}: true {truth}, predicted {found}\np(true) {value:.2f}"


def _extremes(
    name: str, task: str, truth: Any, found: Any, sources: Sources, classes: list[str]
) -> list[Picture]:
    """Return the montages of the best and the worst predicted patients of model ``name`` (ties: by
    patient id; a patient shown among the best is not shown again among the worst)."""
    ids = sorted(pid for pid in truth.values if pid in found.values)
    if not ids:
        return []
    values = {
        pid: quality(task, classes, truth.values[pid], found.values[pid], found.scores.get(pid))
        for pid in ids
    }
    ranked = sorted(ids, key=lambda pid: (-values[pid], pid))
    pictures = []
    what = {"core": "Dice of the masks", "clot-regions": "F1 of the regions"}.get(
        task, "probability given to the true class"
    )
    best = ranked[:SHOWN]
    worst = [pid for pid in ranked[::-1] if pid not in best][:SHOWN]
    for label, chosen in (("best", best), ("worst", worst)):
        if not chosen:
            continue
        rows = [
            (
                pid,
                _caption(task, pid, truth.values[pid], found.values[pid], values[pid]),
                truth.values[pid],
                found.values[pid],
            )
            for pid in chosen
        ]
        pictures.append(
            _picture(
                montage_png(task, sources.data, rows),
                f"{name}: the {label} predicted patients by {what}: "
                + "; ".join(row[1].replace("\n", ", ") for row in rows),
                f"The {label} predicted patients ({what})"
                + {
                    "core": ": true core green, predicted vermilion.",
                    "clot-regions": ": regions true and predicted green, predicted only vermilion, "
                    "true only blue.",
                }.get(task, "."),
            )
        )
    return pictures


def at_a_glance(summary: RunSummary) -> list[dict[str, Any]]:
    """Return one row per task for the report's first table: whether it ran (or why not), our best
    model by the primary metric with its interval and rank stability, and the best published row."""
    rows = []
    for task in summary.tasks:
        primary = TASKS[task.task].primary
        ours = [row for row in task.leaderboard if row.source != PUBLISHED]
        published = [row for row in task.leaderboard if row.source == PUBLISHED and row.metrics.get(primary)]
        rows.append({"task": task, "primary": primary, "ours": ours[0] if ours else None,
                     "published": published[0] if published else None})  # fmt: skip
    return rows


def write_report(path: Path, summary: RunSummary, sources: dict[str, dict[str, Sources]]) -> Path:
    """Write the run's HTML report to ``path``, atomically, and return it."""
    import jinja2

    from strokedata import load_dataset

    sections: dict[str, list[ModelSection]] = {}
    for task in summary.tasks:
        if not task.served:
            continue
        first = next(iter(sources[task.task].values()))
        regions = list(load_dataset(first.data).card.atlas_regions)
        sections[task.task] = [
            model_section(task, result, sources[task.task][result.model], regions, summary.seed)
            for result in task.models
        ]
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    page = template.render(
        summary=summary,
        sections=sections,
        tasks=TASKS,
        published=PUBLISHED,
        headline=headline,
        glance=at_a_glance(summary),
    )
    atomic_write_text(path, page)
    return path
