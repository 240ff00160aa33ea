"""``render_patient``: a PNG montage of one patient (phantom or real) for a look before trusting it.

One row per image, a few axial slices each, the label maps outlined (clot red, infarct core yellow, brain
mask cyan, with a legend), the atlas territories in categorical colours with their names, L and R marked
on every panel, in radiological convention by default (the patient's right on the image's left, as CT
is read) or neurological.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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

Convention = Literal["radiological", "neurological"]
CONVENTIONS: dict[str, str] = {
    "radiological": "radiological convention: the patient's right on the image's left",
    "neurological": "neurological convention: the patient's right on the image's right",
}
DISPLAY: dict[Modality, tuple[str, float, float, str]] = {
    Modality.NCCT: ("gray", 0, 80, "HU"),
    Modality.CTA: ("gray", -100, 500, "HU"),
    Modality.MCTA1: ("gray", -100, 500, "HU"),
    Modality.MCTA2: ("gray", -100, 500, "HU"),
    Modality.MCTA3: ("gray", -100, 500, "HU"),
    Modality.CTP: ("gray", -50, 300, "HU, maximum over time"),
    Modality.CBF: ("viridis", 0, 80, "ml/100 g/min"),
    Modality.CBV: ("viridis", 0, 8, "ml/100 g"),
    Modality.MTT: ("viridis", 0, 16, "s"),
    Modality.TMAX: ("jet", 0, 20, "s"),
    Modality.TTP: ("jet", 0, 40, "s"),
    Modality.SPIRAL: ("magma", 0, 1, "probability"),
    Modality.ATLAS: ("gray", -100, 500, "territories"),
}
"""Colour map, display range and unit of each modality shown as a row (ATLAS: the angiogram under it)."""
OVERLAYS: dict[Modality, tuple[str, str]] = {
    Modality.CLOT: ("red", "clot (CLOT)"),
    Modality.CORE: ("yellow", "infarct core (CORE)"),
    Modality.BRAIN_MASK: ("cyan", "brain mask"),
}
"""Outline colour and legend text of each label map drawn on the images of its grid."""
TERRITORY_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#637939", "#9467bd", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
)  # fmt: skip
"""One distinct colour per atlas value 1..14; value 0 (outside the territories) is left transparent."""


class PatientShowError(StrokedataError):
    """The patient cannot be shown: its manifest or an image is missing or unreadable."""


def _load_canonical(path: Path) -> np.ndarray:
    """Return float32 voxels reoriented to RAS (x to the patient's right, y anterior, z superior), a
    series reduced to its maximum over time first, read by the toolkit's bounded reader."""
    try:
        volume = read_volume(path, MAX_VOXELS)
    except ImageReadError as error:
        raise PatientShowError(f"{path} cannot be read ({error}); run `strokedata validate`") from None
    stored = volume.data
    if stored.ndim == 4:  # scaling is monotonic: reduce the stored values, then scale the one volume
        stored = stored.max(axis=3) if volume.header.slope >= 0 else stored.min(axis=3)
    data = np.asarray(volume.scaled(stored), dtype=np.float32)
    orientation = nib.orientations.io_orientation(volume.header.affine)
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, orientation))


@dataclass(frozen=True)
class Shown:
    """What a montage row needs of one image: its grid's shape, its chosen axial sections (z -> the
    section, in RAS), and for a label map the whole volume (outlines on other rows, regions)."""

    shape: tuple[int, ...]
    sections: dict[int, np.ndarray]
    labels: np.ndarray | None = None


def _load_rows(folder: Path, manifest: PatientManifest, slices: int) -> dict[Modality, Shown]:
    """Return every image of a patient reduced to what the montage shows: label maps whole (as integers),
    the others as their chosen sections only, so that memory holds one scan at a time."""
    label_maps = {
        modality: np.rint(_load_canonical(folder / manifest.images[modality])).clip(0, 255).astype(np.uint8)
        for modality in (Modality.CLOT, Modality.ATLAS, *OVERLAYS)
        if modality in manifest.images
    }
    clot = label_maps.get(Modality.CLOT)
    shown = {}
    for modality, path in manifest.images.items():
        volume = label_maps.get(modality)
        if volume is None:
            if modality not in DISPLAY:
                continue
            volume = _load_canonical(folder / path)
        zs = choose_slices(volume.shape[2], clot, slices)
        sections = {z: np.array(volume[:, :, z]) for z in zs}
        shown[modality] = Shown(volume.shape[:3], sections, label_maps.get(modality))
    return shown


