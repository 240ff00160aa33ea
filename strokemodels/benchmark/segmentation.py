"""Per-patient metrics of a binary infarct-core segmentation against the truth.

Definitions follow the ISLES'22/'24 challenge evaluation (``utils/eval_utils.py`` of
github.com/ezequieldlrosa/isles22) and MONAI's 95th-percentile Hausdorff distance
(``monai.metrics.compute_hausdorff_distance(..., percentile=95)``). Policies:

* Masks: ``truth`` and ``prediction`` are 3D arrays of the same shape; any nonzero voxel is lesion.
  ``spacing`` is the voxel size in mm along the three array axes.
* ``dice`` = 2|T∩P| / (|T| + |P|), ``precision`` = |T∩P| / |P|, ``recall`` = |T∩P| / |T|. A zero
  denominator (0/0) scores 1.0 when BOTH masks are empty and 0.0 otherwise: an empty prediction never
  earns precision 1 against a non-empty truth, and any prediction on an empty truth gets precision 0.
* ``volume_difference_ml`` = abs(|P| - |T|) * prod(spacing) / 1000.
* Lesions are 26-connected components (cc3d). A truth lesion with any predicted voxel in it is a true
  positive (TP), otherwise a false negative (FN); a predicted lesion with no truth voxel in it is a false
  positive (FP). ``lesion_f1`` = TP / (TP + (FP + FN) / 2), 1.0 when neither mask has a lesion.
  ``lesion_count_difference`` = abs(#predicted lesions - #truth lesions).
* ``hd95_mm``: surfaces as in MONAI, mask XOR ``scipy.ndimage.binary_erosion(mask)`` with the default
  6-connected structuring element and scipy's default ``border_value=0``, so voxels outside the volume
  count as background and a lesion voxel on the volume border is a surface voxel (checked against
  MONAI 1.6.1, whose crop pads with background and then calls the same scipy erosion). Distances from each
  surface voxel of one mask to the nearest surface voxel of the other come from
  ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)``; the value is the larger of the two
  directed 95th percentiles (``np.percentile``, linear interpolation). Both masks empty: 0.0. Exactly one
  empty: the worst possible value, the diagonal of the volume's extent in mm,
  sqrt(sum((shape_i * spacing_i) ** 2)), not MONAI's NaN, which would reward missing a lesion. The distance
  transforms run only inside the bounding box of both masks padded by one voxel, which gives the same
  result as the whole volume: every surface voxel lies in the box and the transform is exact.
"""

from __future__ import annotations

import math

import cc3d
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from strokemodels.benchmark.tasks import TASKS

SEGMENTATION_METRICS: tuple[str, ...] = tuple(TASKS["core"].metrics)
"""The keys of ``segmentation_metrics``, in order: the core task card's metrics."""

_Mask = NDArray[np.bool_]


def segmentation_metrics(
    truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float, float]
) -> dict[str, float]:
    """Return the seven metrics (keys in SEGMENTATION_METRICS order) of one patient's 3D masks.

    Nonzero voxels are lesion; ``spacing`` is the voxel size in mm along the three array axes. The
    policies (empty masks, lesion matching, surfaces) are those of the module docstring. Raises
    ValueError when the masks are not 3D, differ in shape, or the spacing is not three positive numbers.
    """
    truth_mask = _as_mask(truth, "truth")
    prediction_mask = _as_mask(prediction, "prediction")
    if truth_mask.shape != prediction_mask.shape:
        shapes = f"{truth_mask.shape} and {prediction_mask.shape}"
        raise ValueError(f"truth and prediction must have the same shape, got {shapes}")
    voxel_mm = _as_spacing(spacing)

    truth_voxels = int(np.count_nonzero(truth_mask))
    predicted_voxels = int(np.count_nonzero(prediction_mask))
    overlap = int(np.count_nonzero(truth_mask & prediction_mask))
    both_empty = truth_voxels == 0 and predicted_voxels == 0
    voxel_ml = math.prod(voxel_mm) / 1000.0
    lesion_f1, lesion_count_difference = _lesion_scores(truth_mask, prediction_mask)
    return {
        "dice": _ratio(2 * overlap, truth_voxels + predicted_voxels, both_empty),
        "precision": _ratio(overlap, predicted_voxels, both_empty),
        "recall": _ratio(overlap, truth_voxels, both_empty),
        "volume_difference_ml": abs(predicted_voxels - truth_voxels) * voxel_ml,
        "lesion_f1": lesion_f1,
        "lesion_count_difference": float(lesion_count_difference),
        "hd95_mm": _hd95_mm(truth_mask, prediction_mask, voxel_mm),
    }


