"""``strokebench run``: a folder of patients (or the built-in phantoms) to a leaderboard per task, an
HTML report and ``summary.json``."""

from strokemodels.report.run import RunOptions, RunStopped, run_benchmark
from strokemodels.report.summary import RunSummary

__all__ = ["RunOptions", "RunStopped", "RunSummary", "run_benchmark"]
