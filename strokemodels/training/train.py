"""``train``: one model trained (a network) or fitted (a rule) on one fold of a split, into a run folder.

The run folder records everything the run was given (run.json), the metrics of every epoch and the
checkpoints; ``resume`` continues an interrupted run from its last checkpoint, and refuses a folder that
holds another run. Networks train in ``strokemodels.training.networks``, rules fit in ``rules``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from strokedata.executor import Progress
from strokedata.outputs import check_output_folder
from strokedata.splits import dataset_hash
from strokemodels.benchmark.tasks import TASKS
from strokemodels.errors import RunError, ZooError
from strokemodels.registry import ModelEntry, get_model
from strokemodels.training.partitions import TrainingData, training_data
from strokemodels.training.run import (
    RUN_FILE,
    RunRecord,
    TrainParameters,
    check_version,
    read_record,
    versions,
    write_record,
)

Device = Literal["auto", "cpu", "cuda"]
_Number = TypeVar("_Number", int, float)
EpochReport = Callable[[dict[str, float | int]], None]
"""Called with each epoch's metrics row (epoch, train_loss, lr, val_...)."""


@dataclass(frozen=True)
class TrainRequest:
    """What ``strokebench train`` asks for; None takes the model's recipe (the paper's)."""

    model: str
    dataset: Path
    split: Path
    out: Path
    fold: int | None = None
    task: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    select_by: str | None = None
    input_size: tuple[int, int, int] | None = None
    seed: int = 0
    device: Device = "auto"
    amp: bool = False
    loader_workers: int = 0
    jobs: int | None = None
    cache_root: Path | None = None
    resume: bool = False
    stage1: Path | None = None
    attention_stride: int | None = None
    samples_per_epoch: int | None = None
    head_epochs: int | None = None
    init_weights: Path | None = None


def resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    """Return the device to train on: CUDA when asked or ``auto`` finds one, else the CPU; RunError when
    CUDA is asked for and absent."""
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise RunError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return "cuda" if device == "cuda" or (device == "auto" and available) else "cpu"


RECIPE_AS_IS = {
    "weight_decay", "momentum", "optimizer", "schedule", "loss", "class_weight_mu", "weighted_sampler",
    "augment", "positive_weight", "patience", "fine_tune_factor",
}  # fmt: skip
"""The recipe's values a run takes as they are (the others can be overridden by the request)."""


def _parameters(entry: ModelEntry, request: TrainRequest) -> TrainParameters:
    """Return the run's parameters: the request's, the recipe's where the request gives none."""
    spec, recipe = entry.spec, entry.spec.recipe
    card = TASKS[spec.task]
    select_by = request.select_by or recipe.select_by or card.primary
    if select_by not in card.metrics:
        raise ZooError(
            f"--select-by {select_by}: not a metric of {spec.task}; choose one of {', '.join(card.metrics)}"
        )
    if request.learning_rate is not None and not request.learning_rate > 0:
        raise ZooError(f"--lr {request.learning_rate}: a learning rate must be above 0")
    learned = spec.kind == "learned"
    return TrainParameters(
        epochs=_given(request.epochs, recipe.epochs) if learned else 1,
        batch_size=_given(request.batch_size, recipe.batch_size),
        learning_rate=_given(request.learning_rate, recipe.learning_rate),
        **recipe.model_dump(include=RECIPE_AS_IS),
        select_by=select_by,
        seed=request.seed,
        input_size=(request.input_size or _paper_size(spec.input_shape)) if learned else None,
        device=resolve_device(request.device) if learned else "cpu",
        amp=request.amp,
        loader_workers=request.loader_workers,
        head_epochs=_given(request.head_epochs, recipe.head_epochs),
        samples_per_epoch=_given(request.samples_per_epoch, recipe.samples_per_epoch)
        if recipe.samples_per_epoch is not None
        else None,
        attention_stride=_given(request.attention_stride, recipe.attention_stride)
        if recipe.attention_stride is not None
        else None,
        init_weights=None if request.init_weights is None else str(request.init_weights),
        init_sha256=None if request.init_weights is None else _sha256(request.init_weights),
    )


def _sha256(path: Path) -> str:
    """Return the sha256 of a file; RunError naming it when it cannot be read."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise RunError(f"--init-weights {path} cannot be read: {error.strerror}") from None


def _given(asked: _Number | None, recipe: _Number) -> _Number:
    """Return what the request asked for, the recipe's value when it asked for nothing."""
    return recipe if asked is None else asked


def _paper_size(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return the spatial size (x, y, z) of a spec's input shape."""
    return (shape[1], shape[2], shape[3]) if len(shape) == 4 else (shape[1], shape[2], 1)


def _record(entry: ModelEntry, request: TrainRequest, data: TrainingData) -> RunRecord:
    found = versions()
    return RunRecord(
        tool_version=found["tool_version"],
        torch_version=found["torch_version"],
        cuda_version=found["cuda_version"],
        python_version=found["python_version"],
        model=entry.spec.name,
        spec=entry.spec,
        dataset=str(request.dataset),
        dataset_hash=dataset_hash(data.dataset),
        split=str(request.split),
        split_hash=data.split.membership_hash,
        fold=data.fold,
        train_patients=[m.patient_id for m in data.train],
        val_patients=[m.patient_id for m in data.val],
        left_out=data.left_out,
        parameters=_parameters(entry, request),
        cache=None,
        stage1=None if request.stage1 is None else str(request.stage1),
    )


def _prepare(folder: Path, record: RunRecord, resume: bool) -> None:
    """Create the run folder, or check that it holds this very run when resuming; RunError otherwise."""
    check_output_folder(folder, "--out")
    if (folder / RUN_FILE).is_file():
        existing = read_record(folder)
        if not resume:
            raise RunError(
                f"{folder} holds a run already: continue it with --resume, or choose another --out"
            )
        check_version(folder, existing)
        if not existing.same_run(record):
            raise RunError(
                f"{folder} holds another run ({existing.model}, fold {existing.fold}, other data or "
                "parameters); --resume continues only the same run: choose another --out"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise RunError(f"--out {folder} is not empty and holds no run; choose an empty or new folder")
    folder.mkdir(parents=True, exist_ok=True)


def train(
    request: TrainRequest, progress: Progress | None = None, on_epoch: EpochReport | None = None
) -> Path:
    """Train (or fit) ``request.model`` on its fold and return the run folder.

    Raises ZooError for an unknown model or one of another task, RunError for a dataset, split or run
    folder that does not fit, and StrokedataError subclasses for unreadable data.
    """
    entry = get_model(request.model)
    if request.task is not None and request.task != entry.spec.task:
        raise ZooError(
            f"{request.model} is a {entry.spec.task} model, not a {request.task} one "
            f"(`strokebench models --task {request.task}` lists those)"
        )
    if entry.spec.stage_of is not None and request.stage1 is None and not request.resume:
        raise ZooError(
            f"{request.model} is the second stage of {entry.spec.stage_of}: give --stage1 RUN, a "
            f"{entry.spec.stage_of} run of the same split and fold"
        )
    data = training_data(request.dataset, request.split, request.fold, entry.spec)
    record = _record(entry, request, data)
    _prepare(request.out, record, request.resume)
    if entry.spec.kind == "rule":
        from strokemodels.training.rules import fit_rule

        write_record(request.out, record)
        fit_rule(entry, record, data, request.out, request.jobs)
        return request.out
    from strokemodels.training.networks import fit_network

    fit_network(entry, record, data, request, progress, on_epoch)
    return request.out
