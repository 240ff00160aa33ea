"""What a training run reads: the dataset (checked against the model's pipeline), the split's training
and validation patients for a fold, each patient's label in the task's form, and the images a rule reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strokedata import load_dataset
from strokedata.dataset import Dataset
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.labels import favourable_recanalization, occlusion_class_index
from strokedata.manifest import Modality, PatientManifest
from strokedata.splits import SplitFile, read_split
from strokemodels.errors import RunError
from strokemodels.spec import ModelSpec
from strokemodels.zoo.rules import PatientImages, slice_regions


@dataclass(frozen=True)
class TrainingData:
    """The patients a run trains and validates on, with the split and the dataset they come from."""

    dataset: Dataset
    split: SplitFile
    fold: int | None
    train: list[PatientManifest]
    val: list[PatientManifest]
    val_partition: str
    left_out: list[str]


def check_pipeline(dataset: Dataset, spec: ModelSpec, patients: Sequence[PatientManifest]) -> None:
    """Raise RunError unless every patient was preprocessed by the model's pipeline (or the model reads the
    canonical dataset as it is)."""
    if spec.pipeline == "none":
        return
    wrong = [
        m.patient_id
        for m in patients
        if m.provenance.preprocessing is None or m.provenance.preprocessing.pipeline != spec.pipeline
    ]
    if wrong:
        shown = ", ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else "")
        raise RunError(
            f"{spec.name} reads the output of the '{spec.pipeline}' pipeline, and {len(wrong)} patient(s) "
            f"of {dataset.root} were not preprocessed by it ({shown}): run `strokedata preprocess "
            f"{dataset.root} --task {spec.pipeline} --out PREPROCESSED` and use that dataset"
        )


def task_label(task: str, manifest: PatientManifest) -> int | None:
    """Return a patient's label for a classification task: the occlusion class index (ICA-T 0, M1 1, M2
    2) or favourable recanalization (1, else 0); None when unknown (or for a task labelled by images)."""
    if task == "occlusion":
        return occlusion_class_index(manifest.labels.occlusion_location)
    if task == "recanalization":
        favourable = favourable_recanalization(manifest.labels.mtici)
        return None if favourable is None else int(favourable)
    return None


def _labelled(spec: ModelSpec, manifests: list[PatientManifest]) -> tuple[list[PatientManifest], list[str]]:
    """Return the patients with the task's label (all, for tasks labelled by images) and the others' ids."""
    if spec.task not in ("occlusion", "recanalization"):
        return manifests, []
    kept = [m for m in manifests if task_label(spec.task, m) is not None]
    return kept, sorted({m.patient_id for m in manifests} - {m.patient_id for m in kept})


def training_data(dataset_path: Path, split_path: Path, fold: int | None, spec: ModelSpec) -> TrainingData:
    """Return the patients of a fold (or of the hold-out train/val partitions), checked: the split names
    patients of this dataset, the dataset went through the model's pipeline, the fold exists."""
    dataset = load_dataset(dataset_path)
    split = read_split(split_path)
    partitions = split.partitions()
    absent = sorted({pid for ids in partitions.values() for pid in ids} - set(dataset.ids))
    if absent:
        raise RunError(
            f"{split_path} names {len(absent)} patient(s) that {dataset_path} lacks "
            f"({', '.join(absent[:5])}): it was made for another dataset; make a split of this one with "
            "`strokedata split`"
        )
    if split.folds is not None:
        if fold is None or not 0 <= fold < len(split.folds):
            raise RunError(
                f"{split_path} has {len(split.folds)} folds: give --fold 0..{len(split.folds) - 1} or "
                "--all-folds"
            )
        train_ids, val_ids, val_name = split.folds[fold].train, split.folds[fold].val, f"fold{fold}"
    else:
        if fold is not None:
            raise RunError(f"{split_path} is a hold-out split without folds: leave out --fold")
        train_ids, val_ids, val_name = split.train or [], split.val or [], "val"
    chosen = {pid: dataset.patients[pid] for pid in (*train_ids, *val_ids)}
    check_pipeline(dataset, spec, list(chosen.values()))
    train, left_train = _labelled(spec, [chosen[pid] for pid in sorted(train_ids)])
    val, left_val = _labelled(spec, [chosen[pid] for pid in sorted(val_ids)])
    if not train or not val:
        raise RunError(f"the {'training' if not train else 'validation'} partition holds no labelled patient")
    return TrainingData(dataset, split, fold, train, val, val_name, sorted(left_train + left_val))


def _image(dataset: Dataset, manifest: PatientManifest, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    volume = read_volume(dataset.image_path(manifest.patient_id, modality), MAX_VOXELS)
    return np.asarray(volume.scaled(), dtype=np.float32), volume.header.affine


def rule_label(spec: ModelSpec, dataset: Dataset, manifest: PatientManifest) -> Any:
    """Return a patient's label as a rule fits it: a class index (occlusion, recanalization), the CORE
    mask (core), or the regions of every slice (clot-regions, from CLOT x ATLAS)."""
    if spec.task in ("occlusion", "recanalization"):
        return task_label(spec.task, manifest)
    if spec.task == "core":
        return _image(dataset, manifest, Modality.CORE)[0] > 0
    clot = _image(dataset, manifest, Modality.CLOT)[0]
    atlas = np.rint(_image(dataset, manifest, Modality.ATLAS)[0]).astype(np.int64)
    return slice_regions(clot > 0, atlas)


def rule_patients(
    spec: ModelSpec, dataset: Dataset, manifests: Sequence[PatientManifest], *, labels: bool
) -> list[PatientImages]:
    """Return the patients as a rule reads them: the spec's input images, the pipeline's parameters, and
    the label when ``labels``."""
    return [
        PatientImages(
            patient_id=m.patient_id,
            images={modality: _image(dataset, m, modality) for modality in spec.inputs},
            label=rule_label(spec, dataset, m) if labels else None,
            pipeline_parameters=dict(m.provenance.preprocessing.parameters)
            if m.provenance.preprocessing
            else {},
        )
        for m in manifests
    ]
