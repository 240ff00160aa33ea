"""Label derivation: pure functions from images and manifest labels to the tasks' labels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from nibabel.orientations import io_orientation

from strokedata.errors import StrokedataError
from strokedata.io import MAX_VOXELS, ImageReadError, read_volume
from strokedata.manifest import (
    MTICI,
    MTICI_GRADES,
    N_REGIONS,
    OCCLUSION_LOCATIONS,
    Modality,
    OcclusionLocation,
    OcclusionSide,
    PatientManifest,
)

MIRRORED = "mirrored"
"""Subject key set by ``MirrorToCanonicalSide``: True when its images were flipped, else False."""
TMAX_SIDE = "tmax_side"
"""Subject key set by ``OccludedSideFromTmax``: the side the Tmax rule of Papakyriakou et al. 2025 finds,
"L" or "R"."""


def regions_from_clot(clot: np.ndarray, atlas: np.ndarray) -> np.ndarray:
    """Return the 15-element 0/1 vector (uint8) of atlas values 0..14 found under clot voxels.

    Clot values 1 (body) and 2 (border) both count, as in the clot-regions task; atlas values outside
    0..14 are ignored (validate reports them as V004).

    >>> regions_from_clot(np.array([[0, 1, 2]]), np.array([[3, 4, 14]])).nonzero()[0].tolist()
    [4, 14]
    """
    if clot.shape != atlas.shape:
        raise ValueError(f"CLOT shape {clot.shape} differs from ATLAS shape {atlas.shape}")
    values = np.asarray(atlas[clot > 0])
    values = values[(values >= 0) & (values < N_REGIONS)].astype(np.intp)
    return (np.bincount(values, minlength=N_REGIONS) > 0).astype(np.uint8)


def regions_by_slice(clot: np.ndarray, atlas: np.ndarray) -> np.ndarray:
    """Return a (slices, 15) 0/1 array (uint8): row z lists the atlas regions holding clot in slice z.

    Slices are indices along the third voxel axis, as stored; the union of the rows is
    ``regions_from_clot``.

    >>> regions_by_slice(np.array([[[0, 1]]]), np.array([[[3, 4]]])).nonzero()
    (array([1]), array([4]))
    """
    if clot.shape != atlas.shape or clot.ndim != 3:
        raise ValueError(f"CLOT shape {clot.shape} and ATLAS shape {atlas.shape} must be the same 3D shape")
    where = clot > 0
    values = np.asarray(atlas[where])
    slices = np.nonzero(where)[2]
    keep = (values >= 0) & (values < N_REGIONS)
    result = np.zeros((clot.shape[2], N_REGIONS), dtype=np.uint8)
    result[slices[keep], values[keep].astype(np.intp)] = 1
    return result


def occlusion_class_index(location: OcclusionLocation | None) -> int | None:
    """Return the class index of an occlusion location in the fixed order ICA-T, M1, M2; None if unknown.

    >>> [occlusion_class_index(v) for v in ("ICA-T", "M1", "M2", None)]
    [0, 1, 2, None]
    """
    return None if location is None else OCCLUSION_LOCATIONS.index(location)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Return the volume of one voxel in ml from an image's affine (|det| of its 3 x 3 part / 1000)."""
    return abs(float(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0


def core_volume_ml(core: np.ndarray, affine: np.ndarray) -> float:
    """Return the infarct core volume in ml: non-zero CORE voxels times the voxel volume.

    >>> core_volume_ml(np.ones((10, 10, 10)), np.diag([1.0, 1.0, 2.0, 1.0]))
    2.0
    """
    return int(np.count_nonzero(core)) * voxel_volume_ml(affine)


def left_right_axis(affine: np.ndarray) -> int:
    """Return the voxel axis (0, 1 or 2) that runs closest to the world's left-right (x) axis.

    >>> left_right_axis(np.diag([1.0, 1.0, 1.0, 1.0])), left_right_axis(np.array(
    ...     [[0, 0, -1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float))
    (0, 2)
    """
    orientation = io_orientation(np.asarray(affine, dtype=np.float64))
    axes = np.flatnonzero(orientation[:, 0] == 0)
    if axes.size != 1:
        raise ValueError(f"no voxel axis runs along the left-right axis of the affine {affine.tolist()}")
    return int(axes[0])


def occluded_side_from_tmax(tmax: np.ndarray, affine: np.ndarray) -> OcclusionSide:
    """Return the occluded hemisphere by the rule of 000_194d37a6ad1291e8.txt: 'L' or 'R'.

    The volume is split at the middle of its left-right axis (found from ``affine``); on each side the
    sum of Tmax is divided by the number of non-zero voxels, and the larger value marks the occluded
    side. Ties go to 'L'.
    """
    axis = left_right_axis(affine)
    direction = int(
        io_orientation(np.asarray(affine, dtype=np.float64))[axis, 1]
    )  # +1: index grows rightwards
    size = tmax.shape[axis]
    lower = np.take(tmax, np.arange(size // 2), axis=axis)
    upper = np.take(tmax, np.arange(size - size // 2, size), axis=axis)

    def mean_nonzero(values: np.ndarray) -> float:
        count = int(np.count_nonzero(values))
        return float(values.sum()) / count if count else 0.0

    # direction +1: voxel index grows towards the patient's right (RAS +x), so the lower half is left
    left, right = (lower, upper) if direction > 0 else (upper, lower)
    return "R" if mean_nonzero(right) > mean_nonzero(left) else "L"


def favourable_recanalization(mtici: MTICI | None, threshold: MTICI = "2c") -> bool | None:
    """Return whether an mTICI grade reaches ``threshold`` (001: favourable = mTICI >= 2c); None if unknown.

    >>> favourable_recanalization("2b"), favourable_recanalization("3"), favourable_recanalization("2b", "2b")
    (False, True, True)
    """
    if mtici is None:
        return None
    return MTICI_GRADES.index(mtici) >= MTICI_GRADES.index(threshold)


class RegionDerivationError(StrokedataError):
    """A patient's clot regions cannot be derived (unreadable or mismatched CLOT / ATLAS)."""


@contextmanager
def _naming(patient_id: str) -> Iterator[None]:
    """Turn a failure to read or match a patient's CLOT and ATLAS into a RegionDerivationError."""
    try:
        yield
    except (ImageReadError, OSError, ValueError) as error:
        raise RegionDerivationError(f"{patient_id}: {error}; run `strokedata validate`") from None


def _clot_and_atlas(folder: Path, manifest: PatientManifest) -> tuple[np.ndarray, np.ndarray] | None:
    """Return a patient's CLOT and its ATLAS rounded to integers, or None when it lacks either."""
    if Modality.CLOT not in manifest.images or Modality.ATLAS not in manifest.images:
        return None
    clot = read_volume(folder / manifest.images[Modality.CLOT], MAX_VOXELS).scaled()
    atlas = read_volume(folder / manifest.images[Modality.ATLAS], MAX_VOXELS).scaled()
    return clot, np.rint(atlas)


def patient_regions_job(job: tuple[Path, PatientManifest]) -> tuple[str, list[int] | None]:
    """Return (patient id, patient_regions) for an executor; RegionDerivationError names the patient."""
    folder, manifest = job
    with _naming(manifest.patient_id):
        return manifest.patient_id, patient_regions(folder, manifest)


def slice_regions_job(job: tuple[Path, PatientManifest]) -> tuple[str, np.ndarray | None]:
    """Return (patient id, its (slices, 15) regions_by_slice) for an executor, None without CLOT or
    ATLAS; RegionDerivationError names the patient."""
    folder, manifest = job
    with _naming(manifest.patient_id):
        images = _clot_and_atlas(folder, manifest)
        return manifest.patient_id, None if images is None else regions_by_slice(*images)


def patient_regions(folder: Path, manifest: PatientManifest) -> list[int] | None:
    """Return a patient's 15 clot regions: labels.regions if given, else from its CLOT and ATLAS images.

    Returns None when the manifest gives no regions and the patient lacks CLOT or ATLAS. Raises
    ImageReadError for unreadable images and ValueError when CLOT and ATLAS differ in shape.
    """
    if manifest.labels.regions is not None:
        return list(manifest.labels.regions)
    images = _clot_and_atlas(folder, manifest)
    return None if images is None else [int(v) for v in regions_from_clot(*images)]