def _as_mask(array: np.ndarray, name: str) -> _Mask:
    """Return ``array != 0`` as a boolean 3D array; ValueError when it is not 3D."""
    values = np.asarray(array)
    if values.ndim != 3:
        raise ValueError(f"{name} must be a 3D array, got {values.ndim} dimension(s) of shape {values.shape}")
    return np.asarray(values != 0, dtype=np.bool_)


def _as_spacing(spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    """Return the spacing as three floats; ValueError unless it is three finite positive numbers."""
    values = tuple(float(value) for value in spacing)
    if len(values) != 3 or not all(math.isfinite(value) and value > 0 for value in values):
        raise ValueError(f"spacing must be three finite positive voxel sizes in mm, got {spacing!r}")
    return values[0], values[1], values[2]


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Return the Dice overlap of two masks of the same shape (nonzero is lesion) by the module's
    policy: 1.0 when both are empty, 0.0 when only one is."""
    truth_voxels, predicted_voxels = int(np.count_nonzero(truth)), int(np.count_nonzero(prediction))
    overlap = int(np.count_nonzero(np.logical_and(truth, prediction)))
    return _ratio(2 * overlap, truth_voxels + predicted_voxels, truth_voxels == predicted_voxels == 0)


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    """Return numerator / denominator; for 0/0, 1.0 when both masks are empty and 0.0 otherwise."""
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def _lesion_scores(truth: _Mask, prediction: _Mask) -> tuple[float, int]:
    """Return (lesion-wise F1, absolute difference of lesion counts) with 26-connected lesions."""
    truth_labels, truth_count = cc3d.connected_components(truth, connectivity=26, return_N=True)
    predicted_labels, predicted_count = cc3d.connected_components(prediction, connectivity=26, return_N=True)
    # Labels of the truth lesions touched by the prediction, and of the predicted lesions touching truth.
    # np.unique gives each label once; count_nonzero drops label 0 (background).
    detected = np.count_nonzero(np.unique(truth_labels[prediction]))
    touching = np.count_nonzero(np.unique(predicted_labels[truth]))
    true_positive = int(detected)
    false_negative = int(truth_count) - true_positive
    false_positive = int(predicted_count) - int(touching)
    count_difference = abs(int(predicted_count) - int(truth_count))
    if true_positive + false_positive + false_negative == 0:
        return 1.0, count_difference
    return true_positive / (true_positive + (false_positive + false_negative) / 2), count_difference


def _surface(mask: _Mask) -> _Mask:
    """Return the surface voxels of ``mask``: mask XOR its 6-connected erosion (outside = background)."""
    return np.asarray(mask ^ ndimage.binary_erosion(mask), dtype=np.bool_)


def _hd95_mm(
    truth: _Mask, prediction: _Mask, spacing: tuple[float, float, float], *, crop: bool = True
) -> float:
    """Return the symmetric 95th-percentile Hausdorff distance in mm between the masks' surfaces.

    0.0 when both masks are empty, the volume's diagonal in mm when exactly one is. With ``crop`` the work
    is done inside the bounding box of both masks padded by one voxel, which gives the same value.
    """
    truth_empty, prediction_empty = not truth.any(), not prediction.any()
    if truth_empty and prediction_empty:
        return 0.0
    if truth_empty or prediction_empty:
        return math.sqrt(sum((size * step) ** 2 for size, step in zip(truth.shape, spacing, strict=True)))
    if crop:
        box = _padded_bounding_box(truth | prediction)
        truth, prediction = truth[box], prediction[box]
    truth_surface, prediction_surface = _surface(truth), _surface(prediction)
    to_prediction = ndimage.distance_transform_edt(~prediction_surface, sampling=spacing)
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)
    truth_to_prediction = float(np.percentile(to_prediction[truth_surface], 95))
    prediction_to_truth = float(np.percentile(to_truth[prediction_surface], 95))
    return max(truth_to_prediction, prediction_to_truth)


def _padded_bounding_box(mask: _Mask) -> tuple[slice, ...]:
    """Return slices of the bounding box of a non-empty mask, padded by one voxel within the volume."""
    box = []
    for axis in range(mask.ndim):
        occupied = np.flatnonzero(mask.any(axis=tuple(other for other in range(mask.ndim) if other != axis)))
        box.append(slice(max(int(occupied[0]) - 1, 0), min(int(occupied[-1]) + 2, mask.shape[axis])))
    return tuple(box)
