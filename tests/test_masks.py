"""Masks: the largest connected component against a scipy reference, 000's artefact removal on phantom
maps with injected blobs, and CT skull stripping against the phantoms' BRAIN_MASK (Dice), with bridges
through the skull and bright vessels."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torchio as tio
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

import strokedata.transforms.masks
from strokedata.manifest import Modality
from strokedata.phantoms import Grid, PatientPhantom, generate_dataset, generate_patient, preset
from strokedata.subjects import subjects
from strokedata.transforms import (
    AIR_HU,
    PERFUSION_MASK,
    SOFT_TISSUE_HU,
    BrainMaskFromLargestComponent,
    CTWindow,
    SkullStrip,
    largest_component,
    skull_strip_mask,
)
from strokedata.transforms.masks import FillHoles, axial_axis, voxel_spacing
from strokedata.transforms.morphology import dilated, eroded, filled_holes

MAPS = ("CBF", "CBV", "MTT", "TMAX")
FINE = Grid(shape=(128, 128, 32), spacing=(1.8, 1.8, 4.0))
CT_ONLY = ["NCCT", "BRAIN_MASK", "CTA"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.fixture(scope="module")
def perfusion(tmp_path_factory: pytest.TempPathFactory) -> list[tio.Subject]:
    """Three tiny phantoms with the perfusion group only (maps, CORE, CTP), loaded once."""
    config = preset("tiny", modalities=[*MAPS, "CORE", "CTP"])
    root = generate_dataset(tmp_path_factory.mktemp("masks") / "data", 3, config, seed=3, jobs=1)
    result = subjects(root)
    for subject in result:
        subject.load()
    return result


@pytest.fixture(scope="module")
def heads() -> dict[str, list[PatientPhantom]]:
    """CT phantoms on the tiny grid (3.6 x 3.6 x 8 mm) and a finer one (1.8 x 1.8 x 4 mm)."""
    tiny = preset("tiny", modalities=CT_ONLY)
    fine = preset("tiny", ncct=FINE, angio=FINE, modalities=CT_ONLY)
    return {
        "tiny": [generate_patient(5, index, tiny) for index in range(3)],
        "fine": [generate_patient(5, index, fine) for index in range(2)],
    }


def test_the_doctests_hold() -> None:
    assert doctest.testmod(strokedata.transforms.masks).failed == 0


# --- the largest connected component ------------------------------------------------------------------

STRUCTURE_RANK = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}


def _reference(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """The largest component by scipy; ties to the lowest label, which scipy gives in C order."""
    structure = ndimage.generate_binary_structure(mask.ndim, STRUCTURE_RANK[connectivity])
    labels, count = ndimage.label(mask, structure)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return np.asarray(labels == 1 + int(np.argmax(sizes)))


@given(
    arrays(np.bool_, st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 6))),
    st.sampled_from([6, 18, 26]),
)
def test_the_largest_component_matches_scipy_in_3d(mask: np.ndarray, connectivity: int) -> None:
    result = largest_component(mask, connectivity)  # type: ignore[arg-type]
    assert result.dtype == np.bool_ and result.shape == mask.shape
    assert np.array_equal(result, _reference(mask, connectivity))


@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 3)),
       st.sampled_from([4, 8]))  # fmt: skip
def test_the_largest_component_matches_scipy_in_2d(mask: np.ndarray, connectivity: int) -> None:
    result = largest_component(mask, connectivity)  # type: ignore[arg-type]
    assert np.array_equal(result, _reference(mask != 0, connectivity))


def test_largest_component_edge_cases() -> None:
    empty = largest_component(np.zeros((3, 4, 5), dtype=np.uint8))
    assert empty.dtype == np.bool_ and empty.shape == (3, 4, 5) and not empty.any()
    # thin arrays that cc3d 4.1 alone mislabels ((3, 1)) or refuses ((1, 5) as one slice)
    assert largest_component(np.array([[0], [0], [1]]), 8).ravel().tolist() == [False, False, True]
    assert largest_component(np.array([[1, 0, 1, 0, 1]]), 8).ravel().tolist() == [True] + [False] * 4
    assert largest_component(np.array([[[1]], [[0]], [[1]], [[1]]]), 26).ravel().tolist() == [0, 0, 1, 1]
    tie = np.array([[1, 0, 1]])
    assert largest_component(tie, 4).tolist() == [[True, False, False]]  # first in C order
    for bad, connectivity in ((np.ones((2, 2)), 26), (np.ones((2, 2, 2)), 8), (np.ones(3), 6)):
        with pytest.raises(ValueError):
            largest_component(bad, connectivity)  # type: ignore[arg-type]


# --- 000: artefacts outside the brain on perfusion maps ------------------------------------------------


def _with_blobs(subject: tio.Subject) -> tio.Subject:
    """A copy of the subject with disconnected blobs in the corners of CBF and TMAX, outside the head."""
    copy = tio.Subject(
        {
            key: type(value)(tensor=value.numpy().copy(), affine=value.affine)
            if isinstance(value, tio.Image)
            else value
            for key, value in subject.items()
        }
    )
    cbf, tmax = copy["CBF"].numpy(), copy["TMAX"].numpy()
    cbf[0, 0:3, 0:3, 0:2] = 55.0
    tmax[0, 60:64, 61:64, 14:16] = 9.0
    tmax[0, 0, 63, 8] = 3.0  # a single voxel
    copy["CBF"].set_data(cbf)
    copy["TMAX"].set_data(tmax)
    return copy


def test_artefact_blobs_are_removed_and_the_brain_is_untouched(perfusion: list[tio.Subject]) -> None:
    for subject in perfusion:
        dirty = _with_blobs(subject)
        out = BrainMaskFromLargestComponent(mask_key=PERFUSION_MASK)(dirty)
        for key in MAPS:  # byte-identical to the maps before the blobs were added
            before, after = subject[key].numpy(), out[key].numpy()
            assert after.dtype == before.dtype and after.tobytes() == before.tobytes(), key
        inside = out[PERFUSION_MASK].numpy()[0] != 0
        assert isinstance(out[PERFUSION_MASK], tio.LabelMap)
        assert not inside[0:3, 0:3, 0:2].any() and not inside[60:, 61:, 14:].any()
        foreground = np.zeros(inside.shape, dtype=bool)
        for key in ("CBF", "CBV", "TMAX"):
            foreground |= subject[key].numpy()[0] > 0
        assert np.array_equal(inside, foreground)  # the phantom's brain is one component
        # CTP (HU) and CORE (a label map) are untouched unless included; then every frame is masked
        assert np.array_equal(out["CTP"].numpy(), subject["CTP"].numpy())
        assert np.array_equal(out["CORE"].numpy(), subject["CORE"].numpy())
        ctp = BrainMaskFromLargestComponent(include=[*MAPS, "CTP"])(dirty)["CTP"].numpy()
        assert np.all(ctp[:, ~inside] == 0)
        assert np.array_equal(ctp[:, inside], subject["CTP"].numpy()[:, inside])


def test_the_mask_transform_records_and_replays(perfusion: list[tio.Subject]) -> None:
    dirty = _with_blobs(perfusion[0])
    transform = BrainMaskFromLargestComponent(keys=["TMAX"], threshold=0.5, exclude=["MTT"], fill_holes=True)
    out = transform(dirty)
    (recorded,) = out.history
    assert isinstance(recorded, BrainMaskFromLargestComponent)
    assert recorded.keys == ("TMAX",) and recorded.threshold == 0.5 and recorded.fill_holes
    assert np.array_equal(out["MTT"].numpy(), dirty["MTT"].numpy())  # excluded
    replayed = out.get_composed_history()(dirty)
    assert replayed["CBF"].numpy().tobytes() == out["CBF"].numpy().tobytes()
    inside = largest_component(dirty["TMAX"].numpy()[0] > 0.5)
    assert np.array_equal(
        out["CBF"].numpy()[0] != 0, (dirty["CBF"].numpy()[0] != 0) & ndimage.binary_fill_holes(inside)
    )


def test_the_mask_transform_refuses(perfusion: list[tio.Subject]) -> None:
    subject = perfusion[0]
    with pytest.raises(ValueError, match="NOPE"):
        BrainMaskFromLargestComponent(keys=["CBF", "NOPE"])(subject)
    other = tio.Subject(dict(subject))
    other["SMALL"] = tio.ScalarImage(tensor=np.ones((1, 4, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"SMALL.*not on the grid"):
        BrainMaskFromLargestComponent(keys=["CBF", "SMALL"])(other)
    with pytest.raises(ValueError, match=r"SMALL.*not on the grid"):
        BrainMaskFromLargestComponent(include=["CBF", "SMALL"])(other)
    other["OLD_MASK"] = tio.LabelMap(tensor=np.ones((1, 4, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"OLD_MASK.*another grid"):
        BrainMaskFromLargestComponent(mask_key="OLD_MASK")(other)
    with pytest.raises(ValueError, match="cannot hold"):
        BrainMaskFromLargestComponent(include=["CTP"], background=-1e6)(subject)  # int16 CTP
    for bad in ("CBF", ()):
        with pytest.raises(ValueError, match="keys"):
            BrainMaskFromLargestComponent(keys=bad)
    with pytest.raises(ValueError, match="connectivity"):
        BrainMaskFromLargestComponent(connectivity=8)


# --- CT skull stripping -----------------------------------------------------------------------------


def _ct(phantom: PatientPhantom, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    data, affine, _ = phantom.images[modality]
    return data, affine


@pytest.mark.parametrize("grid, minimum", [("tiny", 0.95), ("fine", 0.94)])
@pytest.mark.parametrize("modality", [Modality.NCCT, Modality.CTA])
def test_the_skull_strip_mask_agrees_with_the_brain_mask(
    heads: dict[str, list[PatientPhantom]], grid: str, minimum: float, modality: Modality
) -> None:
    # measured: tiny 0.978-0.986, fine 0.959-0.966 (the mask also holds the 3 mm of CSF around the brain)
    for phantom in heads[grid]:
        hu, affine = _ct(phantom, modality)
        brain = phantom.images[Modality.BRAIN_MASK][0] != 0
        mask = skull_strip_mask(hu, affine)
        assert mask.dtype == np.bool_ and mask.shape == hu.shape
        assert dice(mask, brain) >= minimum
        if modality is Modality.NCCT:
            assert not np.any(mask & (hu > 200))  # no bone
        # nothing of the scalp: every voxel of the mask lies within 8 mm of the brain
        distance = ndimage.distance_transform_edt(~brain, sampling=voxel_spacing(affine))
        assert distance[mask].max() <= 8.0


def test_a_bridge_through_the_skull_is_cut_by_the_erosion(heads: dict[str, list[PatientPhantom]]) -> None:
    phantom = heads["fine"][0]
    hu, affine = _ct(phantom, Modality.NCCT)
    brain = phantom.images[Modality.BRAIN_MASK][0] != 0
    bridged = hu.copy()
    x, z = hu.shape[0] // 2, hu.shape[2] // 2
    bridged[x, :, z] = np.where(hu[x, :, z] > 100, 40, hu[x, :, z])  # a one-voxel channel through bone
    leaking = skull_strip_mask(bridged, affine, erosion_mm=0)
    assert dice(leaking, brain) < 0.9  # the scalp joins without the erosion
    assert dice(skull_strip_mask(bridged, affine), brain) >= 0.95


def test_bright_vessels_inside_the_brain_stay_in_the_mask(heads: dict[str, list[PatientPhantom]]) -> None:
    phantom = heads["fine"][1]
    hu, affine = _ct(phantom, Modality.CTA)
    brain = phantom.images[Modality.BRAIN_MASK][0] != 0
    vessels = ndimage.binary_erosion(brain, iterations=3)  # contrast in two sheets through the brain
    vessels[:62] = vessels[64:] = False
    vessels[62:64, :50] = vessels[62:64, 80:] = False
    tube = ndimage.binary_erosion(brain, iterations=3)
    tube[:, :70] = tube[:, 72:] = False
    tube[:40] = tube[90:] = False
    vessels |= tube
    assert np.count_nonzero(vessels) > 500
    bright = np.where(vessels, 450, hu).astype(np.int16)
    mask = skull_strip_mask(bright, affine)
    assert np.all(mask[vessels]) and dice(mask, brain) >= 0.94
    assert skull_strip_mask(bright, affine, fill_holes="slice")[vessels].all()
    assert not skull_strip_mask(bright, affine, fill_holes="none")[vessels].any()


@given(
    arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 6))),
    st.floats(0.3, 3.0),
    st.floats(0.5, 2.0),
    st.floats(0.5, 6.0),
)
def test_the_erosion_is_scipys_exact_one(
    mask: np.ndarray, spacing: float, radius: float, thickness: float
) -> None:
    """edt's distances (float32) threshold like scipy's exact float64 ones, but where the distance lies
    within a float32 rounding of the radius; thick slices (farther apart than the radius) included."""
    sizes = (spacing, spacing * 1.5, thickness)
    exact = ndimage.distance_transform_edt(mask, sampling=sizes) if not mask.all() else None
    found = eroded(mask, sizes, radius)
    if exact is None:
        assert found.all()
        return
    undecided = np.abs(exact - radius) <= 1e-5 * radius
    assert np.array_equal(found[~undecided], (exact > radius)[~undecided])
    # the dilation (within the grown bounding box) is the complement's erosion over the whole array
    grown = dilated(mask, sizes, radius)
    if mask.any():
        exact = ndimage.distance_transform_edt(~mask, sampling=sizes)
        undecided = np.abs(exact - radius) <= 1e-5 * radius
        assert np.array_equal(grown[~undecided], (exact <= radius)[~undecided])
    else:
        assert not grown.any()


def test_skull_strip_refusals() -> None:
    with pytest.raises(ValueError, match="3D"):
        skull_strip_mask(np.zeros((4, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="hu_range"):
        skull_strip_mask(np.zeros((4, 4, 4)), (1, 1, 1), hu_range=(100, 0))
    with pytest.raises(ValueError, match="voxel sizes"):
        skull_strip_mask(np.zeros((4, 4, 4)), (1, 0, 1))
    assert not skull_strip_mask(np.full((4, 4, 4), -1000), (1, 1, 1)).any()
    assert axial_axis(np.array([[0, 0, 2.0, 0], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]])) == 1


def _ct_subject(phantom: PatientPhantom) -> tio.Subject:
    images = {}
    for modality in (Modality.NCCT, Modality.CTA, Modality.BRAIN_MASK):
        data, affine, _ = phantom.images[modality]
        kind = tio.LabelMap if modality is Modality.BRAIN_MASK else tio.ScalarImage
        images[modality.value] = kind(tensor=data[None].copy(), affine=affine)
    images["SPIRAL"] = tio.ScalarImage(tensor=np.full((1, *data.shape), 0.5, np.float32), affine=affine)
    return tio.Subject(images)


def test_skull_strip_sets_the_outside_to_air(heads: dict[str, list[PatientPhantom]]) -> None:
    subject = _ct_subject(heads["tiny"][0])  # tiny phantoms: one grid for NCCT and CTA
    out = SkullStrip(mask_key="SKULL_STRIP")(subject)
    inside = out["SKULL_STRIP"].numpy()[0] != 0
    assert np.array_equal(inside, skull_strip_mask(subject["NCCT"].numpy()[0], subject["NCCT"].affine))
    data, before = out["NCCT"].numpy(), subject["NCCT"].numpy()
    assert data.dtype == before.dtype
    assert np.all(data[:, ~inside] == AIR_HU) and np.array_equal(data[:, inside], before[:, inside])
    # CTA shares the tiny grid but is another acquisition: stripped by its own mask when asked
    assert np.array_equal(out["CTA"].numpy(), subject["CTA"].numpy())
    cta = SkullStrip("CTA")(out)["CTA"].numpy()
    own = skull_strip_mask(subject["CTA"].numpy()[0], subject["CTA"].affine)
    assert np.all(cta[:, ~own] == AIR_HU) and np.array_equal(cta[:, own], subject["CTA"].numpy()[:, own])
    assert np.array_equal(out["SPIRAL"].numpy(), subject["SPIRAL"].numpy())  # not in HU: untouched
    assert np.array_equal(out["BRAIN_MASK"].numpy(), subject["BRAIN_MASK"].numpy())
    (recorded,) = out.history
    assert isinstance(recorded, SkullStrip) and recorded.erosion_mm == 4.0
    replaced = SkullStrip(include=["NCCT", "CTA"], background=0, mask_key="BRAIN_MASK")(subject)
    assert np.array_equal(replaced["BRAIN_MASK"].numpy()[0] != 0, inside)
    assert np.all(replaced["CTA"].numpy()[:, ~inside] == 0)
    with pytest.raises(ValueError, match="in HU"):
        SkullStrip()(tio.Subject(NCCT=tio.ScalarImage(tensor=np.full((1, 8, 8, 4), -1000.0))))
    with pytest.raises(ValueError, match=r"every voxel.*in HU"):
        SkullStrip()(CTWindow("brain")(subject))
    for bad in ({"hu_range": (0, 0)}, {"erosion_mm": -1.0}, {"fill_holes": "3d"}):
        with pytest.raises(ValueError):
            SkullStrip(**bad)  # type: ignore[arg-type]


def test_results_are_byte_identical_across_runs(heads: dict[str, list[PatientPhantom]]) -> None:
    hu, affine = _ct(heads["fine"][0], Modality.CTA)
    assert skull_strip_mask(hu, affine).tobytes() == skull_strip_mask(hu.copy(), affine).tobytes()


def test_hemispheres_split_by_a_thin_fissure_are_both_kept_and_far_blobs_removed() -> None:
    # two 'hemispheres' 2 mm apart (like the falx of the realistic phantoms), 0.5 mm voxels in-plane
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    maps = np.zeros((1, 60, 60, 4), dtype=np.float32)
    maps[0, 5:28, 5:25] = 1.0
    maps[0, 32:55, 5:25] = 1.0  # x 28..31 empty: 2 mm

    def masked(data: np.ndarray, **kwargs: float) -> np.ndarray:
        image = tio.ScalarImage(tensor=data.copy(), affine=affine)
        return BrainMaskFromLargestComponent(keys=["CBF"], **kwargs)(tio.Subject(CBF=image))["CBF"].numpy()

    assert np.array_equal(masked(maps), maps)  # both halves kept, nothing added
    assert int((masked(maps, bridge_mm=0) != 0).sum()) == int((maps != 0).sum()) // 2
    with_blob = maps.copy()
    with_blob[0, 20:22, 50:52, 1] = 3.0  # 25 voxels (12.5 mm) beyond the brain's edge: an artefact
    assert np.array_equal(masked(with_blob), maps)
    with pytest.raises(ValueError, match="bridge_mm"):
        BrainMaskFromLargestComponent(bridge_mm=-1)


@given(
    st.one_of(
        arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))),
        arrays(np.bool_, st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8))),
    )
)
def test_filled_holes_are_scipys(mask: np.ndarray) -> None:
    """One cc3d labelling fills exactly the holes scipy.ndimage.binary_fill_holes fills, in 2D and 3D."""
    assert np.array_equal(filled_holes(mask), ndimage.binary_fill_holes(mask))


@given(
    arrays(np.bool_, st.tuples(st.integers(2, 9), st.integers(2, 9), st.integers(2, 6))),
    st.sampled_from(["C", "F", "view"]),
    st.floats(0.5, 4.0),
)
def test_memory_order_changes_neither_the_morphology_nor_its_layout(
    mask: np.ndarray, order: str, radius: float
) -> None:
    """A Fortran-ordered mask (a NIfTI volume as stored) or a strided view of one gives the bytes of the
    C-ordered mask, and the result keeps the input's layout (no transposing copy on the way out)."""
    sizes = (0.9, 1.3, 2.5)
    if order == "view":
        given_mask = np.asfortranarray(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    else:
        given_mask = np.asarray(mask, order=order)  # type: ignore[call-overload]
    for operation in (eroded, dilated):
        reference = operation(np.ascontiguousarray(mask), sizes, radius)
        found = operation(given_mask, sizes, radius)
        assert np.array_equal(found, reference)
        assert found.flags.c_contiguous if order == "C" else found.flags.f_contiguous


@given(
    arrays(
        np.int8,
        st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 6)),
        elements=st.integers(0, 2),
    ),
    st.tuples(*(st.tuples(st.integers(0, 3), st.integers(0, 3)) for _ in range(3))),
    st.sampled_from([0.0, 1.5, 3.0]),
    st.sampled_from(["slice", "volume", "both", "none"]),
)
def test_skull_stripping_within_the_soft_tissues_box_is_exact(
    kinds: np.ndarray, margins: tuple[tuple[int, int], ...], erosion: float, fill: FillHoles
) -> None:
    """skull_strip_mask works inside the bounding box of the soft tissue (grown by one voxel): the same
    mask as the steps run over the whole volume, with air around the head or a head touching the edge."""
    hu = np.pad(np.array([-1000.0, 30.0, 1000.0])[kinds], margins, constant_values=-1000.0)
    spacing = (1.0, 1.5, 2.0)
    soft = (hu >= SOFT_TISSUE_HU[0]) & (hu <= SOFT_TISSUE_HU[1])
    whole = strokedata.transforms.masks._opened_and_filled(soft, spacing, erosion, fill, 2)
    assert np.array_equal(skull_strip_mask(hu, spacing, erosion_mm=erosion, fill_holes=fill), whole)
    stored = np.asfortranarray(hu)  # as a NIfTI volume is read
    assert np.array_equal(skull_strip_mask(stored, spacing, erosion_mm=erosion, fill_holes=fill), whole)


def test_the_outside_is_filled_in_the_images_own_layout() -> None:
    """The skull strip's fill keeps the values inside, the memory order and the dtype of the image."""
    rng = np.random.default_rng(1)
    volume = np.asfortranarray(rng.integers(-1000, 1000, (9, 7, 5)).astype(np.int16))[None]
    inside = rng.random((9, 7, 5)) > 0.5
    filled = strokedata.transforms.masks._fill_outside(volume, inside, AIR_HU, "NCCT", "SkullStrip")
    assert filled.dtype == np.int16 and filled[0].flags.f_contiguous
    assert np.all(filled[0][~inside] == AIR_HU) and np.array_equal(filled[0][inside], volume[0][inside])
    assert not np.shares_memory(filled, volume)
