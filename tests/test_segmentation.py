"""Segmentation metrics: edge cases, scikit-learn agreement, 26-connected lesions, brute-force HD95."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from strokemodels.benchmark.segmentation import (
    SEGMENTATION_METRICS,
    _hd95_mm,
    segmentation_metrics,
)

SHAPE = (12, 12, 6)
ISOTROPIC = (1.0, 1.0, 1.0)

spacings = st.tuples(*[st.sampled_from([0.5, 0.9, 1.0, 2.0, 5.0])] * 3)


@st.composite
def mask_pairs(draw: st.DrawFn, nonempty: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Random (truth, prediction) of a small random shape, as blobs, noise or both; non-empty if asked."""
    shape = draw(st.tuples(st.integers(2, 9), st.integers(2, 9), st.integers(1, 6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = []
    for _ in range(2):
        density = draw(st.sampled_from([0.02, 0.1, 0.3, 0.6, 0.95]))
        mask = rng.random(shape) < density
        if nonempty and not mask.any():
            mask[tuple(int(rng.integers(size)) for size in shape)] = True
        masks.append(mask)
    return masks[0], masks[1]


def _surface_reference(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: in the mask with a 6-neighbour outside it, outside the volume counting as outside."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~interior


def _hd95_reference(truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]) -> float:
    """HD95 from all pairwise Euclidean distances between the two surfaces' voxel centres in mm."""
    a = np.argwhere(_surface_reference(truth)) * np.asarray(spacing)
    b = np.argwhere(_surface_reference(prediction)) * np.asarray(spacing)
    distances = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
    truth_to_prediction = float(np.percentile(distances.min(axis=1), 95))
    return max(truth_to_prediction, float(np.percentile(distances.min(axis=0), 95)))


def _block(shape: tuple[int, int, int], *boxes: tuple[slice, slice, slice]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        mask[box] = True
    return mask


def test_api_constants() -> None:
    truth = _block(SHAPE, np.s_[2:5, 2:5, 1:3])
    assert tuple(segmentation_metrics(truth, truth, ISOTROPIC)) == SEGMENTATION_METRICS
    assert len(SEGMENTATION_METRICS) == 7
    from strokemodels.benchmark.tasks import TASKS

    lower = set(TASKS["core"].lower_is_better)
    assert {"volume_difference_ml", "lesion_count_difference", "hd95_mm"} == lower
    assert list(SEGMENTATION_METRICS) == TASKS["core"].metrics


def test_perfect_prediction() -> None:
    truth = _block(SHAPE, np.s_[2:5, 2:5, 1:3], np.s_[8:10, 8:11, 4:6])
    result = segmentation_metrics(truth.astype(np.uint8), truth.astype(np.float32) * 3.5, (2.0, 2.0, 5.0))
    assert result == {
        "dice": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "volume_difference_ml": 0.0,
        "lesion_f1": 1.0,
        "lesion_count_difference": 0.0,
        "hd95_mm": 0.0,
    }


def test_both_empty_is_perfect() -> None:
    empty = np.zeros(SHAPE, dtype=np.int16)
    result = segmentation_metrics(empty, empty, ISOTROPIC)
    assert [result[name] for name in SEGMENTATION_METRICS] == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_empty_prediction_scores_worst() -> None:
    truth = _block(SHAPE, np.s_[2:5, 2:5, 1:3])
    spacing = (0.8, 0.8, 5.0)
    result = segmentation_metrics(truth, np.zeros(SHAPE, dtype=bool), spacing)
    diagonal = math.sqrt((12 * 0.8) ** 2 + (12 * 0.8) ** 2 + (6 * 5.0) ** 2)
    assert (result["dice"], result["precision"], result["recall"], result["lesion_f1"]) == (0, 0, 0, 0)
    assert result["hd95_mm"] == pytest.approx(diagonal, abs=1e-12)
    assert result["lesion_count_difference"] == 1.0
    assert result["volume_difference_ml"] == pytest.approx(18 * 0.8 * 0.8 * 5.0 / 1000)


def test_prediction_on_empty_truth_scores_worst() -> None:
    prediction = _block(SHAPE, np.s_[0:1, 0:1, 0:1])
    result = segmentation_metrics(np.zeros(SHAPE, dtype=bool), prediction, ISOTROPIC)
    assert (result["dice"], result["precision"], result["recall"], result["lesion_f1"]) == (0, 0, 0, 0)
    assert result["hd95_mm"] == pytest.approx(math.sqrt(12**2 + 12**2 + 6**2), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(mask_pairs())
def test_overlap_metrics_agree_with_sklearn(masks: tuple[np.ndarray, np.ndarray]) -> None:
    truth, prediction = masks
    result = segmentation_metrics(truth, prediction, ISOTROPIC)
    flat_truth, flat_prediction = truth.ravel(), prediction.ravel()
    assert result["dice"] == pytest.approx(sk.f1_score(flat_truth, flat_prediction), abs=1e-9)
    assert result["precision"] == pytest.approx(sk.precision_score(flat_truth, flat_prediction), abs=1e-9)
    assert result["recall"] == pytest.approx(sk.recall_score(flat_truth, flat_prediction), abs=1e-9)
    assert segmentation_metrics(prediction, truth, ISOTROPIC)["dice"] == result["dice"]


def test_volume_difference_in_ml_uses_spacing() -> None:
    truth = _block(SHAPE, np.s_[0:10, 0:10, 0:1])  # 100 voxels of 2 x 2 x 5 mm = 20 ml
    prediction = _block(SHAPE, np.s_[0:5, 0:10, 0:1])  # 50 voxels = 1 ml
    result = segmentation_metrics(truth, prediction, (2.0, 2.0, 5.0))
    assert result["volume_difference_ml"] == pytest.approx(1.0, abs=1e-12)
    swapped = segmentation_metrics(prediction, truth, (2.0, 2.0, 5.0))
    assert swapped["volume_difference_ml"] == pytest.approx(1.0, abs=1e-12)


def test_corner_touching_voxels_are_one_lesion() -> None:
    truth = _block(SHAPE, np.s_[2:3, 2:3, 2:3], np.s_[3:4, 3:4, 3:4])  # touch at a corner only
    single = _block(SHAPE, np.s_[2:3, 2:3, 2:3])  # detects the one 26-connected lesion
    result = segmentation_metrics(truth, single, ISOTROPIC)
    assert result["lesion_count_difference"] == 0.0
    assert result["lesion_f1"] == 1.0


def test_lesions_separated_by_a_gap_are_two() -> None:
    truth = _block(SHAPE, np.s_[2:3, 2:3, 2:3], np.s_[4:5, 2:3, 2:3])  # one empty voxel between them
    single = _block(SHAPE, np.s_[2:3, 2:3, 2:3])
    result = segmentation_metrics(truth, single, ISOTROPIC)
    assert result["lesion_count_difference"] == 1.0
    assert result["lesion_f1"] == pytest.approx(1 / (1 + 0.5))  # TP 1, FN 1, FP 0


def test_single_overlapping_voxel_detects_a_lesion() -> None:
    truth = _block(SHAPE, np.s_[1:8, 1:8, 0:4])
    prediction = _block(SHAPE, np.s_[7:8, 7:8, 3:4])
    result = segmentation_metrics(truth, prediction, ISOTROPIC)
    assert result["lesion_f1"] == 1.0
    assert result["lesion_count_difference"] == 0.0
    assert result["dice"] == pytest.approx(2 / (196 + 1))


def test_lesion_f1_hand_computed() -> None:
    truth = _block(SHAPE, np.s_[1:3, 1:3, 0:2], np.s_[8:11, 8:11, 3:5])
    # hits the first truth lesion (overlapping one voxel and spilling out), misses the second, adds one
    prediction = _block(SHAPE, np.s_[2:4, 2:4, 1:2], np.s_[1:2, 9:11, 5:6])
    result = segmentation_metrics(truth, prediction, ISOTROPIC)
    assert result["lesion_f1"] == 0.5  # TP 1, FN 1, FP 1: 1 / (1 + (1 + 1) / 2)
    assert result["lesion_count_difference"] == 0.0
    three_predicted = prediction | _block(SHAPE, np.s_[6:7, 0:1, 0:1])  # a second false lesion
    result = segmentation_metrics(truth, three_predicted, ISOTROPIC)
    assert result["lesion_f1"] == pytest.approx(1 / (1 + 1.5))
    assert result["lesion_count_difference"] == 1.0


def test_volume_border_counts_as_background_for_surfaces() -> None:
    """As MONAI (scipy's binary_erosion, border_value=0): a mask filling the volume has its outer shell
    as surface. T-surface: 6 face centres at 1, 12 edges at sqrt 2, 8 corners at sqrt 3 from the centre."""
    truth = np.ones((3, 3, 3), dtype=bool)
    prediction = _block((3, 3, 3), np.s_[1:2, 1:2, 1:2])
    assert segmentation_metrics(truth, prediction, ISOTROPIC)["hd95_mm"] == pytest.approx(math.sqrt(3))
    # The same cube in a corner of a bigger volume or in its interior scores the same.
    corner = segmentation_metrics(
        _block((6, 6, 6), np.s_[0:3, 0:3, 0:3]), _block((6, 6, 6), np.s_[0:1, 0:1, 0:1]), ISOTROPIC
    )
    interior = segmentation_metrics(
        _block((6, 6, 6), np.s_[2:5, 2:5, 2:5]), _block((6, 6, 6), np.s_[2:3, 2:3, 2:3]), ISOTROPIC
    )
    assert corner["hd95_mm"] == interior["hd95_mm"] == pytest.approx(3.0)


@settings(max_examples=150, deadline=None)
@given(mask_pairs(), spacings)
def test_hd95_matches_brute_force(masks: tuple[np.ndarray, np.ndarray], spacing: tuple[float, ...]) -> None:
    truth, prediction = masks
    expected = _hd95_reference(truth, prediction, spacing)
    result = segmentation_metrics(truth, prediction, (spacing[0], spacing[1], spacing[2]))
    assert result["hd95_mm"] == pytest.approx(expected, abs=1e-9)
    assert segmentation_metrics(prediction, truth, (spacing[0], spacing[1], spacing[2]))["hd95_mm"] == (
        pytest.approx(expected, abs=1e-9)
    )


@settings(max_examples=150, deadline=None)
@given(mask_pairs(nonempty=False), spacings, st.integers(0, 4), st.integers(0, 4))
def test_cropping_does_not_change_hd95(
    masks: tuple[np.ndarray, np.ndarray], spacing: tuple[float, ...], before: int, after: int
) -> None:
    truth, prediction = masks
    voxel = (spacing[0], spacing[1], spacing[2])
    cropped = _hd95_mm(truth, prediction, voxel, crop=True)
    assert cropped == pytest.approx(_hd95_mm(truth, prediction, voxel, crop=False), abs=1e-12)
    if truth.any() and prediction.any():  # padding the volume with background changes nothing either
        widths = ((before, after), (after, before), (before, before))
        padded = _hd95_mm(np.pad(truth, widths), np.pad(prediction, widths), voxel, crop=True)
        assert padded == pytest.approx(cropped, abs=1e-9)


@pytest.mark.parametrize(
    ("truth", "prediction", "message"),
    [
        (np.zeros((4, 4)), np.zeros((4, 4)), "3D"),
        (np.zeros((4, 4, 4)), np.zeros((4, 4, 4, 1)), "3D"),
        (np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), "same shape"),
    ],
)
def test_bad_input_raises(truth: np.ndarray, prediction: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segmentation_metrics(truth, prediction, ISOTROPIC)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -2.0, 1.0), (1.0, math.nan, 1.0)])
def test_bad_spacing_raises(spacing: tuple[float, ...]) -> None:
    mask = np.zeros((4, 4, 4))
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(mask, mask, spacing)  # type: ignore[arg-type]
