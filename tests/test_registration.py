"""Registration to the phantom template with itk-elastix: a known affine and phantom poses recovered,
RAS / LPS and flipped axes, label maps, a group moved by one matrix, refusals, determinism, the
template's symmetry and the mirrored copy.

The grid keeps the whole head in view with 4 mm slices: on the tiny preset's 8 mm slices the tilts are
poorly determined (docs/registration.md). Registrations are shared through module-scoped fixtures;
``import itk`` happens in the first one (10-15 s).
"""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torchio as tio

import strokedata.registration
from strokedata.manifest import Modality
from strokedata.phantoms import (
    Grid,
    generate_dataset,
    generate_patient,
    healthy_head,
    phantom_template,
    preset,
    template_image,
)
from strokedata.phantoms.anatomy import Pose
from strokedata.phantoms.template import IDENTITY_POSE
from strokedata.registration import (
    PRESETS,
    Registration,
    RegistrationError,
    check_registration,
    parameter_maps,
    register,
    register_mirrored,
    resample,
)
from strokedata.subjects import subjects
from strokedata.transforms import REGISTRATION, RegisterToTemplate

pytestmark = pytest.mark.filterwarnings(
    "ignore:builtin type .* has no __module__ attribute:DeprecationWarning"
)

GRID = Grid(shape=(64, 64, 48), spacing=(3.6, 3.6, 4.0))
VOXEL = 3.6  # mm, the largest in-plane spacing: "within a voxel"


def _rotation(degrees: tuple[float, float, float]) -> np.ndarray:
    """Return the rotation about x, then y, then z by the given angles (degrees)."""
    result = np.eye(3)
    for axis, angle in enumerate(np.deg2rad(degrees)):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        step = np.eye(3)
        step[i, i] = step[j, j] = c
        step[i, j], step[j, i] = -s, s
        result = step @ result
    return result


