"""Two things a run records for each task beside its scores: the split's balance (each partition's
patients by the task's label) and the commands that reproduce each step by hand."""

from __future__ import annotations

from collections import Counter
from typing import Any

from strokedata.manifest import PatientManifest
from strokedata.splits import read_split
from strokemodels.benchmark.files import Rows
from strokemodels.report.plan import PROTOCOLS, TaskPlan, training_parameters


def _label(task: str, value: Any, manifest: PatientManifest, regions: list[str]) -> list[str]:
    """Return the label values a patient counts under in the balance table of ``task``."""
    if task == "occlusion":
        return [str(value)]
    if task == "recanalization":
        return ["favourable" if value else "unfavourable"]
    if task == "core":
        return [f"side {manifest.labels.occlusion_side or 'missing'}"]
    held = [regions[index] for index, flag in enumerate(value) if flag]
    return held or ["no region"]


def partition_balance(
    task: str, truth: Rows, split: Any, manifests: list[PatientManifest], regions: list[str]
) -> dict[str, dict[str, int]]:
    """Return {partition: {label value: patients}} of the split file ``split`` (empty partitions left
    out); clot-regions counts a patient under each region (named by ``regions``) holding clot."""
    by_id = {m.patient_id: m for m in manifests}
    balance = {}
    for name, ids in read_split(split).partitions().items():
        counts: Counter[str] = Counter()
        for pid in ids:
            if pid in truth.values:
                counts.update(_label(task, truth.values[pid], by_id[pid], regions))
        if counts:
            balance[name] = dict(sorted(counts.items()))
    return balance


def _assignments(parameters: dict[str, object]) -> str:
    """Return ``--set NAME=VALUE`` options (JSON values) for pipeline parameters."""
    import json

    return "".join(f" --set '{name}={json.dumps(value)}'" for name, value in parameters.items())


def _train_options(model: str, budget: str) -> str:
    """Return the ``strokebench train`` options of a model's budget overrides."""
    flags = {
        "epochs": "--epochs",
        "batch_size": "--batch-size",
        "samples_per_epoch": "--patches-per-epoch",
        "attention_stride": "--attention-stride",
        "input_size": "--input-size",
    }
    parts = []
    for name, value in training_parameters(model, budget).items():  # type: ignore[arg-type]
        shown = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        parts.append(f" {flags[name]} {shown}")
    return "".join(parts)


def reproduce(task: str, plan: TaskPlan, context: Any, parameters: dict[str, dict[str, object]]) -> list[str]:
    """Return the commands that make each step of ``task`` by hand, on a dataset called DATASET (made
    by ``context.origin`` when the run generated it), in a folder of the user's (the run's own work
    folders are named by their inputs' keys)."""
    protocol = PROTOCOLS[task]
    split = f"strokedata split DATASET --stratify {' --stratify '.join(protocol.stratify)} "
    split += f"--test-size {protocol.test_size:g} --seed {context.seed} "
    split += f"--folds {protocol.folds}" if protocol.folds else f"--val-size {protocol.val_size:g}"
    commands = [context.origin] if context.origin else []
    if plan.perfused:
        commands.append("strokedata perfusion DATASET --out DATASET-maps")
    commands.append(f"{split} --missing own-stratum --out {task}-split.json")
    device = f" --device {context.device}"
    made = set()
    for spec in plan.models:
        source = "DATASET-maps" if spec.name in plan.perfused else "DATASET"
        data = source if spec.pipeline == "none" else f"{task}-{spec.pipeline}"
        if spec.pipeline != "none" and (spec.pipeline, source) not in made:
            made.add((spec.pipeline, source))
            given = _assignments(parameters.get(spec.pipeline, {}))
            commands.append(f"strokedata preprocess {source} --task {spec.pipeline} --out {data}{given}")
        folds = " --all-folds" if protocol.folds else ""
        stage = f" --stage1 runs/{spec.stage_of}" if spec.stage_of else ""
        commands.append(
            f"strokebench train --task {task} --model {spec.name} --dataset {data} "
            f"--split {task}-split.json{folds}{_train_options(spec.name, context.budget)} "
            f"--seed {context.seed}{stage}{device} --out runs/{spec.name}"
        )
        if protocol.has_test:
            skip = " --skip-empty-slices" if spec.sample == "slice" else ""
            commands.append(
                f"strokebench predict --run runs/{spec.name} --dataset {data} --split {task}-split.json "
                f"--partition test{skip}{device} --out {spec.name}.csv"
            )
            where = f"--dataset {data} --split {task}-split.json --partition test"
        else:
            commands.append(
                f"strokebench predict --run runs/{spec.name}/foldK --dataset {data} "
                f"--split {task}-split.json --partition foldK{device} --out {spec.name}-foldK.csv"
                "   # each fold K; then one file with a fold column"
            )
            where = f"--dataset {data}"
        commands.append(f"strokebench score {spec.name}.csv --task {task} {where} --name {spec.name}")
    return commands
