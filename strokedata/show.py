"""``render_patient``: a PNG montage of one patient (phantom or real) for a look before trusting it."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from strokedata.errors import StrokedataError
from strokedata.io import MAX_VOXELS, ImageReadError, atomic_write_bytes, parse_json, read_volume
from strokedata.labels import regions_from_clot
from strokedata.manifest import (
    DATASET_CARD,
    DEFAULT_ATLAS_REGIONS,
    PATIENT_ID_PATTERN,
    PATIENT_MANIFEST,
    DatasetCard,
    Modality,
    PatientManifest,
)

DISPLAY: dict[Modality, tuple[str, float, float, str]] = {
    Modality.NCCT: ("gray", 0, 80, "HU"),
    Modality.CTA: ("gray", -100, 500, "HU"),
    Modality.MCTA1: ("gray", -100, 500, "HU"),
    Modality.MCTA2: ("gray", -100, 500, "HU"),
    Modality.MCTA3: ("gray", -100, 500, "HU"),
    Modality.CTP: ("gray", -50, 300, "HU, max over time"),
    Modality.CBF: ("viridis", 0, 80, "ml/100 g/min"),
    Modality.CBV: ("viridis", 0, 8, "ml/100 g"),
    Modality.MTT: ("viridis", 0, 16, "s"),
    Modality.TMAX: ("jet", 0, 20, "s"),
    Modality.SPIRAL: ("magma", 0, 1, "probability"),
    Modality.ATLAS: ("tab20", 0, 19, "territory"),
}
"""Colour map, display range and unit of each modality shown as a row."""
OVERLAYS = {Modality.CLOT: "red", Modality.CORE: "yellow", Modality.BRAIN_MASK: "cyan"}


class PatientShowError(StrokedataError):
    """The patient cannot be shown: its manifest or an image is missing or unreadable."""


def _load_canonical(path: Path) -> np.ndarray:
    """Return float32 voxels reoriented to RAS (x right, y anterior, z superior) for display, read by the
    toolkit's own bounded reader (strokedata.io), as every other command reads them."""
    try:
        volume = read_volume(path, MAX_VOXELS)
    except ImageReadError as error:
        raise PatientShowError(f"{path} cannot be read ({error}); run `strokedata validate`") from None
    data = np.asarray(volume.scaled(), dtype=np.float32)
    orientation = nib.orientations.io_orientation(volume.header.affine)
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, orientation))


def _slices(volume: np.ndarray, clot: np.ndarray | None, count: int) -> list[int]:
    """Return ``count`` axial slices: the slice with most clot first (if any), then spread over z."""
    depth = volume.shape[2]
    chosen = [round(float(f) * (depth - 1)) for f in np.linspace(0.3, 0.8, count)]
    if clot is not None and clot.shape[:3] == volume.shape[:3] and clot.any():
        chosen[0] = int(np.argmax((clot > 0).sum(axis=(0, 1))))
    return sorted(set(chosen))


