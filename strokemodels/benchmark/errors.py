"""The errors of the benchmark: both are user-fixable and name the file, line or patient at fault."""

from __future__ import annotations

from strokedata.errors import StrokedataError


class PredictionFileError(StrokedataError):
    """A predictions or truth file is unusable; the message lists every problem with its line."""


class ScoringError(StrokedataError):
    """Predictions and truth do not match (missing or unknown patients, masks on another grid)."""
