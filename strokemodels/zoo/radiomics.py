"""``radiomics-logreg``: the radiomics comparison of Zhang, Polson et al. (MIDL 2022, Table 1, "Radiomics"),
rebuilt from what the paper says of it: a radiomics model trained on the same NCCT + CTA cohort
(Zhang et al. 2021a, BHI). That paper's features (MR) and classifier are not in the text we have; here,
first-order and shape features in the spirit of pyradiomics, computed with numpy/scipy/cc3d on the
recanalization pipeline's output (NCCT, CTA and BRAIN_MASK registered to the template, skull-stripped, HU),
and a standardised, class-balanced logistic regression fitted on the training partition. No torch here.

The mirror of a voxel is its reflection through the middle of the grid along the voxel axis that runs
left-right (``strokedata.labels.left_right_axis``): the mid-sagittal plane once registered to the
(origin-centred) template. ``local mean``: the mean of the tissue voxels (of the window named) in a box of
half-width floor(4 mm / voxel size) voxels per axis; ``difference``: the mirror's value minus the voxel's
(positive where the voxel is darker). ROIs are the largest 26-connected component (ties: the lowest
cc3d label). Statistics are over the ROI's voxels: mean, population std, percentiles by linear
interpolation (numpy). An empty ROI gives 0 for every feature of its group; no feature is ever NaN.

Hypodense region, NCCT (tissue: brain voxels in 15-55 HU whose mirror is tissue too): the ROI is where the
local-mean difference exceeds 2 HU.
  hypodense_volume_ml     voxels x voxel volume / 1000
  hypodense_mean_hu       mean of the voxel difference (mirror - NCCT) in the ROI
  hypodense_std_hu        its population standard deviation
  hypodense_p10_hu        its 10th percentile
  hypodense_p90_hu        its 90th percentile
  hypodense_extent        voxels / voxels of the ROI's bounding box
  hypodense_sphericity    (36 pi V^2)^(1/3) / A, A the area of the voxel faces between ROI and not ROI
                          (pyradiomics uses a mesh; voxel faces give 0.806 for one voxel, less when ragged)
Hypoperfused region, CTA (tissue: brain voxels in 15-100 HU, vessels left out, mirror tissue too; the brain
mask is resampled onto the CTA grid by nearest neighbour when their grids differ): the ROI is where the
local-mean difference exceeds 4 HU.
  hypoperfused_volume_ml        voxels x voxel volume / 1000
  hypoperfused_mean_deficit_hu  mean of the voxel difference (mirror - CTA) in the ROI
  cta_asymmetry                 |m1 - m2| / ((m1 + m2) / 2), m1 and m2 the mean CTA of the tissue voxels of
                                the two halves of the grid (the middle plane of an odd axis in neither); 0
                                when a half has none
Hyperdense clot, NCCT: the ROI is among the brain voxels deeper than 8 mm (Euclidean distance in mm to the
nearest voxel outside the mask: the rim holds skull partial volume) of 50-90 HU that exceed their mirror
by >= 10 HU.
  clot_volume_mm3   voxels x voxel volume
  clot_max_hu       the largest NCCT value in the ROI
  clot_mean_hu      the mean NCCT value in the ROI
  clot_length_mm    the extent along the principal axis u (largest-eigenvalue eigenvector of the covariance of
                    the voxel centres in mm): max - min of the centres' projections on u, plus one voxel's
                    width along u (sum over voxel axes of |a_i . u|, a_i the affine's columns)

Classifier: z = (x - mean) / scale (scikit-learn's StandardScaler, a constant feature's scale 1), then
P(favourable) = 1 / (1 + exp(-(z . coef + intercept))), the coefficients of scikit-learn's
LogisticRegression(C=1.0, class_weight="balanced", solver="lbfgs", max_iter=10000). The means, scales,
coefficients and intercept are the JSON state; prediction needs no scikit-learn (fitting does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage
from scipy.special import expit

from strokedata.labels import left_right_axis
from strokedata.manifest import Modality
from strokemodels.zoo.rules import PatientImages

FEATURES: tuple[str, ...] = (
    "hypodense_volume_ml",
    "hypodense_mean_hu",
    "hypodense_std_hu",
    "hypodense_p10_hu",
    "hypodense_p90_hu",
    "hypodense_extent",
    "hypodense_sphericity",
    "hypoperfused_volume_ml",
    "hypoperfused_mean_deficit_hu",
    "cta_asymmetry",
    "clot_volume_mm3",
    "clot_max_hu",
    "clot_mean_hu",
    "clot_length_mm",
)
"""The feature names, in the order of the classifier's coefficients."""

