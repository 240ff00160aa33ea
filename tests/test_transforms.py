"""The papers' preprocessing as TorchIO transforms: clip and scale, CT windows, relative maps, mirroring,
the mirrored channel and temporal resampling, on tiny phantoms and on hand-made volumes; their history,
inverses and refusals."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torchio as tio
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import strokedata.transforms.hemispheres
import strokedata.transforms.intensity
import strokedata.transforms.temporal
from strokedata.labels import left_right_axis, occluded_side_from_tmax
from strokedata.manifest import LABEL_MAPS
from strokedata.phantoms import generate_dataset, preset
from strokedata.subjects import subjects
from strokedata.transforms import (
    CT_WINDOWS,
    MIRRORED,
    PERFUSION_000,
    TMAX_SIDE,
    AddMirroredChannel,
    ClipAndScale,
    CTWindow,
    MirrorToCanonicalSide,
    OccludedSideFromTmax,
    RelativeToContralateral,
    TemporalResample,
    resample_frames,
)
from strokedata.transforms.intensity import clip_and_scale

TINY = preset("tiny")
LABEL_KEYS = sorted(m.value for m in LABEL_MAPS)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six tiny phantoms, both occluded sides among them."""
    root = generate_dataset(tmp_path_factory.mktemp("transforms") / "data", 6, TINY, seed=0, jobs=1)
    assert {s["occlusion_side"] for s in subjects(root)} == {"L", "R"}
    return root


@pytest.fixture(scope="module")
def loaded(cohort: Path) -> list[tio.Subject]:
    """The cohort's subjects, loaded once; tests transform copies (torchio's copy=True), never these."""
    result = subjects(cohort)
    for subject in result:
        subject.load()
    return result


def _arrays(subject: tio.Subject) -> dict[str, np.ndarray]:
    return {
        name: image.numpy().copy() for name, image in subject.get_images_dict(intensity_only=False).items()
    }


def _same_bytes(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )


def _subject(affine: np.ndarray | None = None, **data: np.ndarray) -> tio.Subject:
    """A subject of scalar images from (C, x, y, z) arrays, all with ``affine`` (identity by default)."""
    return tio.Subject(**{k: tio.ScalarImage(tensor=v, affine=affine) for k, v in data.items()})


def test_the_doctests_hold() -> None:
    for module in (
        strokedata.transforms.intensity,
        strokedata.transforms.hemispheres,
        strokedata.transforms.temporal,
    ):
        assert doctest.testmod(module).failed == 0


# --- clip and scale, CT windows ----------------------------------------------------------------------


