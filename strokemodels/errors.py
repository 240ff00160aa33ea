"""The errors of the model zoo: user-fixable, each naming the model, run, file or patient at fault."""

from __future__ import annotations

from strokedata.errors import StrokedataError


class ZooError(StrokedataError):
    """A model cannot be found, built or used as asked (unknown name, wrong task, bad inputs)."""


class RunError(StrokedataError):
    """A training run or a run folder cannot be used: another tool version, task or dataset, a half run."""
