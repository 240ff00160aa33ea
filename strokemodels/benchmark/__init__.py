"""The benchmark: task cards with published baselines, metrics with bootstrap confidence intervals."""

from strokemodels.benchmark.files import PredictionFileError, read_rows
from strokemodels.benchmark.scoring import ScoreReport, ScoringError, score, score_files
from strokemodels.benchmark.tasks import TASKS, PublishedResult, TaskCard

__all__ = [
    "TASKS",
    "PredictionFileError",
    "PublishedResult",
    "ScoreReport",
    "ScoringError",
    "TaskCard",
    "read_rows",
    "score",
    "score_files",
]
