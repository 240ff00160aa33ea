"""Preprocessing as named pipelines (one per task) and ``preprocess_dataset``, which writes the result as a
new canonical dataset with provenance and a per-patient cache (docs/preprocess.md).

Example:
    >>> from strokedata.preprocess import PIPELINES
    >>> sorted(PIPELINES)
    ['clot-regions', 'core', 'occlusion', 'recanalization']
"""

from strokedata.preprocess.pipelines import PIPELINES, Pipeline, PipelineParams, get_pipeline
from strokedata.preprocess.run import (
    PatientOutcome,
    PreprocessError,
    PreprocessReport,
    preprocess_dataset,
    resolve_parameters,
)

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
