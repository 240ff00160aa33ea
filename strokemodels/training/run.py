"""A training run's folder: ``run.json`` (the model, its spec, every parameter, the dataset's and the
split's hashes, the fold, the versions), ``metrics.csv`` (one row per epoch), and the checkpoints:
``last.pt`` and ``best.pt`` for a network, ``rule.json`` for a rule. Every file is written atomically,
and a checkpoint names its model and spec, so ``predict`` needs nothing else."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from strokedata import __version__
from strokedata.io import atomic_write_text
from strokemodels.errors import RunError
from strokemodels.spec import ModelSpec

RUN_FILE, METRICS_FILE, TIMINGS_FILE = "run.json", "metrics.csv", "timings.csv"
LAST, BEST, RULE = "last.pt", "best.pt", "rule.json"
RUN_FORMAT: Literal[1] = 1

_STRICT = ConfigDict(extra="forbid", frozen=True)


class TrainParameters(BaseModel):
    """Every value a training run was given (the recipe's defaults filled in)."""

    model_config = _STRICT

    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    learning_rate: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(
        description="SGD's momentum (other optimisers: unused)"
    )
    optimizer: str
    schedule: str
    loss: str
    class_weight_mu: Annotated[float, Field(gt=0)]
    weighted_sampler: bool
    augment: list[str]
    positive_weight: float | None = Field(
        default=None, description="a positive label's weight in a weighted BCE over several outputs"
    )
    samples_per_epoch: int | None = Field(default=None, description="patches per epoch (patch models)")
    patience: int | None = Field(default=None, description="early stopping: epochs without improvement")
    head_epochs: int = Field(default=0, description="epochs training the head alone before fine-tuning")
    fine_tune_factor: float = Field(default=0.1, description="the learning rate's factor after them")
    attention_stride: int | None = Field(
        default=None, description="pixels between the patch centres of the attention maps (core)"
    )
    init_weights: str | None = Field(
        default=None, description="the state dict the network started from (its sha256 in init_sha256)"
    )
    init_sha256: str | None = None
    select_by: str = Field(description="the validation metric that chose the best epoch")
    seed: Annotated[int, Field(ge=0)]
    input_size: tuple[int, int, int] | None = Field(description="x, y, z of the cached input; None: a rule")
    device: Literal["cpu", "cuda"]
    amp: bool = Field(description="bf16 autocast on CUDA")
    loader_workers: Annotated[int, Field(ge=0)]


class RunRecord(BaseModel):
    """``run.json``: what a run is, enough to check it before resuming and to predict with it."""

    model_config = _STRICT

    format: Literal[1] = RUN_FORMAT
    tool_version: str
    torch_version: str
    cuda_version: str
    python_version: str
    model: str
    spec: ModelSpec
    dataset: str = Field(description="the dataset trained on, as given")
    dataset_hash: str = Field(description="sha256 of its manifests (strokedata.splits.dataset_hash)")
    split: str
    split_hash: str = Field(description="the split file's membership hash")
    fold: int | None = Field(
        description="the fold trained (its validation patients validated); None: hold-out"
    )
    train_patients: list[str]
    val_patients: list[str]
    left_out: list[str] = Field(description="patients of the partitions without the task's label")
    parameters: TrainParameters
    cache: str | None = Field(description="the training cache folder (networks)")
    stage1: str | None = Field(
        default=None,
        description="the first stage's run this second stage was trained on (its best.pt "
        "copied here as stage1.pt)",
    )
    best_epoch: int | None = Field(
        default=None, description="the epoch (from 1) whose weights best.pt holds; None: a rule, or none yet"
    )
    best_metric: float | None = Field(
        default=None, description="its validation value of parameters.select_by"
    )

    def same_run(self, other: RunRecord) -> bool:
        """Return True when ``other`` describes the same training (everything but the versions, the cache
        folder and the progress so far)."""
        keep = {
            "tool_version", "torch_version", "cuda_version", "python_version", "cache", "best_epoch",
            "best_metric", "stage1",
        }  # fmt: skip
        return self.model_dump(exclude=keep) == other.model_dump(exclude=keep)


def versions() -> dict[str, str]:
    """Return the tool, torch, CUDA and Python versions a run records ('none' for CUDA without it)."""
    try:
        import torch

        torch_version, cuda = str(torch.__version__), str(torch.version.cuda or "none")
    except ImportError:  # a rule-only environment
        torch_version, cuda = "not installed", "none"
    return {
        "tool_version": __version__,
        "torch_version": torch_version,
        "cuda_version": cuda,
        "python_version": platform.python_version(),
    }


def write_record(folder: Path, record: RunRecord) -> None:
    """Write ``run.json`` into a run folder, atomically."""
    atomic_write_text(folder / RUN_FILE, record.model_dump_json(indent=2) + "\n")


def read_record(folder: Path) -> RunRecord:
    """Return a run folder's record; RunError when there is none or it is unreadable."""
    path = folder / RUN_FILE
    if not path.is_file():
        raise RunError(
            f"{folder} is not a run folder (no {RUN_FILE}); give a folder `strokebench train` wrote"
        )
    try:
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as error:
        raise RunError(f"{path} cannot be read as a run record: {str(error).splitlines()[0]}") from None


def check_version(folder: Path, record: RunRecord) -> None:
    """Raise RunError when a run was made by another version of the tool (its checkpoints may differ)."""
    if record.tool_version != __version__:
        raise RunError(
            f"{folder} was trained by strokebench {record.tool_version}; this is {__version__}: train it "
            f"again, or predict with strokebench {record.tool_version}"
        )


def metric_values(report: Any) -> dict[str, float]:
    """Return a score report's metrics by name, an undefined one (None) as NaN."""
    return {name: float("nan") if m.value is None else m.value for name, m in report.metrics.items()}


def metrics_csv(rows: list[dict[str, float | int]]) -> str:
    """Return per-epoch metrics as CSV text: epoch first, then the columns in the first row's order."""
    if not rows:
        return ""
    columns = list(rows[0])
    lines = [",".join(columns)]
    lines += [",".join(_cell(row.get(column)) for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: float | int | None) -> str:
    """Return a metric as text: integers as they are, floats with 17 significant digits (exact), NaN empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value) if isinstance(value, int) else f"{value:.17g}"
