"""Masks: the largest connected component (000's artefact removal outside the brain on the perfusion
maps) and skull stripping of CT in HU by thresholds and morphology.

``skull_strip_mask`` is a pure numpy function, built on ``strokedata.transforms.morphology`` (the largest
component, holes, erosion and dilation in mm); ``BrainMaskFromLargestComponent`` and ``SkullStrip``
apply them to a subject as ``tio.IntensityTransform`` subclasses whose constructor arguments are
recorded in ``subject.history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torchio as tio

from strokedata.manifest import CO_REGISTERED_GROUPS, LABEL_MAPS
from strokedata.transforms.intensity import CT_MODALITIES, require_image
from strokedata.transforms.morphology import (
    Connectivity,
    bounding_box,
    dilated,
    eroded,
    fill_slices,
    filled_holes,
    largest_component,
)

FillHoles = Literal["slice", "volume", "both", "none"]

SOFT_TISSUE_HU: tuple[float, float] = (-20.0, 100.0)
"""The HU range ``skull_strip_mask`` keeps by default: water-like CSF (0-15 HU) with 3-5 sigma of noise
below it, white (20-30) and grey matter (35-45), fresh blood and clot (50-90). Fat (-100 .. -50), air
and bone (cortical 700-2000 HU; below 200-300 HU only where partial volume thins it) fall outside;
contrast-filled vessels on CTA (200-600 HU) too, and are recovered by hole filling."""
AIR_HU = -1024.0
"""The value ``SkullStrip`` writes outside the mask by default: air, the lowest HU of a CT scan."""
PERFUSION_MASK = "PERFUSION_MASK"
"""The key suggested for ``BrainMaskFromLargestComponent(mask_key=...)``: a mask on the perfusion grid,
which differs from BRAIN_MASK (a label of the NCCT grid in the canonical layout)."""


def voxel_spacing(spacing_or_affine: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """Return the voxel size (mm) along the three voxel axes from a spacing or a 4 x 4 affine.

    >>> voxel_spacing(np.diag([0.5, 0.5, 5.0, 1.0]))
    (0.5, 0.5, 5.0)
    """
    values = np.asarray(spacing_or_affine, dtype=np.float64)
    if values.shape == (4, 4):
        values = np.sqrt((values[:3, :3] ** 2).sum(axis=0))
    if values.shape != (3,) or not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise ValueError(f"give three positive voxel sizes or a 4 x 4 affine, not {spacing_or_affine!r}")
    return float(values[0]), float(values[1]), float(values[2])


def axial_axis(affine: np.ndarray) -> int:
    """Return the voxel axis (0, 1 or 2) whose direction has the largest inferior-superior component.

    >>> axial_axis(np.diag([1.0, 1.0, 1.0, 1.0]))
    2
    """
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.sqrt((matrix**2).sum(axis=0))
    if not np.all(norms > 0):
        raise ValueError(f"the affine {np.asarray(affine).tolist()} has a degenerate voxel axis")
    return int(np.argmax(np.abs(matrix[2] / norms)))


def skull_strip_mask(
    hu: np.ndarray,
    spacing_or_affine: Sequence[float] | np.ndarray,
    *,
    hu_range: Sequence[float] = SOFT_TISSUE_HU,
    erosion_mm: float = 4.0,
    fill_holes: FillHoles = "both",
    axis: int = 2,
) -> np.ndarray:
    """Return the intracranial mask (bool, the shape of ``hu``) of a 3D CT volume in HU.

    Steps: keep voxels with ``low <= hu <= high``; erode by a ball of ``erosion_mm`` (Euclidean, in mm
    from the spacing, via distance transforms) so that thin bridges through the skull base, orbits or
    burr holes are cut; keep the largest 26-connected component (the intracranial soft tissue; the scalp
    lies outside the skull); dilate back by the same ball (an opening: the result never leaves the
    threshold range); fill holes in every slice across ``axis`` and / or in 3D. The mask holds brain,
    ventricles and the subarachnoid CSF; contrast-filled vessels (CTA) and bright clot or calcification
    surrounded by it in a slice are holes there and get filled, those on the brain's surface are left
    out. Filling in 3D alone misses vessels: they join the arteries that enter at the skull base.

    Args:
        hu: a 3D array in Hounsfield units.
        spacing_or_affine: the voxel size (mm) per axis, or the image's 4 x 4 affine.
        hu_range: (low, high) of the soft tissue kept, ``SOFT_TISSUE_HU`` by default.
        erosion_mm: the radius of the opening; 0 skips it. Features thinner than twice this radius
            (bridges, thin gyri next to bone) are removed with it.
        fill_holes: "slice" (2D, each slice across ``axis``), "volume" (3D), "both" or "none".
        axis: the voxel axis across which slices are taken (2: the third axis, axial as stored).

    Returns an empty mask when no voxel lies in the range or the opening removes everything.
    """
    data = np.asarray(hu)
    if data.ndim != 3:
        raise ValueError(f"skull_strip_mask takes a 3D volume, not {data.ndim}D")
    if len(hu_range) != 2 or not float(hu_range[0]) < float(hu_range[1]):
        raise ValueError(f"hu_range must be (low, high) with low < high, not {hu_range!r}")
    if not (np.isfinite(erosion_mm) and erosion_mm >= 0):
        raise ValueError(f"erosion_mm must be a finite number >= 0, not {erosion_mm!r}")
    if fill_holes not in ("slice", "volume", "both", "none"):
        raise ValueError(f"fill_holes must be slice, volume, both or none, not {fill_holes!r}")
    spacing = voxel_spacing(spacing_or_affine)
    low, high = float(hu_range[0]), float(hu_range[1])
    soft = (data >= low) & (data <= high)
    # every step stays within the soft tissue's bounding box and one voxel of outside around it: outside
    # voxels beyond it are as far as that voxel, and every background region there reaches the border
    box = bounding_box(soft, (1,) * soft.ndim)
    result = np.zeros_like(soft)
    result[box] = _opened_and_filled(soft[box], spacing, erosion_mm, fill_holes, axis)
    return result


def _opened_and_filled(
    soft: np.ndarray, spacing: tuple[float, float, float], erosion_mm: float, fill_holes: FillHoles, axis: int
) -> np.ndarray:
    """Return ``skull_strip_mask``'s mask of the thresholded ``soft`` tissue: opened, its largest
    component kept, its holes filled."""
    mask: np.ndarray
    if erosion_mm > 0:
        core = largest_component(eroded(soft, spacing, erosion_mm))
        mask = soft & dilated(core, spacing, erosion_mm)  # grown back by the same ball
    else:
        mask = largest_component(soft)
    if fill_holes in ("slice", "both"):
        mask = fill_slices(mask, axis)
    if fill_holes in ("volume", "both"):
        mask = filled_holes(mask)
    return mask


def _same_grid(image: tio.Image, reference: tio.Image) -> bool:
    """Return whether two images share spatial shape and affine (to 1e-4)."""
    return image.spatial_shape == reference.spatial_shape and bool(
        np.allclose(image.affine, reference.affine, atol=1e-4)
    )


def _fill_outside(
    data: np.ndarray, inside: np.ndarray, background: float, key: str, owner: str
) -> np.ndarray:
    """Return a copy of (channels, x, y, z) ``data`` with every voxel outside ``inside`` set to
    ``background``; ValueError when an integer image cannot hold the background value."""
    if np.issubdtype(data.dtype, np.integer):
        limits = np.iinfo(data.dtype)
        if background != int(background) or not limits.min <= background <= limits.max:
            raise ValueError(f"{owner}: '{key}' is {data.dtype} and cannot hold the background {background}")
    result = data.copy(order="K")  # the memory order of the image (a NIfTI's Fortran order) is kept
    np.copyto(result, np.asarray(background, dtype=data.dtype), where=~inside)
    return result


def _store_mask(subject: tio.Subject, key: str, mask: np.ndarray, reference: tio.Image, owner: str) -> None:
    """Add ``mask`` to the subject as a uint8 LabelMap ``key`` on the grid of ``reference``."""
    existing = subject.get(key)
    if isinstance(existing, tio.Image) and not _same_grid(existing, reference):
        raise ValueError(
            f"{owner}: the subject's '{key}' lies on another grid than the mask; choose another mask_key"
        )
    if isinstance(existing, tio.Image):
        subject.remove_image(key)
    elif existing is not None:
        raise ValueError(
            f"{owner}: the subject's '{key}' is a {type(existing).__name__}; choose another mask_key"
        )
    label_map: Any = tio.LabelMap  # torchio's constructor has no type hints
    subject.add_image(label_map(tensor=mask[None].astype(np.uint8), affine=reference.affine), key)


def acquisition_group(key: str) -> tuple[str, ...]:
    """Return the modality names acquired with ``key`` (its group of ``CO_REGISTERED_GROUPS``, itself
    included), or just ``(key,)`` for a key outside the canonical modalities.

    >>> acquisition_group("CTA")
    ('CTA', 'MCTA1', 'MCTA2', 'MCTA3', 'SPIRAL', 'ATLAS', 'CLOT')
    """
    for group in CO_REGISTERED_GROUPS:
        names = tuple(modality.value for modality in group)
        if key in names:
            return names
    return (key,)


def _targets(
    transform: tio.IntensityTransform, subject: tio.Subject, reference: tio.Image, candidates: Sequence[str]
) -> dict[str, tio.Image]:
    """Return the scalar images to mask: ``include`` (each required, on the grid) or else the
    ``candidates`` present on the reference's grid, less ``exclude``."""
    if transform.include is not None:
        chosen = {key: require_image(subject, key, transform.name) for key in transform.include}
        for key, image in chosen.items():
            if not _same_grid(image, reference):
                raise ValueError(f"{transform.name}: '{key}' is not on the grid of the mask; leave it out")
        return chosen
    excluded = set(transform.exclude or ())
    found: dict[str, tio.Image] = {}
    for key in candidates:
        value = subject.get(key)
        if key not in excluded and isinstance(value, tio.ScalarImage) and _same_grid(value, reference):
            found[key] = value
    return found