def _matrix(scale: float, rotation: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Return the 4x4 world matrix x -> scale * rotation @ x + shift."""
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = shift
    return matrix


def _pose_matrix(pose: Pose) -> np.ndarray:
    """Return template world -> patient world for a phantom pose (the template sits at the identity)."""
    return _matrix(pose.scale, pose.rotation, pose.shift)


def _polar(linear: np.ndarray) -> np.ndarray:
    """Return the rotation nearest to a 3x3 linear map."""
    u, _, vt = np.linalg.svd(linear)
    return np.asarray(u @ vt)


def _errors(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray) -> tuple[float, float, float, float]:
    """Return (rotation error in degrees, scale ratio, translation error at the brain centre in mm, RMS
    displacement error over ``points`` in mm) of an estimated world matrix."""
    cosine = (np.trace(_polar(estimate[:3, :3]).T @ _polar(truth[:3, :3])) - 1) / 2
    angle = float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
    scale = float(np.cbrt(np.linalg.det(estimate[:3, :3]) / np.linalg.det(truth[:3, :3])))
    centre = np.array([0.0, -5.0, 5.0, 1.0])
    translation = float(np.linalg.norm((estimate - truth) @ centre))
    displacement = np.linalg.norm((points @ (estimate - truth).T)[:, :3], axis=1)
    return angle, scale, translation, float(np.sqrt(np.mean(displacement**2)))


@pytest.fixture(scope="module")
def template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the template CT, its affine and the world points (homogeneous) of its atlas voxels."""
    phantom = phantom_template(GRID)
    voxels = np.argwhere(phantom.atlas > 0)
    points = np.c_[voxels, np.ones(len(voxels))] @ phantom.affine.T
    return np.asarray(phantom.ct), phantom.affine, points


TRUE = _matrix(1.05, _rotation((3.0, -4.0, 5.0)), np.array([4.0, -3.0, 2.5]))
"""The known affine: rotations of a few degrees about each axis, a shift of a few mm, scale 1.05."""


@pytest.fixture(scope="module")
def moved(template: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Return the template moved by ``TRUE``: moving(TRUE @ x) = template(x)."""
    ct, affine, _ = template
    return resample(ct, affine, np.linalg.inv(TRUE), ct.shape, affine, order=1, fill=-1000.0)


@pytest.fixture(scope="module")
def known(template: tuple[np.ndarray, np.ndarray, np.ndarray], moved: np.ndarray) -> Registration:
    """Return the default (affine) registration of the moved template back to the template."""
    ct, affine, _ = template
    return register(ct, affine, moved, affine)


def test_register_recovers_a_known_affine(
    template: tuple[np.ndarray, np.ndarray, np.ndarray], known: Registration
) -> None:
    angle, scale, translation, rms = _errors(known.matrix, TRUE, template[2])
    assert angle < 1.0
    assert translation < VOXEL
    assert abs(scale - 1) < 0.01
    assert rms < 1.0  # mm over the brain
    assert known.matrix[3].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert [stage["Transform"] for stage in known.parameter_maps] == [
        ["SimilarityTransform"],
        ["AffineTransform"],
    ]
    assert len(known.metric) == 2 and all(np.isfinite(known.metric))
    assert known.determinant == pytest.approx(np.linalg.det(TRUE[:3, :3]), rel=0.03)


def test_the_matrix_is_the_same_on_every_run_and_thread_count(
    template: tuple[np.ndarray, np.ndarray, np.ndarray], moved: np.ndarray, known: Registration
) -> None:
    ct, affine, _ = template
    again = register(ct, affine, moved, affine, threads=1)
    assert again.matrix.tobytes() == known.matrix.tobytes()


def test_flipped_and_permuted_voxel_axes_give_the_same_world_matrix(
    template: tuple[np.ndarray, np.ndarray, np.ndarray], moved: np.ndarray, known: Registration
) -> None:
    ct, affine, points = template
    n = moved.shape[0]
    # the same world image stored with x reversed and the axes reordered: stored[a, b, c] = moved[n-1-b, c, a]
    stored = np.ascontiguousarray(np.transpose(moved[::-1], (2, 0, 1)))
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = n - 1
    stored_affine = affine @ flip @ np.eye(4)[[1, 2, 0, 3]]
    assert stored[5, 7, 9] == moved[n - 1 - 7, 9, 5]
    assert np.allclose(stored_affine @ [5, 7, 9, 1], affine @ [n - 1 - 7, 9, 5, 1])
    result = register(ct, affine, stored, stored_affine)
    displacement = np.linalg.norm((points @ (result.matrix - known.matrix).T)[:, :3], axis=1)
    assert displacement.max() < 0.2  # mm: the same registration up to interpolation rounding
    assert _errors(result.matrix, TRUE, points)[0] < 1.0


MODALITIES = [m for m in Modality if m not in (Modality.ATLAS, Modality.TTP)]  # ATLAS: from the template


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two phantoms: perfusion and NCCT groups on 4 mm-slice grids, the angiography group on tiny's."""
    config = preset(
        "tiny",
        perfusion=GRID,
        ncct=Grid(shape=(60, 60, 44), spacing=(3.8, 3.8, 4.4)),
        frames=8,
        modalities=MODALITIES,
    )
    return generate_dataset(tmp_path_factory.mktemp("registration") / "data", 2, config, seed=3, jobs=1)


@pytest.fixture(scope="module")
def poses() -> list[np.ndarray]:
    """Return each phantom's true template-to-patient matrix (the pose depends on seed and index only)."""
    config = preset("tiny", modalities=[Modality.CLOT])
    return [_pose_matrix(generate_patient(3, index, config).pose) for index in range(2)]


@pytest.fixture(scope="module")
def loaded(cohort: Path) -> list[tio.Subject]:
    """The cohort's subjects, loaded once; tests transform copies, never these."""
    result = subjects(cohort)
    for subject in result:
        subject.load()
    return result


@pytest.fixture(scope="module")
def perfusion_run(loaded: list[tio.Subject]) -> tio.Subject:
    """Return patient 0 after ``RegisterToTemplate("CTP", add_atlas=True)`` (4D: by its temporal mean)."""
    return RegisterToTemplate("CTP", add_atlas=True)(loaded[0])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Dice overlap of two masks."""
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_transform_moves_the_drivers_group_by_one_matrix(
    loaded: list[tio.Subject],
    perfusion_run: tio.Subject,
    poses: list[np.ndarray],
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    before, after = loaded[0], perfusion_run
    matrix = np.array(after[REGISTRATION]["CTP"])
    angle, _, translation, rms = _errors(matrix, poses[0], template[2])
    assert angle < 2.0 and translation < VOXEL and rms < VOXEL / 2  # a contrast-enhanced mean drives it
    target = template[1]
    for key in ("CBF", "CBV", "MTT", "TMAX", "CTP", "CORE"):
        image, original = after[key], before[key]
        assert np.allclose(image.affine, target) and image.spatial_shape == GRID.shape
        assert image.shape[0] == original.shape[0]  # the CTP keeps its 8 frames
        label = isinstance(original, tio.LabelMap)
        fill = 0.0 if label else float(original.numpy().min())
        expected = np.stack(
            [
                resample(c, original.affine, matrix, GRID.shape, target, 0 if label else 1, fill)
                for c in original.numpy()
            ]
        )
        assert np.array_equal(image.numpy(), expected), (key, np.abs(image.numpy() - expected).max())
    core_in, core_out = before["CORE"].numpy(), after["CORE"].numpy()
    assert core_out.dtype == core_in.dtype and set(np.unique(core_out)) <= set(np.unique(core_in))
    assert core_out.any()
    assert after["CTP"].numpy().dtype == np.float32
    for key in ("NCCT", "BRAIN_MASK", "CTA", "CLOT"):  # on other grids: left alone
        assert np.array_equal(after[key].numpy(), before[key].numpy())
        assert np.array_equal(after[key].affine, before[key].affine)
    assert after[REGISTRATION].keys() == {"CTP"}


def test_the_added_atlas_is_the_templates_and_fits_the_moved_maps(
    loaded: list[tio.Subject], perfusion_run: tio.Subject
) -> None:
    atlas = phantom_template(GRID).atlas
    added = perfusion_run["ATLAS"]
    assert isinstance(added, tio.LabelMap) and np.array_equal(added.numpy()[0], atlas)
    assert _dice(perfusion_run["CBF"].numpy()[0] > 0, atlas > 0) > 0.9  # perfused where the atlas is
    with pytest.raises(ValueError, match="already has 'ATLAS'"):
        RegisterToTemplate("CBF", add_atlas=True)(perfusion_run)


def test_replaying_the_history_gives_the_same_matrix_and_images(
    loaded: list[tio.Subject], perfusion_run: tio.Subject
) -> None:
    history = perfusion_run.get_composed_history()
    assert [type(t).__name__ for t in history.transforms] == ["RegisterToTemplate"]
    replayed = history(loaded[0])
    assert replayed[REGISTRATION] == perfusion_run[REGISTRATION]
    assert np.array_equal(replayed["CTP"].numpy(), perfusion_run["CTP"].numpy())


def test_an_image_template_and_its_atlas_work_like_the_phantoms(
    loaded: list[tio.Subject], perfusion_run: tio.Subject, tmp_path: Path
) -> None:
    phantom = phantom_template(GRID)
    path = tmp_path / "template.nii.gz"
    tio.ScalarImage(tensor=phantom.ct[None].copy(), affine=phantom.affine).save(path)
    atlas = tio.LabelMap(tensor=phantom.atlas[None].copy(), affine=phantom.affine)
    transform = RegisterToTemplate("CTP", template=path, atlas=atlas, add_atlas=True, atlas_key="TEMPLATE")
    after = transform(loaded[0])
    # the same template, read back with a float32 affine: the same matrix to the last few micrometres
    assert np.allclose(after[REGISTRATION]["CTP"], perfusion_run[REGISTRATION]["CTP"], atol=0.02)
    assert np.array_equal(after["TEMPLATE"].numpy(), perfusion_run["ATLAS"].numpy())
    with pytest.raises(ValueError, match="needs its atlas"):
        RegisterToTemplate("CTP", template=path, add_atlas=True)


def test_an_ncct_driver_recovers_the_phantoms_pose_and_moves_its_brain_mask(
    loaded: list[tio.Subject], poses: list[np.ndarray], template: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    before = loaded[1]
    after = RegisterToTemplate("NCCT", template=GRID)(before)
    matrix = np.array(after[REGISTRATION]["NCCT"])
    angle, scale, translation, rms = _errors(matrix, poses[1], template[2])
    assert angle < 1.0 and translation < VOXEL and abs(scale - 1) < 0.01 and rms < 1.0
    reference = phantom_template(GRID).brain > 0
    registered = _dice(after["BRAIN_MASK"].numpy()[0] > 0, reference)
    mask = before["BRAIN_MASK"]
    unregistered = resample(mask.numpy()[0], mask.affine, np.eye(4), GRID.shape, template[1], order=0)
    assert registered > 0.95 and registered > _dice(unregistered > 0, reference) + 0.04, registered
    assert after["NCCT"].spatial_shape == GRID.shape and after["CBF"].spatial_shape == GRID.shape
    assert np.array_equal(after["CBF"].numpy(), before["CBF"].numpy())  # the perfusion group stays


def test_labels_keep_their_dtype_and_values_and_scalars_become_float32() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 15, (20, 18, 12)).astype(np.uint8)
    labels[labels == 7] = 0  # a value absent from the input stays absent
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    matrix = _matrix(1.02, _rotation((2.0, 0.0, 7.0)), np.array([1.3, -0.7, 0.4]))
    moved = resample(labels, affine, matrix, (22, 20, 10), affine, order=0)
    assert moved.dtype == np.uint8 and set(np.unique(moved)) <= set(np.unique(labels))
    assert resample(labels > 3, affine, matrix, labels.shape, affine, order=0).dtype == bool
    series = rng.normal(size=(20, 18, 12, 3)).astype(np.float64)
    frames = resample(series, affine, matrix, (22, 20, 10), affine, order=1, fill=-5.0)
    assert frames.shape == (22, 20, 10, 3) and frames.dtype == np.float32
    assert np.array_equal(
        frames[..., 1], resample(series[..., 1], affine, matrix, (22, 20, 10), affine, 1, -5.0)
    )
    assert frames[-1, -1, -1, 0] == -5.0  # outside the source
    assert frames.flags.f_contiguous  # NIfTI's layout: each frame written without a transposing copy
    label_series = np.stack([labels, labels[::-1]], axis=-1)
    moved_series = resample(label_series, affine, matrix, (22, 20, 10), affine, order=0)
    assert moved_series.flags.f_contiguous and np.array_equal(moved_series[..., 0], moved)


def test_resample_follows_the_world_matrix_convention() -> None:
    data = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    source = np.diag([2.0, 3.0, 4.0, 1.0])
    target = source.copy()
    target[:3, 3] = [-2.0, 0.0, 4.0]  # the target grid starts one voxel left and one slice up
    shift = np.eye(4)
    shift[0, 3] = 2.0  # target world x -> source world x + 2 mm: one more voxel
    moved = resample(data, source, shift, data.shape, target, order=1, fill=-1.0)
    assert np.array_equal(moved[:, :, :-1], data[:, :, 1:])
    assert (moved[:, :, -1] == -1.0).all()


def test_deformable_and_unknown_transforms_are_refused() -> None:
    with pytest.raises(ValueError, match=r"BSplineTransform.*not supported"):
        parameter_maps([{"Transform": "BSplineTransform", "Metric": "AdvancedMattesMutualInformation"}])
    with pytest.raises(ValueError, match="BSplineTransform"):
        register(
            np.ones((8, 8, 8)),
            np.eye(4),
            np.ones((8, 8, 8)),
            np.eye(4),
            transform=[{"Transform": "BSplineTransform"}],
        )
    with pytest.raises(ValueError, match="unknown registration preset 'warp'"):
        parameter_maps("warp")
    with pytest.raises(ValueError, match="not supported"):
        parameter_maps("rigid", overrides={"Transform": "BSplineTransform"})


def test_parameter_maps_are_configurable() -> None:
    stages = parameter_maps("affine", overrides={"MaximumNumberOfIterations": 500, "ErodeMask": False})
    assert [stage["Transform"] for stage in stages] == [["SimilarityTransform"], ["AffineTransform"]]
    assert all(s["MaximumNumberOfIterations"] == ["500"] and s["ErodeMask"] == ["false"] for s in stages)
    assert PRESETS["affine"][0]["MaximumNumberOfIterations"] != ["500"]  # presets are not modified
    (custom,) = parameter_maps([{"Transform": "EulerTransform", "NumberOfResolutions": 2}])
    assert custom["NumberOfResolutions"] == ["2"]
    assert custom["WriteResultImage"] == ["false"] and custom["UseMultiThreadingForMetrics"] == ["false"]
    assert all(stage["WriteResultImage"] == ["false"] for preset_ in PRESETS.values() for stage in preset_)
    # the presets' samples per iteration: one per 32 fixed voxels within [2048, 4096]; overrides win
    samples = {
        voxels: {
            stage["NumberOfSpatialSamples"][0] for stage in parameter_maps("affine", fixed_voxels=voxels)
        }
        for voxels in (1000, 64 * 64 * 16, 100_000, 64 * 64 * 48, 512 * 512 * 200, None)
    }
    assert samples == {1000: {"2048"}, 65536: {"2048"}, 100_000: {"3125"}, 196608: {"4096"},
                       52428800: {"4096"}, None: {"4096"}}  # fmt: skip
    assert "NumberOfSpatialSamples" not in custom
    chosen = parameter_maps("rigid", {"NumberOfSpatialSamples": 8192}, fixed_voxels=65536)
    assert chosen[0]["NumberOfSpatialSamples"] == ["8192"]


def test_bad_inputs_and_diverged_results_raise_registration_errors(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    ct, affine, _ = template
    with pytest.raises(RegistrationError, match="constant"):
        register(ct, affine, np.zeros_like(ct), affine)
    broken = ct.copy()
    broken[3, 3, 3] = np.nan
    with pytest.raises(RegistrationError, match="NaN"):
        register(ct, affine, broken, affine)
    shrunk = np.diag([0.2, 0.2, 0.2, 1.0]) @ affine  # the same head five times smaller: elastix gives up
    with pytest.raises(RegistrationError, match="elastix failed: Too many samples map outside"):
        register(ct, affine, ct, shrunk)
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(RegistrationError, match="scales volumes by -1"):
        check_registration(flipped, ct.shape, affine, ct.shape, affine)
    far = np.eye(4)
    far[:3, 3] = [500.0, 0.0, 0.0]
    with pytest.raises(RegistrationError, match="outside the moving image"):
        check_registration(far, ct.shape, affine, ct.shape, affine)
    with pytest.raises(ValueError, match="3D"):
        register(ct, affine, ct[..., None], affine)


@pytest.mark.parametrize("shape", [(64, 64, 16), (65, 63, 17)])
def test_the_template_is_left_right_symmetric_and_deterministic(shape: tuple[int, int, int]) -> None:
    grid = Grid(shape=shape, spacing=(3.6, 3.6, 8.0))
    template = phantom_template(grid)
    for field in (template.ct, template.cbf, template.cbv, template.mtt, template.tmax, template.brain):
        assert np.array_equal(field[::-1], field)
    swapped = np.where(
        template.atlas > 7, template.atlas - 7, np.where(template.atlas > 0, template.atlas + 7, 0)
    )
    assert np.array_equal(swapped[::-1], template.atlas)
    assert set(np.unique(template.atlas)) == set(range(15))
    left, right = template.atlas[: shape[0] // 2], template.atlas[shape[0] - shape[0] // 2 :]  # RAS: +x right
    assert (left <= 7).all() and ((right == 0) | (right >= 8)).all()
    if shape[0] % 2:
        assert (template.atlas[shape[0] // 2] == 0).all()  # the middle plane lies in the falx
    fresh = healthy_head(grid, IDENTITY_POSE)
    assert all(
        getattr(fresh, name).tobytes() == getattr(template, name).tobytes()
        for name in ("affine", "ct", "cbf", "cbv", "mtt", "tmax", "atlas", "brain")
    )
    assert template.ct.dtype == np.float32 and template.atlas.dtype == np.uint8
    assert not template.ct.flags.writeable
    brain = template.brain > 0
    assert 20 < template.ct[brain & (template.atlas > 0)].mean() < 45  # HU of grey and white matter
    assert template.ct.min() == pytest.approx(-1000) and template.ct.max() > 900  # air, bone


def test_template_image_picks_the_template_of_the_drivers_kind() -> None:
    grid = Grid(shape=(16, 16, 8), spacing=(12.0, 12.0, 16.0))
    template = phantom_template(grid)
    for modality in ("NCCT", "CTA", "MCTA2", "CTP"):
        assert template_image(grid, modality) is template.ct
    assert template_image(grid, Modality.CBF) is template.cbf
    assert template_image(grid, "TMAX") is template.tmax
    for modality in ("SPIRAL", "CORE", "perfusion"):
        with pytest.raises(ValueError, match="no image for"):
            template_image(grid, modality)


def test_register_mirrored_faces_each_voxel_with_its_contralateral_twin() -> None:
    pose = Pose(1.0, _rotation((0.0, 0.0, 6.0)), np.array([7.0, 2.0, 0.0]))  # turned and off the midline
    head = healthy_head(GRID, pose).cbf
    brain = head > 0
    flipped = head[::-1]
    mirrored = register_mirrored(head, phantom_template(GRID).affine)
    assert mirrored.shape == head.shape and mirrored.dtype == np.float32
    plain_error = np.abs(flipped - head)[brain].mean()
    registered_error = np.abs(mirrored - head)[brain].mean()
    assert registered_error < plain_error / 4
    series = np.stack([head, 2 * head], axis=-1)
    frames = register_mirrored(series, phantom_template(GRID).affine)
    assert frames.shape == series.shape
    assert np.allclose(frames[..., 1], 2 * frames[..., 0], atol=1e-4)


def test_doctests() -> None:
    assert doctest.testmod(strokedata.registration).failed == 0
