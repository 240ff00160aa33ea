"""Preprocessing as named pipelines (one per task) and ``preprocess_dataset``, which writes the result as a
new canonical dataset with provenance and a per-patient cache (docs/preprocess.md).

The running machinery (TorchIO, registration) is imported on first use, so that listing the pipelines
is instant.

Example:
    >>> from strokedata.preprocess import PIPELINES
    >>> sorted(PIPELINES)
    ['clot-regions', 'core', 'occlusion', 'recanalization']
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from strokedata.preprocess.pipelines import PIPELINES, Pipeline, PipelineParams, get_pipeline

if TYPE_CHECKING:
    from strokedata.preprocess.run import (
        PatientOutcome,
        PreprocessError,
        PreprocessReport,
        preprocess_dataset,
        resolve_parameters,
    )

_RUN = ("PatientOutcome", "PreprocessError", "PreprocessReport", "preprocess_dataset", "resolve_parameters")

__all__ = [
    "PIPELINES",
    "PatientOutcome",
    "Pipeline",
    "PipelineParams",
    "PreprocessError",
    "PreprocessReport",
    "get_pipeline",
    "preprocess_dataset",
    "resolve_parameters",
]


def __getattr__(name: str) -> Any:
    """Return a name of strokedata.preprocess.run, importing it on first use."""
    if name not in _RUN:
        raise AttributeError(f"module 'strokedata.preprocess' has no attribute '{name}'")
    return getattr(import_module("strokedata.preprocess.run"), name)
