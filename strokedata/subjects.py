"""Patients as TorchIO subjects, loaded lazily: one ``tio.Subject`` per patient, a ``tio.SubjectsDataset``
for a split partition, or plain dicts of paths and labels for MONAI-style pipelines.

Images are keyed by modality name (``subject["CBF"]``); ATLAS, CLOT, CORE and BRAIN_MASK are
``LabelMap`` (nearest-neighbour under spatial transforms), the others ``ScalarImage``. Nothing is read
until a transform or a loader touches the data. TorchIO 2 removes ``SubjectsDataset``: only
``subjects_dataset`` depends on it, the rest needs ``Subject`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torchio as tio

from strokedata.dataset import load_dataset
from strokedata.errors import StrokedataError
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.labels import favourable_recanalization, occlusion_class_index
from strokedata.manifest import LABEL_MAPS, Modality, PatientManifest
from strokedata.splits import select_partition


class SubjectsError(StrokedataError):
    """Subjects cannot be built as asked (patients lacking a requested modality)."""


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return a NIfTI image as TorchIO wants it: (channels, x, y, z) voxels after the header's scaling, and
    the affine. A 4D series gives its time points as channels; a 5D file with a singleton fourth axis
    (x, y, z, 1, t), as some exports write CTP, is read as (t, x, y, z).

    The TorchIO reader for every image of ``patient_subject``: the file named, never a sibling (SimpleITK
    asked for x.nii.gz may read x.nii), decompressed by ISA-L (docs/performance.md); raises
    ``strokedata.io.ImageReadError`` naming the file when it is corrupt or truncated.
    """
    volume = read_volume(Path(path), MAX_VOXELS)
    data = volume.scaled()
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim == 3:
        data = data[np.newaxis]
    elif data.ndim == 4:
        data = np.moveaxis(data, -1, 0)
    else:
        raise ValueError(f"{Path(path).name} has {data.ndim} dimensions; images are 3D, series 4D")
    return (data if data.flags.writeable else data.copy(order="K")), volume.header.affine


class _ReadDirectly:
    """Mixin for TorchIO images: ``load`` reads with ``read_image`` and keeps the voxels' memory order.

    TorchIO's own ``load`` concatenates the channels with ``torch.cat``, which turns the Fortran-ordered
    voxels of a NIfTI file into a C-ordered copy: three quarters of the loading time of a subject
    (docs/performance.md). The tensor here is a view of the array read, strided as on disk.
    """

    _loaded: bool

    def load(self) -> None:
        """Read the image once; later calls do nothing."""
        if self._loaded:
            return
        data, affine = read_image(self.path)  # type: ignore[attr-defined]
        self.set_data(data)  # type: ignore[attr-defined]
        self.affine = affine
        self._loaded = True


class ScalarImage(_ReadDirectly, tio.ScalarImage):
    """A ``tio.ScalarImage`` read by ``read_image`` without a reordering copy."""


class LabelMap(_ReadDirectly, tio.LabelMap):
    """A ``tio.LabelMap`` read by ``read_image`` without a reordering copy."""


def patient_labels(manifest: PatientManifest) -> dict[str, Any]:
    """Return a patient's labels and the labels derived from them without reading images:
    occlusion_location, occlusion_class (0 ICA-T, 1 M1, 2 M2), occlusion_side, mtici,
    favourable_recanalization (mTICI >= 2c) and regions (as the manifest gives them, or None)."""
    labels = manifest.labels
    return {
        "occlusion_location": labels.occlusion_location,
        "occlusion_class": occlusion_class_index(labels.occlusion_location),
        "occlusion_side": labels.occlusion_side,
        "mtici": labels.mtici,
        "favourable_recanalization": favourable_recanalization(labels.mtici),
        "regions": None if labels.regions is None else list(labels.regions),
    }


def patient_subject(
    root: Path, manifest: PatientManifest, modalities: Sequence[Modality] | None = None
) -> tio.Subject:
    """Return one patient as a lazily loaded ``tio.Subject``: its images (all, or ``modalities``) keyed
    by modality name and read with ``read_image``, and the attributes patient_id, site, clinical and
    those of ``patient_labels``."""
    folder = Path(root) / manifest.patient_id
    images: dict[str, tio.Image] = {}
    for modality, relative in manifest.images.items():
        if modalities is None or modality in modalities:
            kind = LabelMap if modality in LABEL_MAPS else ScalarImage
            images[modality.value] = kind(folder / relative, reader=read_image)
    return tio.Subject(
        **images,
        patient_id=manifest.patient_id,
        site=manifest.site,
        clinical=dict(manifest.clinical),
        **patient_labels(manifest),
    )


def _manifests(
    root: str | Path, split: str | Path | None, partition: str | None, modalities: Sequence[Modality] | None
) -> tuple[Path, list[PatientManifest]]:
    """Return the dataset root and the chosen patients' manifests, sorted by id.

    Raises SubjectsError listing the patients that lack a requested modality.
    """
    if (split is None) != (partition is None):
        raise SubjectsError("give a split file and a partition together, or neither")
    dataset = load_dataset(root)
    manifests = sorted(dataset, key=lambda m: m.patient_id)
    if split is not None:
        manifests = select_partition(manifests, split, partition or "")
    if modalities is not None:
        lacking = [
            f"{m.patient_id} ({', '.join(x.value for x in modalities if x not in m.images)})"
            for m in manifests
            if any(x not in m.images for x in modalities)
        ]
        if lacking:
            raise SubjectsError(
                f"{len(lacking)} patient(s) lack requested modalities: {'; '.join(lacking[:20])}"
                f"{' ...' if len(lacking) > 20 else ''}; request fewer modalities or choose a partition"
            )
    return dataset.root, manifests


def subjects(
    root: str | Path,
    *,
    split: str | Path | None = None,
    partition: str | None = None,
    modalities: Sequence[Modality] | None = None,
) -> list[tio.Subject]:
    """Return a lazily loaded ``tio.Subject`` per patient (of one split partition), sorted by id."""
    folder, manifests = _manifests(root, split, partition, modalities)
    return [patient_subject(folder, manifest, modalities) for manifest in manifests]


def subjects_dataset(
    root: str | Path,
    *,
    split: str | Path | None = None,
    partition: str | None = None,
    modalities: Sequence[Modality] | None = None,
    transform: tio.Transform | None = None,
) -> tio.SubjectsDataset:
    """Return a ``tio.SubjectsDataset`` of the patients of ``subjects``, with an optional transform."""
    return tio.SubjectsDataset(
        subjects(root, split=split, partition=partition, modalities=modalities), transform=transform
    )


def subject_dicts(
    root: str | Path,
    *,
    split: str | Path | None = None,
    partition: str | None = None,
    modalities: Sequence[Modality] | None = None,
) -> list[dict[str, Any]]:
    """Return one plain dict per patient, sorted by id, for MONAI-style pipelines: the absolute path of
    each image under its modality name, patient_id, site, clinical and the ``patient_labels``."""
    folder, manifests = _manifests(root, split, partition, modalities)
    return [
        {
            **{
                modality.value: str((folder / m.patient_id / relative).resolve())
                for modality, relative in m.images.items()
                if modalities is None or modality in modalities
            },
            "patient_id": m.patient_id,
            "site": m.site,
            "clinical": dict(m.clinical),
            **patient_labels(m),
        }
        for m in manifests
    ]