INPUTS = (Modality.NCCT, Modality.CTA, Modality.BRAIN_MASK)
SMOOTHING_MM = 4.0
NCCT_TISSUE_HU = (15.0, 55.0)
HYPODENSE_MARGIN_HU = 2.0
CTA_TISSUE_HU = (15.0, 100.0)
HYPOPERFUSED_MARGIN_HU = 4.0
CLOT_HU = (50.0, 90.0)
CLOT_MARGIN_HU = 10.0
CLOT_DEPTH_MM = 8.0
C = 1.0


def _image(patient: PatientImages, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    """Return (3D float32 voxels, 4 x 4 affine) of one input; ValueError naming it when absent or bad."""
    try:
        data, affine = patient.images[modality]
    except KeyError:
        raise ValueError(f"patient {patient.patient_id} has no {modality.value} image") from None
    array = np.asarray(data, dtype=np.float32)
    if array.ndim != 3 or not np.isfinite(array).all():
        raise ValueError(f"patient {patient.patient_id}: {modality.value} is not a finite 3D image")
    return array, np.asarray(affine, dtype=np.float64)


def _spacing(affine: np.ndarray) -> np.ndarray:
    """Return the voxel sizes (mm) along the three voxel axes."""
    return np.asarray(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)), dtype=np.float64)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Return the largest 26-connected component of ``mask`` (ties: the lowest cc3d label) as bool."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    labels = cc3d.connected_components(np.pad(mask, 1), connectivity=26)[1:-1, 1:-1, 1:-1]
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return np.asarray(labels == int(np.argmax(counts)))