def render_patient(root: str | Path, patient_id: str, out: str | Path, slices: int = 4) -> Path:
    """Write a PNG montage of a patient's images to ``out`` and return its path.

    One row per image (CTP shown as its maximum over time), ``slices`` axial slices each, with CLOT
    (red), CORE (yellow) and brain-mask (cyan) outlines on images of their grid and ATLAS borders
    on the angiography; titled with the labels. Neurological convention: the patient's right on the right.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not re.match(PATIENT_ID_PATTERN, patient_id):
        raise PatientShowError(f"'{patient_id}' is not a patient id (letters, digits, '.', '_', '-')")
    folder = Path(root) / patient_id
    if not (folder / PATIENT_MANIFEST).is_file():
        raise PatientShowError(
            f"{folder / PATIENT_MANIFEST} is missing or not a file; check the patient id, run "
            "`strokedata validate`"
        )
    try:
        manifest = PatientManifest.model_validate(
            parse_json((folder / PATIENT_MANIFEST).read_text()), strict=False
        )
    except (OSError, StrokedataError, ValueError) as error:
        raise PatientShowError(
            f"{folder / PATIENT_MANIFEST} is missing or invalid ({error}); check the patient id, run "
            "`strokedata validate`"
        ) from None
    volumes = {modality: _load_canonical(folder / path) for modality, path in manifest.images.items()}
    if Modality.CTP in volumes and volumes[Modality.CTP].ndim == 4:
        volumes[Modality.CTP] = volumes[Modality.CTP].max(axis=3)
    rows = [modality for modality in DISPLAY if modality in volumes]
    if not rows:
        raise PatientShowError(f"{patient_id} has no image to show")
    clot = volumes.get(Modality.CLOT)
    figure, axes = plt.subplots(
        len(rows), slices, figsize=(2.2 * slices + 1, 2.3 * len(rows)), squeeze=False, layout="constrained"
    )
    for row, modality in enumerate(rows):
        volume = volumes[modality]
        colours, low, high, unit = DISPLAY[modality]
        chosen = _slices(volume, clot, slices)
        for column in range(slices):
            axis = axes[row][column]
            axis.set_axis_off()
            if column >= len(chosen):
                continue
            z = chosen[column]
            shown = axis.imshow(
                volume[:, :, z].T, cmap=colours, vmin=low, vmax=high, origin="lower", interpolation="nearest"
            )
            _outline(axis, volumes, modality, volume.shape, z)
            axis.set_title(f"{modality.value} z={z}", fontsize=8)
        figure.colorbar(shown, ax=axes[row][-1], fraction=0.046, label=unit)
    figure.suptitle(_title(manifest, volumes, _region_names(Path(root))), fontsize=10)
    path = Path(out)
    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, picture.getvalue())
    return path


def _outline(
    axis: Any, volumes: dict[Modality, np.ndarray], modality: Modality, shape: tuple[int, ...], z: int
) -> None:
    """Draw the outlines of the label maps on the shown image's grid (the brain mask on NCCT only)."""
    for overlay, colour in OVERLAYS.items():
        mask = volumes.get(overlay)
        if mask is None or mask.shape[:3] != shape[:3]:
            continue
        if overlay is Modality.BRAIN_MASK and modality is not Modality.NCCT:
            continue
        section = mask[:, :, z] > 0
        if section.any() and not section.all():
            axis.contour(section.T, levels=[0.5], colors=colour, linewidths=0.8, origin="lower")
    atlas = volumes.get(Modality.ATLAS)
    if atlas is not None and modality in (Modality.CTA, Modality.MCTA1) and atlas.shape[:3] == shape[:3]:
        labels = atlas[:, :, z]
        if labels.max() > 0:
            axis.contour(
                labels.T, levels=np.arange(0.5, 15), colors="white", linewidths=0.3, alpha=0.5, origin="lower"
            )


def _region_names(root: Path) -> list[str]:
    """Return the dataset card's atlas region names, or the default names if the card is unusable."""
    try:
        return DatasetCard.model_validate_json((root / DATASET_CARD).read_text()).atlas_regions
    except (OSError, ValueError):
        return list(DEFAULT_ATLAS_REGIONS)


def _title(manifest: PatientManifest, volumes: dict[Modality, np.ndarray], region_names: list[str]) -> str:
    """Return the montage title: id, site, occlusion, mTICI and the regions holding clot."""
    labels = manifest.labels
    occlusion = f"{labels.occlusion_location or '-'} {labels.occlusion_side or ''}".strip()
    title = (
        f"{manifest.patient_id}  site {manifest.site or '-'}  occlusion {occlusion}  "
        f"mTICI {labels.mtici or '-'}"
    )
    clot, atlas = volumes.get(Modality.CLOT), volumes.get(Modality.ATLAS)
    if clot is not None and atlas is not None and clot.shape == atlas.shape:
        regions = np.flatnonzero(regions_from_clot(clot, np.rint(atlas)))
        title += "\nclot regions: " + (", ".join(region_names[r] for r in regions) or "none")
    return title