def test_the_presets_are_the_papers_numbers() -> None:
    assert PERFUSION_000 == {"TMAX": (0, 20), "CBF": (0, 400), "CBV": (0, 400)}
    assert CT_WINDOWS == {"brain": (40, 80), "stroke": (40, 40), "angiography": (300, 600)}
    assert CTWindow("brain").bounds == (0, 80) and CTWindow((32, 8)).bounds == (28, 36)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
           elements=st.floats(-1e4, 1e4)),
    st.floats(-1e3, 1e3),
    st.floats(1e-2, 1e3),
)  # fmt: skip
def test_clip_and_scale_maps_the_range_onto_0_1_in_order(values: np.ndarray, low: float, span: float) -> None:
    out = ClipAndScale({"X": (low, low + span)})(_subject(X=values))["X"].numpy()
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    expected = np.clip((values - low) / span, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    order = np.argsort(values, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)


@given(
    st.sampled_from([np.int16, np.uint16, np.int8, np.uint8]),
    st.integers(0, 2**32 - 1),
    st.floats(-2e3, 2e3),
    st.floats(1e-2, 4e3),
    st.booleans(),
)
def test_integer_images_are_scaled_to_the_bytes_of_the_float64_path(
    dtype: type[np.integer], seed: int, low: float, span: float, fortran: bool
) -> None:
    """CT in HU goes through a table of every stored value: exactly what the float64 path gives, in
    either memory order (NIfTI volumes arrive in Fortran order)."""
    info = np.iinfo(dtype)
    values = np.random.default_rng(seed).integers(info.min, info.max + 1, (2, 5, 4, 3)).astype(dtype)
    values = np.asfortranarray(values) if fortran else values
    expected = np.empty(values.shape, np.float32)
    for channel, plane in enumerate(values):
        expected[channel] = (np.clip(plane.astype(np.float64), low, low + span) - low) / span
    assert np.array_equal(clip_and_scale(values, low, low + span), expected)


def test_perfusion_000_scales_tmax_by_20_s(loaded: list[tio.Subject]) -> None:
    subject = loaded[0]
    out = ClipAndScale(PERFUSION_000)(subject)
    tmax = subject["TMAX"].numpy()
    np.testing.assert_allclose(out["TMAX"].numpy(), np.clip(tmax, 0, 20) / 20, atol=1e-6)
    assert _same_bytes({"MTT": out["MTT"].numpy()}, {"MTT": subject["MTT"].numpy()})  # others untouched


def test_ct_windows_scale_hu_and_touch_only_ct(loaded: list[tio.Subject]) -> None:
    subject = loaded[1]
    out = CTWindow("brain")(subject)
    for key in ("NCCT", "CTA", "MCTA1", "MCTA2", "MCTA3", "CTP"):
        hu = subject[key].numpy().astype(np.float64)
        np.testing.assert_allclose(out[key].numpy(), np.clip(hu / 80, 0, 1), atol=1e-6)
    for key in ("CBF", "TMAX", "SPIRAL", "ATLAS"):
        assert np.array_equal(out[key].numpy(), subject[key].numpy())
    only = CTWindow("angiography", include=["CTA"])(subject)
    np.testing.assert_allclose(only["CTA"].numpy(), np.clip(subject["CTA"].numpy() / 600, 0, 1), atol=1e-6)
    assert np.array_equal(only["NCCT"].numpy(), subject["NCCT"].numpy())


@pytest.mark.parametrize(
    "transform",
    [
        ClipAndScale({"TMAX": (0, 20), "PERFUSION_X": (0, 1)}),
        CTWindow("stroke", include=["PERFUSION_X"]),
        RelativeToContralateral(keys=("CBF", "PERFUSION_X")),
        RelativeToContralateral(keys=("CBF",), mask_key="PERFUSION_X"),
        AddMirroredChannel(keys=("PERFUSION_X",)),
        TemporalResample(32, key="PERFUSION_X"),
    ],
    ids=lambda t: t.name,
)
def test_a_missing_image_is_an_error_naming_it(loaded: list[tio.Subject], transform: tio.Transform) -> None:
    with pytest.raises(ValueError, match="PERFUSION_X"):
        transform(loaded[0])


def test_refusals() -> None:
    for bad in ({}, {"X": (1, 1)}, {"X": (0, float("nan"))}, {"X": (0, 1, 2)}):
        with pytest.raises(ValueError):
            ClipAndScale(bad)
    for window in ("bone", (40, 0), (40,)):
        with pytest.raises(ValueError):
            CTWindow(window)
    for frames in (1, 0, 2.5, True):
        with pytest.raises(ValueError):
            TemporalResample(frames)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys"):
        AddMirroredChannel(keys="CTP")
    with pytest.raises(ValueError, match="canonical"):
        MirrorToCanonicalSide(canonical="X")  # type: ignore[arg-type]
    labels = tio.Subject(SEG=tio.LabelMap(tensor=np.ones((1, 2, 2, 2), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"SEG.*label map"):
        ClipAndScale({"SEG": (0, 1)})(labels)
    with pytest.raises(ValueError, match="no CT image"):
        CTWindow("brain")(_subject(CBF=np.ones((1, 2, 2, 2))))
    with pytest.raises(ValueError, match="1 frame"):
        TemporalResample(8, key="CBF")(_subject(CBF=np.ones((1, 2, 2, 2))))


# --- the left-right axis ------------------------------------------------------------------------------

orientations = st.tuples(
    st.permutations([0, 1, 2]),
    st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    st.tuples(*[st.floats(0.3, 5.0)] * 3),
    st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 5)),
)


Orientation = tuple[list[int], tuple[float, ...], tuple[float, ...], tuple[int, ...]]


def _centred(orientation: Orientation) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Return (affine, shape, world x of every voxel) for a signed-permutation affine centred on 0."""
    permutation, signs, spacing, shape = orientation
    matrix = np.zeros((3, 3))
    for voxel_axis, world_axis in enumerate(permutation):
        matrix[world_axis, voxel_axis] = signs[voxel_axis] * spacing[voxel_axis]
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = -matrix @ ((np.array(shape) - 1) / 2)
    index = np.indices(shape).reshape(3, -1)
    world_x = (affine[0, :3] @ index + affine[0, 3]).reshape(shape)
    return affine, shape, world_x


@given(orientations)
def test_the_left_right_axis_is_the_voxel_axis_along_world_x(orientation: Orientation) -> None:
    affine, _, _ = _centred(orientation)
    assert left_right_axis(affine) == orientation[0].index(0)


@given(orientations)
def test_mirroring_negates_world_x_whatever_the_orientation(orientation: Orientation) -> None:
    affine, _, world_x = _centred(orientation)
    subject = _subject(affine, X=world_x[None])
    subject["side"] = "L"
    out = MirrorToCanonicalSide(side_key="side", canonical="R")(subject)
    assert out[MIRRORED] is True
    np.testing.assert_allclose(out["X"].numpy()[0], -world_x, atol=1e-9)
    assert np.array_equal(out["X"].affine, subject["X"].affine)


# --- relative to the contralateral hemisphere ---------------------------------------------------------


@given(orientations, st.floats(0.5, 500), st.floats(0.5, 500))
def test_relative_maps_divide_each_half_by_the_other_halfs_mean(
    orientation: Orientation, a: float, b: float
) -> None:
    affine, shape, world_x = _centred(orientation)
    if shape[orientation[0].index(0)] < 2:
        return  # one voxel across: no hemispheres
    values = np.where(world_x < 0, a, np.where(world_x > 0, b, (a + b) / 2))
    out = RelativeToContralateral(keys=["CBF"], mask_key=None)(_subject(affine, CBF=values[None]))["CBF"]
    result = out.numpy()[0]
    assert result.dtype == np.float32
    np.testing.assert_allclose(result[world_x < 0], a / b * 100, rtol=1e-5)
    np.testing.assert_allclose(result[world_x > 0], b / a * 100, rtol=1e-5)
    np.testing.assert_allclose(result[world_x == 0], (a + b) / 2 / ((a + b) / 2) * 100, rtol=1e-5)


def _mean_nonzero(values: np.ndarray) -> float:
    return float(values[values != 0].mean())


def test_relative_maps_on_phantoms(loaded: list[tio.Subject]) -> None:
    for subject in loaded:
        out = RelativeToContralateral()(subject)
        for key in ("CBF", "CBV"):
            before, after = subject[key].numpy()[0].astype(np.float64), out[key].numpy()[0]
            half = before.shape[0] // 2  # phantoms: voxel axis 0 is left-right, even size
            left, right = _mean_nonzero(before[:half]), _mean_nonzero(before[half:])
            np.testing.assert_allclose(after[:half], before[:half] / right * 100, rtol=1e-5)
            np.testing.assert_allclose(after[half:], before[half:] / left * 100, rtol=1e-5)
            # the two relative means multiply to 100 %^2
            assert _mean_nonzero(after[:half]) * _mean_nonzero(after[half:]) == pytest.approx(1e4, rel=1e-5)


def test_relative_maps_inside_a_mask(loaded: list[tio.Subject]) -> None:
    subject = loaded[2]  # tiny phantoms: NCCT and perfusion share one grid
    out = RelativeToContralateral(keys=["CBF"], mask_key="BRAIN_MASK")(subject)["CBF"].numpy()[0]
    cbf, inside = subject["CBF"].numpy()[0].astype(np.float64), subject["BRAIN_MASK"].numpy()[0] != 0
    half = cbf.shape[0] // 2
    reference = [float(cbf[s][(cbf[s] != 0) & inside[s]].mean()) for s in (slice(0, half), slice(half, None))]
    np.testing.assert_allclose(
        out[:half], np.where(inside[:half], cbf[:half] / reference[1] * 100, 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        out[half:], np.where(inside[half:], cbf[half:] / reference[0] * 100, 0), rtol=1e-5
    )
    assert np.all(out[~inside] == 0)


def test_relative_maps_refuse_an_empty_hemisphere_and_a_mask_on_another_grid() -> None:
    values = np.zeros((1, 4, 2, 2))
    values[:, 2:] = 1
    with pytest.raises(ValueError, match=r"CBF.*lower half"):
        RelativeToContralateral(keys=["CBF"])(_subject(CBF=values))
    subject = _subject(CBF=np.ones((1, 4, 2, 2)))
    subject["MASK"] = tio.LabelMap(tensor=np.ones((1, 4, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"MASK.*not on the grid"):
        RelativeToContralateral(keys=["CBF"], mask_key="MASK")(subject)


# --- mirroring to a canonical side --------------------------------------------------------------------


def test_the_tmax_rule_transform_finds_the_phantoms_side_and_changes_no_image(
    loaded: list[tio.Subject],
) -> None:
    for subject in loaded:
        before = _arrays(subject)
        out = OccludedSideFromTmax()(subject)
        assert out[TMAX_SIDE] == subject["occlusion_side"]  # the phantom's truth
        assert _same_bytes(_arrays(out), before)
        assert [name for name, _ in out.applied_transforms] == ["OccludedSideFromTmax"]


@pytest.mark.parametrize("canonical", ["R", "L"])
def test_after_mirroring_the_tmax_rule_finds_the_canonical_side(
    loaded: list[tio.Subject], canonical: str
) -> None:
    for subject in loaded:
        out = MirrorToCanonicalSide(canonical=canonical)(subject)  # type: ignore[arg-type]
        assert out[MIRRORED] is (subject["occlusion_side"] != canonical)
        assert out["occlusion_side"] == subject["occlusion_side"]  # the label keeps the labelled side
        assert occluded_side_from_tmax(out["TMAX"].numpy()[0], out["TMAX"].affine) == canonical


def test_mirroring_twice_is_the_identity_byte_for_byte(loaded: list[tio.Subject]) -> None:
    flip = MirrorToCanonicalSide(flip=True)
    for subject in loaded:
        original = _arrays(subject)
        once = flip(subject)
        assert not _same_bytes(_arrays(once), original)
        twice = flip(once)
        assert _same_bytes(_arrays(twice), original) and twice[MIRRORED] is False


def test_the_inverse_maps_back_through_the_history(loaded: list[tio.Subject]) -> None:
    for subject in loaded:
        original = _arrays(subject)
        out = MirrorToCanonicalSide()(subject)
        (recorded,) = out.history
        assert isinstance(recorded, MirrorToCanonicalSide) and recorded.is_invertible()
        assert recorded.flip is (subject["occlusion_side"] == "L")
        # a prediction made on the mirrored images maps back with them
        out.add_image(tio.LabelMap(tensor=out["CORE"].numpy().copy(), affine=out["CORE"].affine), "PRED")
        out["occlusion_side"] = None  # the inverse follows the history, not the attribute
        back = out.apply_inverse_transform()
        assert back[MIRRORED] is False and back.history == []
        assert _same_bytes({k: v for k, v in _arrays(back).items() if k != "PRED"}, original)
        assert np.array_equal(back["PRED"].numpy(), subject["CORE"].numpy())


def test_an_inverse_outside_the_history_reads_the_subjects_record(loaded: list[tio.Subject]) -> None:
    subject = next(s for s in loaded if s["occlusion_side"] == "L")
    transform = MirrorToCanonicalSide()
    back = transform.inverse()(transform(subject))
    assert _same_bytes(_arrays(back), _arrays(subject)) and back[MIRRORED] is False
    with pytest.raises(ValueError, match="mirrored"):
        transform.inverse()(subject)
    unknown = tio.Subject(X=tio.ScalarImage(tensor=np.zeros((1, 2, 2, 2))), occlusion_side=None)
    with pytest.raises(ValueError, match="occlusion_side"):
        transform(unknown)


def test_label_maps_stay_integer_after_mirroring(loaded: list[tio.Subject]) -> None:
    for subject in loaded:
        out = MirrorToCanonicalSide(flip=True)(subject)
        for key in LABEL_KEYS:
            assert isinstance(out[key], tio.LabelMap)
            before, after = subject[key].numpy(), out[key].numpy()
            assert after.dtype == before.dtype and np.issubdtype(after.dtype, np.integer)
            assert np.array_equal(np.unique(after), np.unique(before))


# --- the mirrored channel -----------------------------------------------------------------------------


def test_the_mirrored_channel_doubles_the_channels(loaded: list[tio.Subject]) -> None:
    subject = loaded[3]
    out = AddMirroredChannel()(subject)
    ctp, extended = subject["CTP"].numpy(), out["CTP"].numpy()
    frames = ctp.shape[0]
    assert extended.shape == (2 * frames, *ctp.shape[1:]) and extended.dtype == ctp.dtype
    assert np.array_equal(extended[:frames], ctp)
    axis = left_right_axis(subject["CTP"].affine) + 1
    assert np.array_equal(extended[frames:], np.flip(extended[:frames], axis=axis))
    assert _same_bytes(_arrays(out.apply_inverse_transform()), _arrays(subject))


# --- temporal resampling ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realistic_timing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny phantoms sampled in time as the realistic preset is: 30 frames every 1.6 s."""
    config = preset("tiny", frames=30, frame_interval=1.6, modalities=["CTP"])
    return generate_dataset(tmp_path_factory.mktemp("timing") / "data", 3, config, seed=1, jobs=1)


@pytest.mark.parametrize("frames", [32, 64])
def test_temporal_resampling_keeps_each_curves_area_within_2_percent(
    loaded: list[tio.Subject], realistic_timing: Path, frames: int
) -> None:
    cases = [(s, TINY.frame_interval) for s in loaded] + [(s, 1.6) for s in subjects(realistic_timing)]
    for subject, interval in cases:
        curves = subject["CTP"].numpy().astype(np.float64)
        out = TemporalResample(frames)(subject)["CTP"].numpy()
        assert out.shape == (frames, *curves.shape[1:]) and out.dtype == np.float32
        duration = interval * (curves.shape[0] - 1)  # the output frames span the same duration
        area = np.trapezoid(curves, dx=interval, axis=0)
        resampled = np.trapezoid(out.astype(np.float64), dx=duration / (frames - 1), axis=0)
        # relative to the area under |curve|: the area itself where a curve keeps one sign, and a
        # meaningful scale where HU noise around 0 makes the signed area vanish
        scale = np.trapezoid(np.abs(curves), dx=interval, axis=0)
        assert np.all(np.abs(resampled - area) <= 0.02 * scale)
        assert out[0].tobytes() == curves[0].astype(np.float32).tobytes()
        assert out[-1].tobytes() == curves[-1].astype(np.float32).tobytes()


@given(st.integers(2, 40), st.integers(2, 40), st.floats(-2000, 2000, width=32))
def test_constant_curves_stay_constant(count: int, frames: int, value: float) -> None:
    out = resample_frames(np.full((count, 3), value, dtype=np.float32), frames)
    assert out.shape == (frames, 3) and np.all(out == np.float32(value))


@given(st.integers(2, 40), st.integers(2, 40), st.floats(-100, 100), st.floats(-100, 100))
def test_linear_curves_stay_linear(count: int, frames: int, start: float, end: float) -> None:
    out = resample_frames(np.linspace(start, end, count)[:, None], frames)[:, 0]
    np.testing.assert_allclose(out, np.linspace(start, end, frames), atol=1e-3)


def test_resampling_to_the_same_number_of_frames_is_the_identity(loaded: list[tio.Subject]) -> None:
    subject = loaded[4]
    out = TemporalResample(subject["CTP"].shape[0])(subject)
    assert _same_bytes(_arrays(out), _arrays(subject))
    frames = subject["CTP"].numpy()
    np.testing.assert_array_equal(resample_frames(frames, frames.shape[0]), frames.astype(np.float32))


# --- history, composition, laziness ------------------------------------------------------------------


def test_the_history_records_each_transform_with_its_parameters(loaded: list[tio.Subject]) -> None:
    pipeline = tio.Compose(
        [
            RelativeToContralateral(keys=("CBF", "CBV")),
            ClipAndScale(PERFUSION_000),
            CTWindow((32, 8), include=["NCCT"]),
            MirrorToCanonicalSide(canonical="R"),
            TemporalResample(frames=24),
            AddMirroredChannel(keys=["CTP"]),
        ]
    )
    subject = next(s for s in loaded if s["occlusion_side"] == "L")
    out = pipeline(subject)
    assert [(name, {k: v for k, v in args.items() if k not in ("include", "exclude", "copy")})
            for name, args in out.applied_transforms] == [
        ("RelativeToContralateral", {"keys": ("CBF", "CBV"), "mask_key": None}),
        ("ClipAndScale", {"ranges": {"TMAX": (0, 20), "CBF": (0, 400), "CBV": (0, 400)}}),
        ("CTWindow", {"window": (32.0, 8.0)}),
        ("MirrorToCanonicalSide", {"side_key": "occlusion_side", "canonical": "R", "flip": True}),
        ("TemporalResample", {"frames": 24, "key": "CTP"}),
        ("AddMirroredChannel", {"keys": ("CTP",)}),
    ]  # fmt: skip
    assert [type(t) for t in out.history] == [type(t) for t in pipeline.transforms]
    assert repr(out.history[3]) == "MirrorToCanonicalSide(side_key=occlusion_side, canonical=R, flip=True)"
    assert out.history[2].include == ["NCCT"]
    replayed = out.get_composed_history()(subject)
    assert _same_bytes(_arrays(replayed), _arrays(out))


def test_compose_on_lazily_loaded_subjects(cohort: Path) -> None:
    pipeline = tio.Compose([ClipAndScale(PERFUSION_000), MirrorToCanonicalSide()])
    for subject in subjects(cohort):  # nothing read yet
        out = pipeline(subject)
        assert float(out["TMAX"].data.min()) >= 0 and float(out["TMAX"].data.max()) <= 1
        assert occluded_side_from_tmax(out["TMAX"].numpy()[0], out["TMAX"].affine) == "R"
        assert [t.name for t in out.history] == ["ClipAndScale", "MirrorToCanonicalSide"]