def _check_connectivity(connectivity: int) -> Connectivity:
    """Return a 3D connectivity (6, 18 or 26); ValueError otherwise."""
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26 in 3D, not {connectivity!r}")
    value: Connectivity = connectivity  # type: ignore[assignment]
    return value


class BrainMaskFromLargestComponent(tio.IntensityTransform):
    """Remove artefacts outside the brain from perfusion maps (000): keep the largest connected component
    of the voxels where any of ``keys`` exceeds ``threshold`` and set every voxel outside it to
    ``background`` in the scalar images of that grid.

    Components are found with gaps narrower than ``bridge_mm`` bridged: the interhemispheric fissure
    (the falx, CSF: 0 on every map) can split the two hemispheres into components of equal size, and
    the largest alone would then be one hemisphere (found on the realistic phantoms, 0.45 mm voxels).
    The foreground is dilated by a ball of ``bridge_mm / 2``, the largest component of that is taken,
    and the mask is its intersection with the foreground: no voxel is added. A skull (5 mm or more)
    keeps the scalp apart at the default 3 mm.

    With the default threshold 0 a voxel is foreground where some map is positive (the maps are 0 or
    positive, so: non-zero). The images masked are ``keys`` and the other maps acquired with them (of
    CBF, CBV, MTT, TMAX: ``acquisition_group`` less HU images and label maps) present as scalar images
    on the grid (shape and affine) of ``keys[0]``, less ``exclude``; or exactly those of ``include``
    (e.g. add CTP to mask every frame of the source series). Images of other acquisitions are left
    alone even when registration has put them on the same grid (0 would be water in an HU image).

    Args:
        keys: the maps that define the foreground, each required and on one grid (ValueError otherwise).
        threshold: a voxel is foreground where some channel of some map is above it.
        connectivity: 6, 18 or 26.
        background: the value written outside the mask (0: 000's maps; an integer image must hold it).
        mask_key: None, or the key under which to store the mask as a uint8 ``tio.LabelMap`` on the maps'
            grid, e.g. ``PERFUSION_MASK``. An existing image of that key on the same grid is replaced,
            one on another grid (BRAIN_MASK, the NCCT grid's label in the canonical layout, unless
            registered to the maps) or an attribute of that name is an error.
        fill_holes: fill the mask's 3D holes (ventricles, where the maps are 0) before use.
        bridge_mm: gaps narrower than this (mm) do not split a component; 0: strict connectivity.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``, ``include``, ``exclude``).

    Example:
        >>> BrainMaskFromLargestComponent(mask_key=PERFUSION_MASK).keys
        ('CBF', 'CBV', 'TMAX')
    """

    def __init__(
        self,
        keys: Sequence[str] = ("CBF", "CBV", "TMAX"),
        threshold: float = 0.0,
        connectivity: int = 26,
        background: float = 0.0,
        mask_key: str | None = None,
        fill_holes: bool = False,
        bridge_mm: float = 3.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not (np.isfinite(bridge_mm) and bridge_mm >= 0):
            raise ValueError(f"bridge_mm must be a finite number >= 0, not {bridge_mm!r}")
        if isinstance(keys, str) or not keys:
            raise ValueError(f"keys must be a non-empty sequence of image names, not {keys!r}")
        self.keys = tuple(str(key) for key in keys)
        self.threshold = float(threshold)
        self.connectivity = _check_connectivity(connectivity)
        self.background = float(background)
        self.mask_key = mask_key
        self.fill_holes = bool(fill_holes)
        self.bridge_mm = float(bridge_mm)
        self.args_names = [
            "keys",
            "threshold",
            "connectivity",
            "background",
            "mask_key",
            "fill_holes",
            "bridge_mm",
        ]

    def mask(self, subject: tio.Subject) -> tuple[np.ndarray, tio.Image]:
        """Return (the 3D bool mask, the image whose grid it lies on) for a subject."""
        images = {key: require_image(subject, key, self.name) for key in self.keys}
        reference = images[self.keys[0]]
        foreground = np.zeros_like(reference.numpy()[0], dtype=bool)  # in the image's memory order
        for key, image in images.items():
            if not _same_grid(image, reference):
                raise ValueError(f"{self.name}: '{key}' is not on the grid of '{self.keys[0]}'")
            foreground |= (image.numpy() > self.threshold).any(axis=0)
        if self.bridge_mm > 0 and foreground.any() and not foreground.all():
            spacing = voxel_spacing(reference.affine)
            bridged = dilated(foreground, spacing, self.bridge_mm / 2)
            inside = largest_component(bridged, self.connectivity) & foreground
        else:
            inside = largest_component(foreground, self.connectivity)
        if self.fill_holes:
            inside = filled_holes(inside)
        return inside, reference

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with every voxel outside the largest component set to ``background``."""
        inside, reference = self.mask(subject)
        hu_or_labels = set(CT_MODALITIES) | {modality.value for modality in LABEL_MAPS}
        group = [key for key in acquisition_group(self.keys[0]) if key not in hu_or_labels]
        candidates = list(dict.fromkeys([*self.keys, *group]))
        for key, image in _targets(self, subject, reference, candidates).items():
            image.set_data(_fill_outside(image.numpy(), inside, self.background, key, self.name))
        if self.mask_key is not None:
            _store_mask(subject, self.mask_key, inside, reference, self.name)
        return subject


class SkullStrip(tio.IntensityTransform):
    """Skull-strip CT in HU: compute ``skull_strip_mask`` from the first channel of ``key`` (for a CTP
    series: the pre-contrast frame) and set every voxel outside it to ``background``.

    The images masked are ``key`` and the CT images acquired with it (``acquisition_group`` within
    ``CT_MODALITIES``: CTA brings MCTA1-3, CBF's group brings CTP) present on the grid of ``key``, less
    ``exclude``; or exactly those of ``include``. Images in other units (SPIRAL, maps), label maps and
    other acquisitions (NCCT and CTA registered to one grid are stripped one by one, each by its own
    mask) are left alone. Slices for hole filling are taken across the voxel axis closest to the
    world's superior axis (from the affine).

    Args:
        key: the scalar CT image in HU that defines the mask, required.
        hu_range, erosion_mm, fill_holes: see ``skull_strip_mask``.
        background: the value written outside the mask; ``AIR_HU`` (-1024) by default.
        mask_key: None, or the key under which to store the mask as a uint8 ``tio.LabelMap`` on the grid
            of ``key``. An existing image of that key on the same grid is replaced (``"BRAIN_MASK"`` with
            NCCT replaces the dataset's mask by this one, which includes the CSF around the brain), one
            on another grid is an error.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``, ``include``, ``exclude``).

    Raises ValueError (from the call) when the mask is empty or covers the whole volume (a windowed
    image in [0, 1] lies wholly in the range): the image is probably not in HU.

    Example:
        >>> SkullStrip("CTA").background
        -1024.0
    """

    def __init__(
        self,
        key: str = "NCCT",
        hu_range: Sequence[float] = SOFT_TISSUE_HU,
        erosion_mm: float = 4.0,
        fill_holes: FillHoles = "both",
        background: float = AIR_HU,
        mask_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.key = key
        if len(hu_range) != 2 or not float(hu_range[0]) < float(hu_range[1]):
            raise ValueError(f"hu_range must be (low, high) with low < high, not {hu_range!r}")
        self.hu_range = (float(hu_range[0]), float(hu_range[1]))
        if not (np.isfinite(erosion_mm) and erosion_mm >= 0):
            raise ValueError(f"erosion_mm must be a finite number >= 0, not {erosion_mm!r}")
        self.erosion_mm = float(erosion_mm)
        if fill_holes not in ("slice", "volume", "both", "none"):
            raise ValueError(f"fill_holes must be slice, volume, both or none, not {fill_holes!r}")
        self.fill_holes: FillHoles = fill_holes
        self.background = float(background)
        self.mask_key = mask_key
        self.args_names = ["key", "hu_range", "erosion_mm", "fill_holes", "background", "mask_key"]

    def mask(self, subject: tio.Subject) -> tuple[np.ndarray, tio.Image]:
        """Return (the 3D bool mask, the image ``key``) for a subject."""
        image = require_image(subject, self.key, self.name)
        inside = skull_strip_mask(
            image.numpy()[0],
            image.affine,
            hu_range=self.hu_range,
            erosion_mm=self.erosion_mm,
            fill_holes=self.fill_holes,
            axis=axial_axis(image.affine),
        )
        if not inside.any() or inside.all():
            found = "no voxel" if not inside.any() else "every voxel"
            raise ValueError(
                f"{self.name}: {found} of '{self.key}' is intracranial soft tissue (HU range "
                f"{self.hu_range}); is it in HU (not windowed or scaled)?"
            )
        return inside, image

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with every voxel outside the intracranial mask set to ``background``."""
        inside, reference = self.mask(subject)
        candidates = [self.key, *(key for key in acquisition_group(self.key) if key in CT_MODALITIES)]
        for key, image in _targets(self, subject, reference, list(dict.fromkeys(candidates))).items():
            image.set_data(_fill_outside(image.numpy(), inside, self.background, key, self.name))
        if self.mask_key is not None:
            _store_mask(subject, self.mask_key, inside, reference, self.name)
        return subject
