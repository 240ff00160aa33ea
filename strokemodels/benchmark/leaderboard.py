"""The leaderboard: scored runs recorded in a JSON-lines file, shown beside the published baselines.

A recorded run keeps its headline metrics, the fingerprint of the truth it was scored on, and its
primary metric on each paired bootstrap resample. Runs scored on the same truth with the same seed and
number of resamples saw the same resampled patients, so their rank stability (the share of resamples
in which a run keeps its place among them) is a paired statistic. Published rows come from other
cohorts: they are shown, marked as such, and never ranked against the scored runs' resamples.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strokedata.io import atomic_write_text
from strokemodels.benchmark.errors import PredictionFileError
from strokemodels.benchmark.scoring import MetricValue, ScoreReport, headline
from strokemodels.benchmark.tasks import TASKS, TaskCard

_CONFIG = ConfigDict(extra="forbid", frozen=True)
PUBLISHED = "published (other cohort)"


class LeaderboardEntry(BaseModel):
    """One recorded run: a line of the leaderboard file."""

    model_config = _CONFIG

    task: str
    name: str
    model: str | None
    n: int
    unit: Literal["patient", "slice"]
    truth_fingerprint: str
    bootstrap: int
    seed: int
    metrics: dict[str, MetricValue]
    replicates: tuple[float | None, ...] | None = Field(
        description="the primary metric on each paired resample; null where it is undefined"
    )
    predictions: str
    predictions_sha256: str

    @model_validator(mode="after")
    def _one_replicate_per_resample(self) -> LeaderboardEntry:
        if self.replicates is not None and len(self.replicates) != self.bootstrap:
            raise ValueError(f"{len(self.replicates)} replicates for {self.bootstrap} resamples")
        return self

    @property
    def label(self) -> str:
        """Return the run's name, with its model when the predictions file had a model column."""
        return self.name if self.model is None else f"{self.name}/{self.model}"


class LeaderboardRow(BaseModel):
    """A row of ``strokebench leaderboard``: a scored run or a published baseline."""

    model_config = _CONFIG

    name: str
    source: str
    n: int | None
    protocol: str
    metrics: dict[str, float | None]
    primary_ci95: tuple[float, float] | None
    rank_stability: float | None


def entries_from(reports: list[ScoreReport], name: str, predictions: Path) -> list[LeaderboardEntry]:
    """Return the leaderboard entries of the reports of one predictions file, recorded as ``name``."""
    digest = hashlib.sha256(predictions.read_bytes()).hexdigest()
    return [
        LeaderboardEntry(
            task=report.task,
            name=name,
            model=report.model,
            n=report.n,
            unit=report.unit,
            truth_fingerprint=report.truth_fingerprint,
            bootstrap=report.bootstrap,
            seed=report.seed,
            metrics={m: report.metrics[m] for m in headline(TASKS[report.task], report.metrics)},
            replicates=report.replicates,
            predictions=predictions.name,
            predictions_sha256=digest,
        )
        for report in reports
    ]


def read_leaderboard(path: Path) -> list[LeaderboardEntry]:
    """Return the entries of a leaderboard file ([] when it does not exist); raise PredictionFileError
    naming the line of an entry that cannot be read."""
    if not path.exists():
        return []
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionFileError(f"cannot read the leaderboard {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = LeaderboardEntry.model_validate_json(line)
        except ValidationError as error:
            raise PredictionFileError(
                f"{path} line {number} is not a leaderboard entry ({error.errors()[0]['msg']}); "
                "remove or fix the line"
            ) from None
        if entry.task not in TASKS or TASKS[entry.task].primary not in entry.metrics:
            raise PredictionFileError(
                f"{path} line {number} is not a leaderboard entry (unknown task '{entry.task}', or no "
                "primary metric); remove or fix the line"
            )
        entries.append(entry)
    return entries


def record(path: Path, new: list[LeaderboardEntry]) -> None:
    """Add entries to a leaderboard file, replacing every earlier run of the same task and name (all
    its models). The file is rewritten atomically, keeping the order of the lines it keeps."""
    replaced = {(e.task, e.name) for e in new}
    kept = [e for e in read_leaderboard(path) if (e.task, e.name) not in replaced]
    atomic_write_text(path, "".join(e.model_dump_json() + "\n" for e in [*kept, *new]))


def _better_first(card: TaskCard, value: float | None) -> tuple[int, float]:
    if value is None:
        return (1, 0.0)
    return (0, value if card.primary in card.lower_is_better else -value)


def rank_stability(card: TaskCard, entries: list[LeaderboardEntry]) -> dict[int, float]:
    """Return {index in entries: share of paired resamples in which the run keeps its rank}.

    Runs are ranked among those on the same truth, seed and number of resamples (ties share the best
    rank), over the resamples where every one of them has the metric defined; a run alone in its
    group, or without replicates, gets no value.
    """
    groups: dict[tuple[str, int, int], list[int]] = {}
    for index, entry in enumerate(entries):
        if entry.replicates is not None and entry.metrics[card.primary].value is not None:
            groups.setdefault((entry.truth_fingerprint, entry.seed, entry.bootstrap), []).append(index)
    sign = 1.0 if card.primary in card.lower_is_better else -1.0
    stability = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        point = sign * np.array([entries[i].metrics[card.primary].value for i in members], dtype=np.float64)
        resampled = sign * np.array(
            [[np.nan if v is None else v for v in entries[i].replicates or ()] for i in members],
            dtype=np.float64,
        )
        resampled = resampled[:, np.isfinite(resampled).all(axis=0)]
        if resampled.shape[1] == 0:
            continue
        point_rank = (point[None, :] < point[:, None]).sum(axis=1)
        ranks = (resampled[None, :, :] < resampled[:, None, :]).sum(axis=1)
        for row, index in enumerate(members):
            stability[index] = float(np.mean(ranks[row] == point_rank[row]))
    return stability


def leaderboard(task_name: str, entries: list[LeaderboardEntry]) -> list[LeaderboardRow]:
    """Return the task's recorded runs and published baselines, best primary metric first.

    Published rows are marked "published (other cohort)"; rows without the primary metric come last.
    """
    card = TASKS[task_name]
    runs = [e for e in entries if e.task == task_name]
    stability = rank_stability(card, runs)
    rows = [
        LeaderboardRow(
            name=entry.label,
            source=f"scored ({entry.predictions}; truth {entry.truth_fingerprint[:12]})",
            n=entry.n,
            protocol=f"{entry.unit}-level, {entry.bootstrap} paired resamples, seed {entry.seed}",
            metrics={m: entry.metrics[m].value if m in entry.metrics else None for m in card.metrics},
            primary_ci95=entry.metrics[card.primary].ci95,
            rank_stability=stability.get(index),
        )
        for index, entry in enumerate(runs)
    ]
    rows += [
        LeaderboardRow(
            name=result.model,
            source=PUBLISHED,
            n=result.n,
            protocol=result.protocol,
            metrics={m: result.metrics.get(m) for m in card.metrics},
            primary_ci95=None,
            rank_stability=None,
        )
        for result in card.published
    ]
    return sorted(rows, key=lambda row: _better_first(card, row.metrics[card.primary]))


def leaderboard_json(rows: list[LeaderboardRow]) -> str:
    """Return the rows as a JSON array (what ``strokebench leaderboard --json`` writes)."""
    return json.dumps([row.model_dump(mode="json") for row in rows], indent=2) + "\n"
