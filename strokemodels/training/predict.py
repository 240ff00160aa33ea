"""``predict``: one or several runs (a fold ensemble) over a dataset or one split partition, written as
the task's predictions CSV that ``strokebench score`` reads.

Members must share the task, the inputs and the preprocessing; each run must come from this version of
the tool. A network predicts from its best checkpoint through the training cache; a rule from its
fitted state. Papakyriakou et al.'s ensemble votes with the best model of each fold (the default);
``mean`` averages the probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from strokedata import load_dataset
from strokedata.dataset import Dataset
from strokedata.executor import Progress
from strokedata.manifest import PatientManifest
from strokedata.outputs import check_output_file
from strokedata.splits import read_split, select_partition
from strokemodels.errors import RunError
from strokemodels.registry import get_model
from strokemodels.spec import ModelSpec
from strokemodels.training.outputs import Ensemble, Output, combine, write_predictions
from strokemodels.training.partitions import check_inputs, check_pipeline, check_split_fits
from strokemodels.training.run import BEST, RunRecord, check_version, read_record


@dataclass(frozen=True)
class PredictRequest:
    """What ``strokebench predict`` asks for."""

    runs: tuple[Path, ...]
    dataset: Path
    out: Path
    split: Path | None = None
    partition: str | None = None
    ensemble: Ensemble = "vote"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    slice_level: bool = False
    skip_empty_slices: bool = False
    jobs: int | None = None
    cache_root: Path | None = None
    loader_workers: int = 0


@dataclass(frozen=True)
class PredictSummary:
    """What a prediction wrote: the file, the task, how many patients and ensemble members, and the
    predicted patients some member trained or validated on (their figures flatter the model)."""

    out: Path
    task: str
    patients: int
    members: int
    seen_in_training: list[str]


def _members(runs: tuple[Path, ...]) -> list[tuple[Path, RunRecord]]:
    """Return each run's record, checked: from this tool version, one task, inputs and pipeline."""
    if not runs:
        raise RunError("give at least one --run")
    members = [(run, read_record(run)) for run in runs]
    for run, record in members:
        check_version(run, record)
    first = members[0][1].spec

    def described(spec: ModelSpec) -> str:
        inputs = ", ".join(m.value for m in spec.inputs) or "none"
        return f"{spec.name}: {spec.task}, inputs {inputs}, pipeline {spec.pipeline}"

    for run, record in members[1:]:
        spec = record.spec
        if (spec.task, spec.inputs, spec.pipeline) != (first.task, first.inputs, first.pipeline):
            raise RunError(
                f"{run} ({described(spec)}) cannot join an ensemble with {members[0][0]} "
                f"({described(first)}): members share the task, the inputs and the preprocessing"
            )
    return members


def _patients(request: PredictRequest, dataset: Dataset) -> list[PatientManifest]:
    if (request.split is None) != (request.partition is None):
        raise RunError("give --split and --partition together, or neither")
    manifests = list(dataset)
    if request.split is not None:
        check_split_fits(dataset, read_split(request.split), request.split)
        manifests = select_partition(manifests, request.split, request.partition or "")
    return manifests


def _network_outputs(
    run: Path, record: RunRecord, dataset: Dataset, manifests: list[PatientManifest], request: PredictRequest
) -> dict[str, Output]:
    """Return a network's class probabilities for every patient, from its best checkpoint."""
    from torch.utils.data import DataLoader

    from strokemodels.training.cache import CacheSpec, build_cache, default_cache_root
    from strokemodels.training.checkpoints import load_checkpoint
    from strokemodels.training.inputs import CachedInputs
    from strokemodels.training.train import resolve_device
    from strokemodels.training.volumes import predict_probabilities

    path = run / BEST
    if not path.is_file():
        raise RunError(
            f"{run} has no {BEST}: its training ended before a validated epoch; train or resume it"
        )
    entry = get_model(record.model)
    checkpoint = load_checkpoint(path, record.model)
    device = resolve_device(request.device)
    # the spec the run trained with, at the size it trained at
    model = entry.build(record.spec.at_size(record.parameters.input_size), record.parameters.seed)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError) as error:
        reason = str(error).splitlines()[0]
        raise RunError(
            f"{path} does not fit the {record.model} network ({reason}); train the run again"
        ) from None
    model.to(device)
    size = record.parameters.input_size or (1, 1, 1)
    if record.spec.sample == "patch" or record.spec.stage_of is not None:
        from strokemodels.training.core import core_outputs

        return core_outputs(run, record, model, dataset, manifests, device, request.cache_root)
    layout: Literal["volume", "slices"] = "slices" if record.spec.sample == "slice" else "volume"
    cache = build_cache(
        dataset.root,
        manifests,
        CacheSpec(tuple(record.spec.inputs), size, record.spec.pipeline, layout=layout),
        cache_root=request.cache_root or default_cache_root(),
        jobs=request.jobs,
    )
    ids = list(cache.arrays)
    if layout == "slices":
        import numpy as np

        from strokemodels.training.inference import CPU_BATCH, SliceRunner

        batch = CPU_BATCH if device == "cpu" else record.parameters.batch_size
        runner = SliceRunner(model, batch=batch, device=device, amp=record.parameters.amp)  # frozen once
        skip = request.skip_empty_slices
        return {
            pid: Output(runner(np.load(cache.arrays[pid], mmap_mode="r"), skip_empty=skip)) for pid in ids
        }
    loader = DataLoader(
        CachedInputs([cache.arrays[pid] for pid in ids], [0] * len(ids)),
        batch_size=record.parameters.batch_size,
        num_workers=request.loader_workers,
    )
    found = predict_probabilities(model, loader, ids, device, record.parameters.amp)
    return {pid: Output(values) for pid, values in found.items()}


def predict(request: PredictRequest, progress: Progress | None = None) -> PredictSummary:
    """Run every member over the patients, combine them and write the predictions CSV; return what was
    written. Raises RunError for runs that do not fit together or the data, ZooError for a model that
    is no longer registered."""
    from strokemodels.training.rules import load_rule, rule_outputs

    check_output_file(request.out, "--out")
    members = _members(request.runs)
    dataset = load_dataset(request.dataset)
    manifests = _patients(request, dataset)
    spec = members[0][1].spec
    check_pipeline(dataset, spec, manifests)
    check_inputs(dataset, spec, manifests)
    outputs: list[dict[str, Output]] = []
    for done, (run, record) in enumerate(members, start=1):
        if record.spec.kind == "rule":
            rule = load_rule(run, get_model(record.model))
            outputs.append(rule_outputs(record.spec, rule, dataset, manifests))
        else:
            outputs.append(_network_outputs(run, record, dataset, manifests, request))
        if progress is not None:
            progress("members", done, len(members))
    combined = {
        m.patient_id: combine(spec.task, [found[m.patient_id] for found in outputs], request.ensemble)
        for m in manifests
    }
    write_predictions(spec.task, combined, request.out, slice_level=request.slice_level)
    seen = {pid for _, record in members for pid in (*record.train_patients, *record.val_patients)}
    return PredictSummary(request.out, spec.task, len(combined), len(members), sorted(seen & set(combined)))
