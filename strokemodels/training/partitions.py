"""What a training run reads: the dataset (checked against the model's pipeline), the split's training
and validation patients for a fold, each patient's label in the task's form, and the images a rule reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from strokedata import load_dataset
from strokedata.dataset import Dataset
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.labels import favourable_recanalization, occlusion_class_index
from strokedata.manifest import Modality, PatientManifest
from strokedata.splits import SplitFile, dataset_hash, read_split
from strokemodels.errors import RunError
from strokemodels.spec import ModelSpec
from strokemodels.zoo.rules import PatientImages, slice_regions

LABEL_IMAGES = {"core": [Modality.CORE], "clot-regions": [Modality.CLOT, Modality.ATLAS]}
"""The images a rule's label is read from, by task (the others' labels are in patient.json)."""


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


def check_split_fits(dataset: Dataset, split: SplitFile, split_path: Path) -> None:
    """Raise RunError unless the split was made on this dataset or on a dataset it was preprocessed from:
    every patient it names is here, and its dataset hash is this dataset's or one of its sources'."""
    absent = sorted({pid for ids in split.partitions().values() for pid in ids} - set(dataset.ids))
    if absent:
        raise RunError(
            f"{split_path} names {len(absent)} patient(s) that {dataset.root} lacks "
            f"({', '.join(absent[:5])}): it was made for another dataset; make a split of this one with "
            "`strokedata split`"
        )
    if split.dataset_hash not in (dataset_hash(dataset), *dataset.card.derived_from):
        raise RunError(
            f"{split_path} was made on another dataset than {dataset.root} (or on it before it changed): "
            "its dataset hash is neither this dataset's nor that of a dataset it was preprocessed from "
            f"(a complete `strokedata preprocess` run records those). `strokedata validate {dataset.root} "
            f"--split {split_path}` shows what differs; make a split of this dataset with `strokedata split`"
        )


def check_inputs(
    dataset: Dataset, spec: ModelSpec, patients: Sequence[PatientManifest], *, labels: bool = False
) -> None:
    """Raise RunError naming the patients that lack an image the model reads (or, with ``labels``, the
    image a rule's label comes from: CORE for core, CLOT and ATLAS for clot-regions)."""
    needed = list(spec.inputs)
    if labels:
        needed += LABEL_IMAGES.get(spec.task, [])
    lacking = [
        f"{m.patient_id} ({', '.join(x.value for x in needed if x not in m.images)})"
        for m in patients
        if any(x not in m.images for x in needed)
    ]
    if lacking:
        shown = "; ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        raise RunError(
            f"{spec.name} reads {', '.join(x.value for x in needed)}, and {len(lacking)} patient(s) of "
            f"{dataset.root} lack some: {shown}. Add the images, or split a dataset without "
            "those patients"
        )


def training_data(dataset_path: Path, split_path: Path, fold: int | None, spec: ModelSpec) -> TrainingData:
    """Return the patients of a fold (or of the hold-out train/val partitions), checked: the split was
    made on this dataset (or its source), the dataset went through the model's pipeline, every patient
    has the images the model reads, the fold exists."""
    dataset = load_dataset(dataset_path)
    check_pipeline(dataset, spec, list(dataset))
    split = read_split(split_path)
    check_split_fits(dataset, split, split_path)
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
    train, left_train = _labelled(spec, [chosen[pid] for pid in sorted(train_ids)])
    val, left_val = _labelled(spec, [chosen[pid] for pid in sorted(val_ids)])
    if not train or not val:
        raise RunError(f"the {'training' if not train else 'validation'} partition holds no labelled patient")
    check_inputs(dataset, spec, [*train, *val], labels=spec.kind == "rule")
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


class _PatientImagesOnDisk(Mapping[Modality, tuple[np.ndarray, np.ndarray]]):
    """A patient's input images, each read when first asked for (and then kept with the patient)."""

    def __init__(self, dataset: Dataset, manifest: PatientManifest, inputs: Sequence[Modality]) -> None:
        self.dataset, self.manifest, self.inputs = dataset, manifest, list(inputs)
        self.read: dict[Modality, tuple[np.ndarray, np.ndarray]] = {}

    def __getitem__(self, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
        if modality not in self.inputs:
            raise KeyError(modality)
        if modality not in self.read:
            self.read[modality] = _image(self.dataset, self.manifest, modality)
        return self.read[modality]

    def __iter__(self) -> Iterator[Modality]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)


class RulePatients(Sequence[PatientImages]):
    """The patients as a rule reads them, one at a time: item i is built when asked for (its label, and
    its images when first touched), so a rule that keeps features rather than patients holds one
    patient's images at a time, whatever the partition's size."""

    def __init__(
        self, spec: ModelSpec, dataset: Dataset, manifests: Sequence[PatientManifest], *, labels: bool
    ) -> None:
        self.spec, self.dataset, self.manifests, self.labels = spec, dataset, list(manifests), labels

    def __len__(self) -> int:
        """Return the number of patients."""
        return len(self.manifests)

    @overload
    def __getitem__(self, index: int) -> PatientImages: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PatientImages]: ...

    def __getitem__(self, index: int | slice) -> PatientImages | Sequence[PatientImages]:
        """Return patient ``index`` (its images read lazily), or a list for a slice."""
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        manifest = self.manifests[index]
        preprocessing = manifest.provenance.preprocessing
        return PatientImages(
            patient_id=manifest.patient_id,
            images=_PatientImagesOnDisk(self.dataset, manifest, self.spec.inputs),
            label=rule_label(self.spec, self.dataset, manifest) if self.labels else None,
            pipeline_parameters=dict(preprocessing.parameters) if preprocessing else {},
        )


def rule_patients(
    spec: ModelSpec, dataset: Dataset, manifests: Sequence[PatientManifest], *, labels: bool
) -> RulePatients:
    """Return the patients as a rule reads them (one at a time): the spec's input images, the pipeline's
    parameters, and the label when ``labels``."""
    return RulePatients(spec, dataset, manifests, labels=labels)
