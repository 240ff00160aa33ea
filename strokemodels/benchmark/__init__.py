"""The benchmark: task cards with published baselines, metrics with bootstrap confidence intervals,
paired comparison of two models, and a leaderboard."""

from strokemodels.benchmark.errors import PredictionFileError, ScoringError
from strokemodels.benchmark.files import Rows, read_table
from strokemodels.benchmark.scoring import ScoreReport, load_scoring, score, score_files
from strokemodels.benchmark.tasks import TASKS, PublishedResult, TaskCard

__all__ = [
    "TASKS",
    "PredictionFileError",
    "PublishedResult",
    "Rows",
    "ScoreReport",
    "ScoringError",
    "TaskCard",
    "load_scoring",
    "read_table",
    "score",
    "score_files",
]
