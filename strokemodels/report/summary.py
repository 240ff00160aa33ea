"""``summary.json``: the numbers of a ``strokebench run`` for machines (its JSON Schema:
schemas/benchmark/run-summary.schema.json). The HTML report shows the same numbers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from strokemodels.benchmark.leaderboard import LeaderboardRow
from strokemodels.benchmark.scoring import ScoreReport

SUMMARY_SCHEMA_VERSION: Literal[1] = 1
_STRICT = ConfigDict(extra="forbid", frozen=True)


class CodeCount(BaseModel):
    """One validation finding code: how often, in how many patients, and the first patients."""

    model_config = _STRICT

    code: str
    name: str
    severity: Literal["error", "warning"]
    findings: int
    patients: int
    examples: list[str] = Field(description="up to 5 patient ids (or 'dataset')")


class ValidationSummary(BaseModel):
    """The dataset's validation: counts and findings by code."""

    model_config = _STRICT

    valid: bool
    patients: int
    images: int
    errors: int
    warnings: int
    codes: list[CodeCount]


class Cohort(BaseModel):
    """The cohort's composition: patients by label value, site and modality."""

    model_config = _STRICT

    patients: int
    labels: dict[str, dict[str, int]] = Field(description="label -> value ('missing' too) -> patients")
    sites: dict[str, int]
    modalities: dict[str, int]


class ModelResult(BaseModel):
    """One model of a task: what was trained, where its predictions are and how they scored."""

    model_config = _STRICT

    model: str
    kind: Literal["learned", "rule"]
    runs: int = Field(description="trained runs (folds)")
    ensemble: str = Field(description="how the runs' predictions were combined")
    predictions: str = Field(description="the predictions CSV, relative to the run folder")
    score: ScoreReport
    curves: list[dict[str, list[float | None]]] = Field(
        default_factory=list,
        description="per run: its metrics CSV by column (epoch, train_loss, lr, val_...); none for a rule",
    )


class TaskResult(BaseModel):
    """One task of the run: served or why not, its split, its models and its leaderboard."""

    model_config = _STRICT

    task: str
    title: str
    served: bool
    reason: str | None = Field(default=None, description="why the dataset cannot serve the task")
    protocol: str
    pipeline_parameters: dict[str, dict[str, object]] = Field(
        default_factory=dict, description="pipeline -> the parameters it was run with (overrides)"
    )
    perfusion: bool = Field(default=False, description="maps computed from the CTP first")
    split_hash: str | None = None
    partitions: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="partition -> label value -> patients (split balance)"
    )
    scored_on: str = Field(default="", description="the test partition, or out-of-fold predictions")
    models: list[ModelResult] = Field(default_factory=list)
    left_out: dict[str, str] = Field(default_factory=dict, description="model -> why it was not trained")
    leaderboard: list[LeaderboardRow] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list, description="commands reproducing each step")


class RunSummary(BaseModel):
    """Everything a ``strokebench run`` found, for machines."""

    model_config = _STRICT

    schema_version: Literal[1] = SUMMARY_SCHEMA_VERSION
    versions: dict[str, str]
    dataset: str = Field(description="the dataset's name (dataset.json)")
    dataset_hash: str = Field(description="sha256 of its manifests")
    generated: bool = Field(description="true when the run generated the built-in phantoms")
    budget: Literal["quick", "paper"]
    seed: int
    validation: ValidationSummary
    cohort: Cohort
    tasks: list[TaskResult]