def _local_mean(values: np.ndarray, tissue: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Return the mean of ``values`` over the tissue voxels of the box around each voxel (0 where none)."""
    size = [2 * int(SMOOTHING_MM // s) + 1 for s in spacing]
    weight = ndimage.uniform_filter(tissue.astype(np.float32), size=size, mode="constant")
    total = ndimage.uniform_filter(np.where(tissue, values, 0).astype(np.float32), size=size, mode="constant")
    return np.where(weight > 1e-6, total / np.maximum(weight, 1e-6), 0.0).astype(np.float32)


def _asymmetric_region(
    image: np.ndarray, inside: np.ndarray, window: tuple[float, float], margin: float, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (ROI, voxel difference mirror - image, tissue): the ROI is the largest component where the
    local-mean difference exceeds ``margin`` among tissue voxels (in ``window``) with tissue mirrors."""
    axis = left_right_axis(affine)
    tissue = inside & (image >= window[0]) & (image <= window[1])
    smoothed = _local_mean(image, tissue, _spacing(affine))
    both = tissue & np.flip(tissue, axis)
    region = _largest_component(both & (np.flip(smoothed, axis) - smoothed > margin))
    return region, np.flip(image, axis) - image, tissue


def _shape(region: np.ndarray, spacing: np.ndarray) -> tuple[float, float, float]:
    """Return (volume in ml, extent, voxel-face sphericity) of a non-empty ROI."""
    volume = float(region.sum() * np.prod(spacing))
    where = np.nonzero(region)
    box = np.prod([int(w.max()) - int(w.min()) + 1 for w in where])
    padded = np.pad(region, 1).astype(np.int8)
    area = sum(
        float(np.count_nonzero(np.diff(padded, axis=i))) * float(np.prod(np.delete(spacing, i)))
        for i in range(3)
    )
    return volume / 1000.0, float(region.sum() / box), float((36 * np.pi * volume**2) ** (1 / 3) / area)


def _brain_on_grid(
    brain: np.ndarray, brain_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    """Return the brain mask on another grid (nearest neighbour through the two affines)."""
    if brain.shape == shape and np.allclose(brain_affine, affine, atol=1e-4):
        return brain
    matrix = np.linalg.inv(brain_affine) @ affine
    moved = ndimage.affine_transform(
        brain.astype(np.uint8), matrix[:3, :3], offset=matrix[:3, 3], output_shape=shape, order=0
    )
    return np.asarray(moved > 0)


def _hemispheric_asymmetry(image: np.ndarray, tissue: np.ndarray, axis: int) -> float:
    """Return |m1 - m2| / ((m1 + m2) / 2) of the tissue's mean in the grid's two halves along ``axis`` (the
    middle plane of an odd axis in neither); 0 when a half has no tissue or the means sum to <= 0."""
    size = image.shape[axis]
    means = []
    for part in (slice(0, size // 2), slice((size + 1) // 2, size)):
        values = np.moveaxis(image, axis, 0)[part][np.moveaxis(tissue, axis, 0)[part]]
        if values.size == 0:
            return 0.0
        means.append(float(values.astype(np.float64).mean()))
    total = means[0] + means[1]
    return abs(means[0] - means[1]) / (total / 2) if total > 0 else 0.0


def _clot_length(region: np.ndarray, affine: np.ndarray) -> float:
    """Return the ROI's extent (mm) along its principal axis, one voxel's width included."""
    centres = np.argwhere(region).astype(np.float64) @ affine[:3, :3].T
    covariance = np.cov(centres.T) if len(centres) > 1 else np.zeros((3, 3))
    axis = np.linalg.eigh(covariance)[1][:, -1]
    projections = centres @ axis
    return float(projections.max() - projections.min() + np.abs(affine[:3, :3].T @ axis).sum())


def radiomics_features(patient: PatientImages) -> dict[str, float]:
    """Return the patient's features (the module docstring defines them), keyed and ordered as ``FEATURES``;
    ValueError when NCCT, CTA or BRAIN_MASK is missing or not a finite 3D image."""
    ncct, ncct_affine = _image(patient, Modality.NCCT)
    mask, mask_affine = _image(patient, Modality.BRAIN_MASK)
    cta, cta_affine = _image(patient, Modality.CTA)
    if mask.shape != ncct.shape:
        raise ValueError(f"patient {patient.patient_id}: BRAIN_MASK {mask.shape} is not on NCCT's grid")
    brain = mask > 0.5
    features = dict.fromkeys(FEATURES, 0.0)

    region, difference, _ = _asymmetric_region(ncct, brain, NCCT_TISSUE_HU, HYPODENSE_MARGIN_HU, ncct_affine)
    if region.any():
        values = difference[region].astype(np.float64)
        volume, extent, sphericity = _shape(region, _spacing(ncct_affine))
        p10, p90 = np.percentile(values, [10, 90])
        features.update(
            hypodense_volume_ml=volume,
            hypodense_mean_hu=float(values.mean()),
            hypodense_std_hu=float(values.std()),
            hypodense_p10_hu=float(p10),
            hypodense_p90_hu=float(p90),
            hypodense_extent=extent,
            hypodense_sphericity=sphericity,
        )

    cta_brain = _brain_on_grid(brain, mask_affine, cta.shape, cta_affine)
    region, difference, tissue = _asymmetric_region(
        cta, cta_brain, CTA_TISSUE_HU, HYPOPERFUSED_MARGIN_HU, cta_affine
    )
    if region.any():
        features["hypoperfused_volume_ml"] = float(region.sum() * np.prod(_spacing(cta_affine)) / 1000)
        features["hypoperfused_mean_deficit_hu"] = float(difference[region].astype(np.float64).mean())
    features["cta_asymmetry"] = _hemispheric_asymmetry(cta, tissue, left_right_axis(cta_affine))

    axis = left_right_axis(ncct_affine)
    depth = ndimage.distance_transform_edt(brain, sampling=_spacing(ncct_affine))
    dense = (ncct >= CLOT_HU[0]) & (ncct <= CLOT_HU[1]) & (ncct - np.flip(ncct, axis) >= CLOT_MARGIN_HU)
    clot = _largest_component(dense & (depth > CLOT_DEPTH_MM))
    if clot.any():
        hu = ncct[clot].astype(np.float64)
        features.update(
            clot_volume_mm3=float(clot.sum() * np.prod(_spacing(ncct_affine))),
            clot_max_hu=float(hu.max()),
            clot_mean_hu=float(hu.mean()),
            clot_length_mm=_clot_length(clot, ncct_affine),
        )
    return features


class RadiomicsLogReg:
    """Radiomics features, standardised, and a class-balanced logistic regression: P(mTICI >= 2c)."""

    FEATURES = FEATURES

    def __init__(self, c: float = C) -> None:
        self.c = float(c)
        self.mean = np.zeros(len(FEATURES))
        self.scale = np.ones(len(FEATURES))
        self.coef = np.zeros(len(FEATURES))
        self.intercept = 0.0

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Compute each training patient's features (one patient's images at a time) and fit on them;
        ValueError when a label is not 0/1 or the training patients hold one class only."""
        rows, labels = [], []
        for patient in patients:
            if patient.label is None or patient.label not in (0, 1):
                raise ValueError(f"patient {patient.patient_id} has label {patient.label!r}, not 0 or 1")
            labels.append(int(patient.label))
            rows.append(list(radiomics_features(patient).values()))
        self.fit_features(np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)), np.asarray(labels))

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> Any:
        """Fit on a (patients, len(FEATURES)) matrix and 0/1 labels; return the fitted scikit-learn pipeline
        (for checks: only its numbers are kept)."""
        try:
            from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
            from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
            from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
        except ImportError:
            raise ValueError("fitting radiomics-logreg needs scikit-learn (predicting does not)") from None
        if set(np.unique(labels).tolist()) != {0, 1}:
            raise ValueError(f"it needs favourable and unfavourable patients, not labels {np.unique(labels)}")
        model = LogisticRegression(C=self.c, class_weight="balanced", solver="lbfgs", max_iter=10000)
        pipeline = make_pipeline(StandardScaler(), model).fit(features, labels)
        self.mean, self.scale = (
            np.asarray(v, dtype=np.float64) for v in (pipeline[0].mean_, pipeline[0].scale_)
        )
        self.coef, self.intercept = np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])
        return pipeline

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Return P(favourable) for a (patients, len(FEATURES)) matrix, from the stored numbers."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return np.asarray(expit(z @ self.coef + self.intercept), dtype=np.float64)

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return a (1,) array: the probability of favourable recanalization (mTICI >= 2c)."""
        row = np.asarray([list(radiomics_features(patient).values())], dtype=np.float64)
        return self.probability(row).reshape(1)

    def state(self) -> dict[str, Any]:
        """Return the feature names, C, the scaler's means and scales, the coefficients and intercept."""
        return {
            "features": list(FEATURES),
            "c": self.c,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state`` returned; ValueError when it was fitted on other features."""
        if list(state["features"]) != list(FEATURES):
            raise ValueError(f"the state's features {state['features']} are not {list(FEATURES)}")
        arrays = [np.asarray(state[key], dtype=np.float64) for key in ("mean", "scale", "coef")]
        if any(a.shape != (len(FEATURES),) for a in arrays):
            raise ValueError(f"the state's mean, scale and coef must each hold {len(FEATURES)} numbers")
        self.mean, self.scale, self.coef = arrays
        self.c, self.intercept = float(state["c"]), float(state["intercept"])
