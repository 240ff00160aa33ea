"""Fitting a rule on the training partition: its state saved as ``rule.json`` (the model's name and spec
inside, like a network's checkpoint), and its validation figures scored by the benchmark's own code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strokedata.dataset import Dataset
from strokedata.io import atomic_write_text
from strokedata.manifest import PatientManifest
from strokemodels.benchmark.scoring import score_files
from strokemodels.errors import RunError
from strokemodels.registry import ModelEntry
from strokemodels.spec import ModelSpec
from strokemodels.training.outputs import Output, write_predictions
from strokemodels.training.partitions import TrainingData, rule_patients
from strokemodels.training.run import METRICS_FILE, RULE, RunRecord, metric_values, metrics_csv
from strokemodels.zoo.rules import RuleModel

VALIDATION = "validation.csv"


def rule_outputs(
    spec: ModelSpec, rule: RuleModel, dataset: Dataset, manifests: Sequence[PatientManifest]
) -> dict[str, Output]:
    """Return the rule's output for each patient (a core mask with its grid's affine)."""
    outputs = {}
    for patient in rule_patients(spec, dataset, manifests, labels=False):
        affine = patient.images[spec.inputs[0]][1] if spec.inputs else None
        outputs[patient.patient_id] = Output(rule.predict(patient), affine)
    return outputs


def fit_rule(
    entry: ModelEntry, record: RunRecord, data: TrainingData, folder: Path, jobs: int | None = None
) -> None:
    """Fit the rule on the training patients, save its state, and score it on the validation patients
    (the benchmark's scoring, against the truth of the split's validation partition, reading masks with
    ``jobs`` worker processes: all cores when None)."""
    spec = entry.spec
    rule: RuleModel = entry.build(spec, record.parameters.seed)
    try:
        rule.fit(rule_patients(spec, data.dataset, data.train, labels=True))
    except ValueError as error:
        raise RunError(f"{spec.name} cannot be fitted on {record.dataset}: {error}") from None
    payload = {"format": 1, "model": spec.name, "spec": spec.model_dump(mode="json"), "state": rule.state()}
    atomic_write_text(folder / RULE, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    validation = folder / VALIDATION
    outputs = rule_outputs(spec, rule, data.dataset, data.val)
    write_predictions(spec.task, outputs, validation, slice_level=spec.task == "clot-regions")
    [report] = score_files(
        spec.task,
        validation,
        dataset=Path(record.dataset),
        split=Path(record.split),
        partition=data.val_partition,
        bootstrap=0,
        workers=jobs,
    )
    row: dict[str, float | int] = {"epoch": 1}
    row.update({f"val_{name}": value for name, value in metric_values(report).items()})
    atomic_write_text(folder / METRICS_FILE, metrics_csv([row]))


def load_rule(folder: Path, entry: ModelEntry) -> Any:
    """Return the rule of a run folder, its fitted state restored; RunError when ``rule.json`` is missing
    or names another model."""
    path = folder / RULE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{folder} has no readable {RULE}: the rule was never fitted there") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
        raise RunError(f"{path} is not a fitted rule's state; train the run again")
    if payload.get("model") != entry.spec.name:
        raise RunError(f"{path} holds {payload.get('model')}, not {entry.spec.name}")
    rule = entry.build(entry.spec, 0)
    try:
        rule.load_state(payload["state"])
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(
            f"{path} does not hold {entry.spec.name}'s state ({error!r}); train the run again"
        ) from None
    return rule
