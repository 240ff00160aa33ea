"""What ``strokebench run`` does for each task: the paper's split protocol, the models it trains by
default, the preprocessing and training settings of each budget, and whether a dataset can serve it.

Protocols (docs/splits.md): occlusion (Papakyriakou et al.) 15% test + 5 stratified folds, the fold
models voting on the test partition; recanalization (Zhang, Polson et al.) stratified 5-fold
cross-validation; core (de Vries et al.) 4 folds, patients grouped; clot-regions (the AMI-Net report)
64 / 16 / 20 train / validation / test, stratified by regions. Where a protocol has no test partition,
each fold's model predicts its own validation patients and those out-of-fold predictions are scored,
pooled and per fold, as the papers report cross-validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from strokedata.manifest import Modality, PatientManifest
from strokemodels.spec import ModelSpec

Budget = Literal["quick", "paper"]
TASK_ORDER = ("occlusion", "recanalization", "core", "clot-regions")
MAPS = frozenset({Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX})
"""Modalities ``strokedata perfusion`` makes from a CTP when a dataset lacks them."""


@dataclass(frozen=True)
class Protocol:
    """A task's split (``strokedata.splits.make_split`` arguments) as its paper made it."""

    stratify: tuple[str, ...]
    test_size: float
    folds: int | None = None
    val_size: float | None = None
    description: str = ""

    def arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of ``make_split`` for this protocol."""
        return {
            "stratify": list(self.stratify),
            "test_size": self.test_size,
            "folds": self.folds,
            "val_size": self.val_size,
        }

    @property
    def has_test(self) -> bool:
        """Return True when the protocol holds a test partition out (else: out-of-fold predictions)."""
        return self.test_size > 0


PROTOCOLS = {
    "occlusion": Protocol(("occlusion",), 0.15, folds=5, description="15% test, 5 stratified folds"),
    "recanalization": Protocol(
        ("recanalization",), 0.0, folds=5, description="stratified 5-fold cross-validation"
    ),
    "core": Protocol(("side",), 0.0, folds=4, description="4-fold cross-validation, a patient in one fold"),
    "clot-regions": Protocol(
        ("regions",), 0.2, val_size=0.2, description="64 / 16 / 20 train / validation / test"
    ),
}

DEFAULT_MODELS = {
    "occlusion": ("majority-occlusion", "tmax-territory", "cbam3d"),
    "recanalization": ("majority-recanalization", "radiomics-logreg", "scanet"),
    "core": ("rcbf-threshold", "ctp-transformer"),
    "clot-regions": ("majority-regions", "spiral-threshold", "cnn4"),
}
"""The models a run trains unless ``--models`` names others: the rule baselines and one network each."""

QUICK_PIPELINES: dict[str, dict[str, Any]] = {
    "occlusion": {"registration": None},
    "recanalization": {"registration": None},
    "clot-regions": {"window": "angiography"},
}
"""Preprocessing overrides of the quick budget (registration off: seconds instead of minutes)."""

QUICK_TRAINING: dict[str, dict[str, Any]] = {
    "cbam3d": {"epochs": 2, "input_size": (64, 64, 16), "batch_size": 4},
    "resnet18-cbam3d": {"epochs": 2, "input_size": (64, 64, 16), "batch_size": 4},
    "scanet": {"epochs": 2, "input_size": (32, 32, 16), "batch_size": 4},
    "resnet34-2d": {"epochs": 2, "input_size": (32, 32, 16), "batch_size": 4},
    "ctp-transformer": {"epochs": 1, "samples_per_epoch": 64, "attention_stride": 16, "batch_size": 16},
    "ctp-unet": {"epochs": 2, "attention_stride": 16, "batch_size": 16},
    "cnn4": {"epochs": 2, "input_size": (64, 64, 1), "batch_size": 8},
    "mobilenetv2": {"epochs": 1, "input_size": (64, 64, 1), "batch_size": 8},
    "efficientformerv2": {"epochs": 1, "input_size": (64, 64, 1), "batch_size": 8},
}
"""Training overrides of the quick budget: few epochs, small inputs (CPU minutes on phantoms)."""


def pipeline_parameters(task: str, pipeline: str, budget: Budget) -> dict[str, Any]:
    """Return the preprocessing overrides of ``pipeline`` for ``task`` under ``budget`` ({}: the paper's)."""
    if budget == "paper" or pipeline != task:
        return {}
    return dict(QUICK_PIPELINES.get(task, {}))


def training_parameters(model: str, budget: Budget) -> dict[str, Any]:
    """Return the ``TrainRequest`` overrides of ``model`` under ``budget`` ({}: the paper's recipe)."""
    return {} if budget == "paper" else dict(QUICK_TRAINING.get(model, {}))


@dataclass
class TaskPlan:
    """One task of a run: the models it trains (in order: a first stage before its second) and the
    models and reasons left out."""

    task: str
    models: list[ModelSpec] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    perfused: set[str] = field(default_factory=set)
    """The models that read maps computed from the CTP (``strokedata perfusion``)."""


def _missing(spec: ModelSpec, patients: list[PatientManifest]) -> tuple[list[Modality], bool]:
    """Return (the inputs of ``spec`` some patient lacks, whether the CTP could supply them all)."""
    lacking = sorted({m for p in patients for m in spec.inputs if m not in p.images}, key=str)
    perfusable = bool(lacking) and set(lacking) <= MAPS and all(Modality.CTP in p.images for p in patients)
    return lacking, perfusable


def plan_task(task: str, specs: list[ModelSpec], patients: list[PatientManifest]) -> TaskPlan:
    """Return the plan of ``task`` for the chosen ``specs`` over the task's labelled ``patients``: a
    model whose inputs some patient lacks is left out with the reason, unless the maps it lacks can be
    computed from every such patient's CTP (``perfused``); a second stage without its first is left
    out too."""
    plan = TaskPlan(task)
    for spec in specs:
        lacking, perfusable = _missing(spec, patients)
        if lacking and not perfusable:
            counts = ", ".join(f"{sum(m not in p.images for p in patients)} lack {m.value}" for m in lacking)
            plan.left_out[spec.name] = f"of {len(patients)} labelled patients, {counts}"
            continue
        if perfusable:
            plan.perfused.add(spec.name)
        plan.models.append(spec)
    chosen = {spec.name for spec in plan.models}
    for spec in list(plan.models):
        if spec.stage_of is not None and spec.stage_of not in chosen:
            plan.models.remove(spec)
            plan.left_out[spec.name] = f"the second stage of {spec.stage_of}, which is not trained: add it"
    plan.models.sort(key=lambda spec: spec.stage_of is not None)  # first stages first
    return plan