def choose_slices(depth: int, clot: np.ndarray | None, count: int) -> list[int]:
    """Return ``min(count, depth)`` distinct axial slices in increasing order, spread over 30-80% of the
    depth (the nearest free slices where that gives too few); when ``clot`` (on this grid) holds any,
    the slice with most clot replaces the spread slice nearest to it."""
    wanted: list[int] = []
    spread = [round(float(f) * (depth - 1)) for f in np.linspace(0.3, 0.8, count)]
    nearest = sorted(range(depth), key=lambda z: (abs(z - (depth - 1) / 2), z))
    for z in [*spread, *nearest]:
        if len(wanted) < min(count, depth) and z not in wanted:
            wanted.append(z)
    if clot is not None and clot.shape[2] == depth and clot.any():
        most = int(np.argmax((clot > 0).sum(axis=(0, 1))))
        if most not in wanted:
            wanted[min(range(len(wanted)), key=lambda i: (abs(wanted[i] - most), i))] = most
    return sorted(wanted)


def _read_manifest(folder: Path, patient_id: str) -> PatientManifest:
    """Return the patient's manifest; raise PatientShowError for a bad id or a missing or invalid file."""
    if not re.match(PATIENT_ID_PATTERN, patient_id):
        raise PatientShowError(f"'{patient_id}' is not a patient id (letters, digits, '.', '_', '-')")
    path = folder / PATIENT_MANIFEST
    if not path.is_file():
        raise PatientShowError(
            f"{path} is missing or not a file; check the patient id, run `strokedata validate`"
        )
    try:
        return PatientManifest.model_validate(parse_json(path.read_text()), strict=False)
    except (OSError, StrokedataError, ValueError) as error:
        raise PatientShowError(f"{path} is invalid ({error}); run `strokedata validate`") from None


def render_patient(
    root: str | Path,
    patient_id: str,
    out: str | Path,
    slices: int = 4,
    convention: Convention = "radiological",
) -> Path:
    """Write a PNG montage of a patient's images to ``out`` and return its path.

    One row per image (CTP as its maximum over time), up to ``slices`` distinct axial slices each (the
    slice with most clot among them), label outlines with a legend, the atlas territories over the
    angiogram with their names, L and R on every panel, in ``convention``; titled with the labels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if convention not in CONVENTIONS:
        raise PatientShowError(f"unknown convention '{convention}'; choose radiological or neurological")
    folder = Path(root) / patient_id
    manifest = _read_manifest(folder, patient_id)
    images = _load_rows(folder, manifest, slices)
    if not images:
        raise PatientShowError(f"{patient_id} has no image to show")
    rows = [modality for modality in DISPLAY if modality in images]
    columns = max(len(image.sections) for image in images.values())
    names = _region_names(Path(root))
    figure = plt.figure(figsize=(2.6 * columns + 1.8, 2.6 * len(rows) + 1.4), layout="constrained")
    grid = figure.add_gridspec(len(rows), columns + 1, width_ratios=[1.0] * columns + [0.6])
    for row, modality in enumerate(rows):
        shown = None
        for column, z in enumerate(images[modality].sections):
            axis = figure.add_subplot(grid[row, column])
            axis.set_axis_off()
            shown = _panel(axis, images, modality, z, convention)
            axis.set_title(f"{modality.value}  slice {z}", fontsize=10)
        side = figure.add_subplot(grid[row, columns])
        side.set_axis_off()
        if modality is Modality.ATLAS:
            _territory_legend(side, images[Modality.ATLAS], names)
        elif shown is not None:
            bar = side.inset_axes((0.0, 0.05, 0.12, 0.9))
            figure.colorbar(shown, cax=bar, label=DISPLAY[modality][3])
    _outline_legend(figure, images)
    figure.suptitle(title(manifest, images, names, convention), fontsize=12)
    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=90, metadata={"Software": None})
    plt.close(figure)
    path = Path(out)
    atomic_write_bytes(path, picture.getvalue())
    return path


def _oriented(section: np.ndarray, convention: Convention) -> np.ndarray:
    """Return an axial section (x, y) as rows of the picture: anterior up, the patient's right on the
    image's left (radiological) or right (neurological); shown with origin='lower'."""
    picture = section.T
    return picture[:, ::-1] if convention == "radiological" else picture


