"""radiomics-logreg: its features on phantoms and on hand-made volumes, and its logistic regression."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strokedata.manifest import Modality
from strokedata.phantoms import generate_patient, preset
from strokemodels.testing import synthetic_patients
from strokemodels.zoo.radiomics import FEATURES, INPUTS, RadiomicsLogReg, radiomics_features
from strokemodels.zoo.rules import PatientImages

SHAPE = (24, 20, 8)
SPACING = (3.0, 3.0, 6.0)  # a 3 x 3 x 1 voxel smoothing box (4 mm half-width)
VOXEL_ML = float(np.prod(SPACING)) / 1000
TISSUE_HU, CTA_HU = 35.0, 45.0


def _affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing, strict=True)]
    return affine


def _volumes(
    shape: tuple[int, int, int] = SHAPE, border: tuple[int, int, int] = (2, 2, 1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (NCCT, CTA, brain) of a symmetric, noise-free skull-stripped head: a box of tissue."""
    brain = np.zeros(shape, dtype=np.float32)
    brain[tuple(slice(b, n - b) for b, n in zip(border, shape, strict=True))] = 1
    ncct = np.where(brain > 0, TISSUE_HU, -1024).astype(np.float32)
    cta = np.where(brain > 0, CTA_HU, -1024).astype(np.float32)
    return ncct, cta, brain


def _patient(
    ncct: np.ndarray, cta: np.ndarray, brain: np.ndarray, affine: np.ndarray, label: int | None = None
) -> PatientImages:
    images = {
        Modality.NCCT: (ncct, affine),
        Modality.CTA: (cta, affine),
        Modality.BRAIN_MASK: (brain, affine),
    }
    return PatientImages("p", images, label)


def _darkened(corner: tuple[int, int, int], size: tuple[int, int, int], hu: float) -> PatientImages:
    """Return the symmetric head with an NCCT box ``hu`` darker at ``corner`` (voxel indices)."""
    ncct, cta, brain = _volumes()
    ncct[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] -= hu
    return _patient(ncct, cta, brain, _affine(SHAPE, SPACING))


@pytest.fixture(scope="module")
def phantoms() -> list[tuple[PatientImages, np.ndarray]]:
    """Two tiny phantoms as a rule reads them (before registration: the phantom's grid is already centred),
    with their CLOT label maps."""
    config = preset("tiny", modalities=[*INPUTS, Modality.CLOT])
    patients = []
    for index in range(2):
        phantom = generate_patient(2, index, config)
        images = {m: (phantom.images[m][0].astype(np.float32), phantom.images[m][1]) for m in INPUTS}
        patients.append((PatientImages(f"p{index}", images), phantom.images[Modality.CLOT][0]))
    return patients


def test_phantom_features_are_finite_and_find_the_clot(
    phantoms: list[tuple[PatientImages, np.ndarray]],
) -> None:
    for patient, clot in phantoms:
        features = radiomics_features(patient)
        assert tuple(features) == FEATURES
        assert all(np.isfinite(v) for v in features.values()), features
        assert features["hypodense_volume_ml"] > 0 and features["hypoperfused_volume_ml"] > 0
        # the phantom's clot is 60-75 HU plus noise; the ROI holds at most the clot's voxels
        assert 55 <= features["clot_mean_hu"] <= features["clot_max_hu"] <= 90
        voxel_mm3 = float(np.prod(np.sqrt((patient.images[Modality.NCCT][1][:3, :3] ** 2).sum(axis=0))))
        assert 0 < features["clot_volume_mm3"] <= (clot > 0).sum() * voxel_mm3 + 1e-6


def test_a_symmetric_head_has_no_region() -> None:
    features = radiomics_features(_patient(*_volumes(), _affine(SHAPE, SPACING)))
    assert features == dict.fromkeys(FEATURES, 0.0)