def _panel(
    axis: Any, images: dict[Modality, Shown], modality: Modality, z: int, convention: Convention
) -> Any:
    """Draw one slice of one image with its outlines and L/R letters; return what the colour bar uses."""
    image = images[modality]
    options = {"origin": "lower", "interpolation": "nearest"}
    if modality is Modality.ATLAS:
        underlay = next((images[m] for m in (Modality.MCTA1, Modality.CTA) if m in images), None)
        if underlay is not None and underlay.shape == image.shape and z in underlay.sections:
            axis.imshow(
                _oriented(underlay.sections[z], convention), cmap="gray", vmin=-100, vmax=500, **options
            )
        else:
            axis.imshow(np.zeros(image.shape[1::-1]), cmap="gray", vmin=0, vmax=1, **options)
        territories = _oriented(image.sections[z], convention)
        colours = np.zeros((*territories.shape, 4))
        for value, colour in enumerate(TERRITORY_COLOURS, start=1):
            colours[territories == value] = (*_rgb(colour), 0.6)
        shown = axis.imshow(colours, **options)
    else:
        colours_name, low, high, _ = DISPLAY[modality]
        section = _oriented(image.sections[z], convention)
        shown = axis.imshow(section, cmap=colours_name, vmin=low, vmax=high, **options)
    for overlay, (colour, _) in OVERLAYS.items():
        mask = images[overlay].labels if overlay in images else None
        if (
            mask is None
            or mask.shape != image.shape
            or (overlay is Modality.BRAIN_MASK and modality is not Modality.NCCT)
        ):
            continue
        section = _oriented(mask[:, :, z] > 0, convention)
        if section.any() and not section.all():
            axis.contour(section, levels=[0.5], colors=colour, linewidths=1.0, origin="lower")
    left, right = ("R", "L") if convention == "radiological" else ("L", "R")
    for x, letter, align in ((0.03, left, "left"), (0.97, right, "right")):
        axis.text(
            x,
            0.5,
            letter,
            transform=axis.transAxes,
            color="white",
            fontsize=11,
            fontweight="bold",
            ha=align,
            va="center",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
        )
    return shown


def _rgb(colour: str) -> tuple[float, float, float]:
    """Return a '#rrggbb' colour as three floats in [0, 1]."""
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _territory_legend(axis: Any, atlas: Shown, names: list[str]) -> None:
    """Draw in ``axis`` a legend naming the territories visible in the shown slices, in their colours."""
    from matplotlib.patches import Patch

    present = sorted({int(v) for section in atlas.sections.values() for v in np.unique(section)} - {0})
    handles = [
        Patch(color=TERRITORY_COLOURS[value - 1], label=region_label(names[value]))
        for value in present
        if 0 < value <= len(TERRITORY_COLOURS)
    ]
    if handles:
        axis.legend(handles=handles, loc="center left", fontsize=8, frameon=False, title="territories")


def _outline_legend(figure: Any, images: dict[Modality, Shown]) -> None:
    """Add a legend of the outline colours of the label maps the patient has."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colour, linewidth=2, label=label)
        for overlay, (colour, label) in OVERLAYS.items()
        if overlay in images
    ]
    if handles:
        figure.legend(
            handles=handles, loc="outside lower center", ncols=len(handles), fontsize=10, frameon=False
        )


def _region_names(root: Path) -> list[str]:
    """Return the dataset card's atlas region names, or the default names if the card is unusable."""
    try:
        return DatasetCard.model_validate_json((root / DATASET_CARD).read_text()).atlas_regions
    except (OSError, ValueError):
        return list(DEFAULT_ATLAS_REGIONS)


def region_label(name: str) -> str:
    """Return an atlas region name as shown: underscores as spaces ('L_MCA_deep' -> 'L MCA deep')."""
    return name.replace("_", " ")


def title(
    manifest: PatientManifest,
    images: dict[Modality, Shown],
    region_names: list[str],
    convention: Convention,
) -> str:
    """Return the montage title: the id, site, occlusion, mTICI, the regions holding clot and the
    orientation convention."""
    labels = manifest.labels
    side = {"L": "left", "R": "right"}.get(labels.occlusion_side or "", "side unknown")
    occlusion = (
        f"{labels.occlusion_location} occlusion, {side}"
        if labels.occlusion_location
        else "no occlusion label"
    )
    site, grade = manifest.site or "unknown", labels.mtici or "unknown"
    lines = [f"{manifest.patient_id}  |  site: {site}  |  {occlusion}  |  mTICI {grade}"]
    clot, atlas = (images[m].labels if m in images else None for m in (Modality.CLOT, Modality.ATLAS))
    if clot is not None and atlas is not None and clot.shape == atlas.shape:
        regions = np.flatnonzero(regions_from_clot(clot, atlas))
        lines.append(
            "clot in: " + (", ".join(region_label(region_names[r]) for r in regions) or "no territory")
        )
    lines.append(CONVENTIONS[convention] + " (L and R marked on each image)")
    return "\n".join(lines)