@given(
    size=st.tuples(st.integers(2, 6), st.integers(2, 8), st.integers(1, 4)),
    start=st.tuples(st.integers(3, 12), st.integers(3, 12), st.integers(1, 5)),
    darker=st.integers(7, 16).map(lambda hu: hu + 0.25),  # never on the 2 HU threshold; +3 stays >= 15 HU
)
def test_a_darkened_box_gives_its_volume_and_its_mirror_the_same(
    size: tuple[int, int, int], start: tuple[int, int, int], darker: float
) -> None:
    x0 = min(start[0], SHAPE[0] // 2 - 1 - size[0])  # in the first half along x, the smoothing box too
    corner = (x0, min(start[1], SHAPE[1] - 2 - size[1]), min(start[2], SHAPE[2] - 1 - size[2]))
    features = radiomics_features(_darkened(corner, size, darker))
    box = int(np.prod(size))
    inside = [
        min(c + s + 1, n - 2) - max(c - 1, 2) for c, s, n in zip(corner[:2], size[:2], SHAPE[:2], strict=True)
    ]
    dilated = int(np.prod(inside)) * size[2]  # one voxel more in-plane: the smoothing box's reach
    assert box * VOXEL_ML - 1e-9 <= features["hypodense_volume_ml"] <= dilated * VOXEL_ML + 1e-9
    assert features["hypodense_p90_hu"] == pytest.approx(darker)  # the box's own voxels
    assert 0 < features["hypodense_extent"] <= 1 and 0 < features["hypodense_sphericity"] < 1
    mirrored = (SHAPE[0] - corner[0] - size[0], corner[1], corner[2])
    assert radiomics_features(_darkened(mirrored, size, darker)) == pytest.approx(features, abs=1e-9)
    deeper = radiomics_features(_darkened(corner, size, darker + 3))
    assert deeper["hypodense_volume_ml"] >= features["hypodense_volume_ml"]


def test_a_darker_cta_territory_is_hypoperfused() -> None:
    ncct, cta, brain = _volumes()
    cta[3:9, 4:14, 2:6] -= 12
    features = radiomics_features(_patient(ncct, cta, brain, _affine(SHAPE, SPACING)))
    assert 60 * VOXEL_ML <= features["hypoperfused_volume_ml"] <= 8 * 12 * 4 * VOXEL_ML
    assert features["hypoperfused_mean_deficit_hu"] > 4 and features["cta_asymmetry"] > 0
    assert features["hypodense_volume_ml"] == 0 and features["clot_volume_mm3"] == 0


def test_a_cta_on_its_own_finer_grid_gets_the_brain_mask_resampled() -> None:
    ncct, cta, brain = _volumes()
    cta[3:9, 4:14, 2:6] -= 12
    affine = _affine(SHAPE, SPACING)
    coarse = radiomics_features(_patient(ncct, cta, brain, affine))
    fine = np.repeat(np.repeat(cta, 2, axis=0), 2, axis=1)  # the same head on 1.5 mm voxels
    images = {
        Modality.NCCT: (ncct, affine),
        Modality.BRAIN_MASK: (brain, affine),
        Modality.CTA: (fine, _affine(fine.shape, (1.5, 1.5, 6.0))),
    }
    features = radiomics_features(PatientImages("p", images))
    assert features["cta_asymmetry"] == pytest.approx(coarse["cta_asymmetry"], rel=1e-12)
    assert features["hypoperfused_volume_ml"] == pytest.approx(coarse["hypoperfused_volume_ml"], rel=0.1)


@pytest.mark.parametrize(("axis", "length"), [(0, 4), (1, 9), (1, 14), (2, 3)])
def test_the_clot_features_find_a_hyperdense_cylinder(axis: int, length: int) -> None:
    shape, spacing = (40, 40, 24), (1.0, 1.0, 2.0)
    ncct, cta, brain = _volumes(shape, (2, 2, 2))
    centre = np.array([14.0, 20.0, 12.0])  # in the first half, deeper than 8 mm
    grid = np.indices(shape).astype(float)
    across = [a for a in range(3) if a != axis]
    radius2 = sum(((grid[a] - centre[a]) * spacing[a]) ** 2 for a in across)
    along = grid[axis] - (centre[axis] - length // 2)
    cylinder = (radius2 <= 1.5**2) & (along >= 0) & (along < length)
    ncct[cylinder] = 68.0
    ncct[tuple(centre.astype(int))] = 80.0
    features = radiomics_features(_patient(ncct, cta, brain, _affine(shape, spacing)))
    assert features["clot_volume_mm3"] == pytest.approx(cylinder.sum() * np.prod(spacing))
    assert features["clot_max_hu"] == 80.0
    assert features["clot_mean_hu"] == pytest.approx((68.0 * (cylinder.sum() - 1) + 80.0) / cylinder.sum())
    if length * spacing[axis] > 4:  # longer than wide: the principal axis is the cylinder's
        assert features["clot_length_mm"] == pytest.approx(length * spacing[axis])


def test_a_missing_image_is_named() -> None:
    ncct, cta, brain = _volumes()
    affine = _affine(SHAPE, SPACING)
    for missing in INPUTS:
        images = {
            Modality.NCCT: (ncct, affine),
            Modality.CTA: (cta, affine),
            Modality.BRAIN_MASK: (brain, affine),
        }
        del images[missing]
        with pytest.raises(ValueError, match=missing.value):
            radiomics_features(PatientImages("p", images))


def _separable(count: int) -> list[PatientImages]:
    """Return patients whose hypodense volume alone gives the label: favourable (1) a small box."""
    patients = []
    for index in range(count):
        favourable = index % 2
        size = (2, 2 + index % 3, 1) if favourable else (5, 8 + index % 3, 3)
        patient = _darkened((4, 5, 2), size, 9.25)
        patients.append(PatientImages(f"s{index}", patient.images, favourable))
    return patients


def test_fitted_on_one_separating_feature_it_predicts_the_labels() -> None:
    model = RadiomicsLogReg()
    model.fit(_separable(8))
    for patient in _separable(12):
        (probability,) = model.predict(patient)
        assert (probability > 0.5) == bool(patient.label)
    assert model.coef[FEATURES.index("hypodense_volume_ml")] < 0


def test_the_state_round_trips_through_json() -> None:
    model = RadiomicsLogReg()
    model.fit(synthetic_patients("recanalization", INPUTS))  # the zoo contract's random patients
    restored = RadiomicsLogReg()
    restored.load_state(json.loads(json.dumps(model.state())))
    for patient in [*synthetic_patients("recanalization", INPUTS), *_separable(4)]:
        output = model.predict(patient)
        assert output.shape == (1,) and 0 <= output[0] <= 1
        assert np.array_equal(restored.predict(patient), output)
    with pytest.raises(ValueError, match="features"):
        restored.load_state({**model.state(), "features": ["other"]})


def test_the_json_numbers_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, len(FEATURES))) * rng.uniform(0.1, 100, len(FEATURES))
    features[:, 3] = 7.0  # a constant feature: scale 1
    labels = (features[:, 0] + rng.normal(scale=30, size=60) > 0).astype(int)
    model = RadiomicsLogReg()
    pipeline = model.fit_features(features, labels)
    restored = RadiomicsLogReg()
    restored.load_state(json.loads(json.dumps(model.state())))
    assert np.abs(restored.probability(features) - pipeline.predict_proba(features)[:, 1]).max() < 1e-12
    patient = _separable(1)[0]
    row = np.array([list(radiomics_features(patient).values())])
    assert abs(restored.predict(patient)[0] - pipeline.predict_proba(row)[0, 1]) < 1e-12


def test_one_class_or_a_bad_label_is_refused() -> None:
    patients = _separable(4)
    with pytest.raises(ValueError, match="favourable and unfavourable patients"):
        RadiomicsLogReg().fit([p for p in patients if p.label == 1])
    with pytest.raises(ValueError, match="not 0 or 1"):
        RadiomicsLogReg().fit([PatientImages("x", patients[0].images, 2)])
