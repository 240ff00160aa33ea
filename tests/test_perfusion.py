"""Perfusion maps by deconvolution: the circulant shortcut equals the SVD it replaces; each method
recovers the digital phantom's maps at low noise; bcSVD and oSVD are insensitive to a delayed bolus
where sSVD is not; unusable series fail with their reason, per patient; the dataset command writes
maps that validate, records its AIF, is byte-identical when rerun and resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from typer.testing import CliRunner

from cli.strokedata_app import app
from strokedata import validate
from strokedata.io import write_nifti
from strokedata.manifest import PATIENT_MANIFEST, Modality, PatientManifest
from strokedata.perfusion import PerfusionError, PerfusionSettings, perfusion_dataset, perfusion_maps
from strokedata.perfusion.deconvolution import bcsvd, circulant_matrix, convolution_matrix, ssvd
from strokedata.phantoms import generate_dataset, preset
from strokedata.phantoms.digital import SPACING, DigitalPhantom, digital_phantom
from tests.builders import tree_digest

runner = CliRunner()


def _block_means(phantom: DigitalPhantom, values: np.ndarray) -> np.ndarray:
    """Return the mean of ``values`` inside each tissue block, 3 voxels in from its edges."""
    inner = ndimage.binary_erosion(phantom.blocks > 0, np.ones((7, 7, 1)))
    labels = phantom.blocks * inner
    return np.asarray(ndimage.mean(values, labels, np.unique(labels[labels > 0])))


def _maps(phantom: DigitalPhantom, **changes: object) -> dict[str, np.ndarray]:
    series = np.moveaxis(phantom.ctp, -1, 0)
    settings = PerfusionSettings(**changes)  # type: ignore[arg-type]
    return perfusion_maps(series, phantom.interval, SPACING, settings).maps


@pytest.fixture(scope="module")
def quiet() -> DigitalPhantom:
    """The digital phantom with 2 HU of noise, blocks of 12 voxels."""
    return digital_phantom(block=12, noise_hu=2.0, rng=np.random.default_rng(3))


@given(
    aif=st.lists(st.floats(0, 400), min_size=8, max_size=24).filter(lambda a: max(a) > 1),
    threshold=st.floats(0.01, 0.5),
)
@settings(max_examples=30, deadline=None)
def test_the_fourier_shortcut_is_the_truncated_svd_of_the_circulant_matrix(
    aif: list[float], threshold: float
) -> None:
    curve = np.random.default_rng(len(aif)).uniform(0, 50, (len(aif), 3)).astype(np.float32)
    matrix = circulant_matrix(np.array(aif), 1.5)
    u, s, vt = np.linalg.svd(matrix)
    keep = s >= threshold * s.max()
    keep &= ~np.isclose(s, threshold * s.max(), rtol=1e-9)  # a value on the threshold may go either way
    if not np.array_equal(keep, s >= threshold * s.max()):
        return
    inverse = (vt.T[:, keep] / s[keep]) @ u.T[keep]
    padded = np.vstack([curve, np.zeros_like(curve)])
    expected = inverse @ padded
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.allclose(bcsvd(curve, np.array(aif), 1.5, threshold), expected, atol=1e-4 * scale)


def test_the_causal_matrix_convolves_and_ssvd_inverts_it_without_noise() -> None:
    aif = np.array([0, 0, 5, 60, 180, 240, 190, 120, 70, 40, 20, 10, 5, 2, 1, 0], dtype=float)
    residue = np.exp(-np.arange(16) * 2.0 / 4.0)
    curve = convolution_matrix(aif, 2.0) @ (0.01 * residue)
    recovered = ssvd(curve[:, None].astype(np.float32), aif, 2.0, 1e-6)[:, 0]
    assert np.allclose(recovered, 0.01 * residue, atol=1e-5)


@pytest.mark.parametrize("method", ["bcsvd", "osvd", "ssvd"])
def test_each_method_recovers_the_digital_phantom_at_low_noise(quiet: DigitalPhantom, method: str) -> None:
    maps = _maps(quiet, method=method)
    least_cbf = 0.9 if method == "ssvd" else 0.95  # sSVD's CBF falls with the delay (below)
    for name, truth, least_r in (
        ("CBF", quiet.cbf, least_cbf),
        ("CBV", quiet.cbv, 0.98),
        ("MTT", quiet.mtt, 0.8),
    ):
        found, expected = _block_means(quiet, maps[name]), _block_means(quiet, truth)
        assert np.corrcoef(found, expected)[0, 1] > least_r, name
    cbv = _block_means(quiet, maps["CBV"]) / _block_means(quiet, quiet.cbv)
    assert 0.85 < np.median(cbv) < 1.1  # CBV in ml/100 g: the constants and the AIF's scale are right
    cbf = _block_means(quiet, maps["CBF"]) / _block_means(quiet, quiet.cbf)
    assert 0.6 < np.median(cbf) < 1.1  # truncated SVD underestimates high flows (docs/perfusion.md)
    if method != "ssvd":
        error = np.abs(_block_means(quiet, maps["TMAX"]) - _block_means(quiet, quiet.tmax))
        assert error.mean() < 1.0


def test_circulant_methods_ignore_a_delay_that_biases_ssvd(quiet: DigitalPhantom) -> None:
    """CBF by delay slice (0, 1, 2, 3 s), relative to the undelayed slice."""
    ratios = {}
    for method in ("bcsvd", "osvd", "ssvd"):
        cbf = _block_means(quiet, _maps(quiet, method=method)["CBF"]).reshape(4, -1)
        ratios[method] = cbf.mean(axis=1) / cbf[0].mean()
    for method in ("bcsvd", "osvd"):
        assert np.all(np.abs(ratios[method] - 1) < 0.03), (method, ratios[method])
    assert np.abs(ratios["ssvd"] - 1).max() > 2 * np.abs(ratios["bcsvd"] - 1).max()


def test_a_partial_volumed_aif_is_scaled_back_by_the_vof() -> None:
    phantom = digital_phantom(
        block=12, noise_hu=2.0, arterial_partial_volume=0.6, rng=np.random.default_rng(4)
    )
    corrected = _block_means(phantom, _maps(phantom)["CBV"]) / _block_means(phantom, phantom.cbv)
    uncorrected = _block_means(phantom, _maps(phantom, vof=False)["CBV"]) / _block_means(phantom, phantom.cbv)
    assert 0.85 < np.median(corrected) < 1.1
    assert np.median(uncorrected) > 1.4  # an AIF at 60% makes CBV 1/0.6 too large


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s[:6], "at least 8"),
        (lambda s: np.repeat(s[:1], len(s), axis=0), "no contrast bolus"),
        (
            lambda s: np.where(np.arange(len(s))[:, None, None, None] == 7, np.nan, s.astype(np.float32)),
            "NaN",
        ),
        (lambda s: s[5:], "fewer than 2 pre-contrast"),
    ],
    ids=["too few frames", "flat", "NaN", "no baseline"],
)
def test_an_unusable_series_says_why(quiet: DigitalPhantom, change: object, reason: str) -> None:
    series = change(np.moveaxis(quiet.ctp, -1, 0))  # type: ignore[operator]
    with pytest.raises(PerfusionError, match=reason):
        perfusion_maps(series, 1.0, SPACING)


def test_noise_alone_has_no_plausible_aif() -> None:
    noise = np.random.default_rng(0).normal(35, 4, (20, 30, 30, 2)).astype(np.float32)
    with pytest.raises(PerfusionError, match=r"no contrast bolus|no plausible arterial"):
        perfusion_maps(noise, 1.0, SPACING)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny phantoms: p00001's CTP flat (no bolus), p00002 without a CTP."""
    root = tmp_path_factory.mktemp("perfusion") / "data"
    generate_dataset(root, 3, preset("tiny"), seed=5, jobs=1)
    flat = root / "p00001" / "ctp.nii.gz"
    import nibabel as nib

    image = nib.load(flat)
    data = np.asanyarray(image.dataobj)
    write_nifti(flat, np.repeat(data[..., :1], data.shape[-1], axis=-1), image.affine, 2.0)
    manifest_path = root / "p00002" / PATIENT_MANIFEST
    manifest = PatientManifest.model_validate_json(manifest_path.read_text())
    images = {key: value for key, value in manifest.images.items() if key is not Modality.CTP}
    (root / "p00002" / "ctp.nii.gz").unlink()
    manifest_path.write_text(manifest.model_copy(update={"images": images}).model_dump_json(indent=2))
    return root


def test_the_command_writes_maps_that_validate_and_names_failed_patients(
    dataset: Path, tmp_path: Path
) -> None:
    before = tree_digest(dataset)
    out = tmp_path / "maps"
    result = runner.invoke(app, ["perfusion", str(dataset), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert "p00001" in result.output and "no contrast bolus" in result.output
    assert "p00002" in result.output and "lacks CTP" in result.output
    assert tree_digest(dataset) == before  # the input is only read
    manifest = PatientManifest.model_validate_json((out / "p00000" / PATIENT_MANIFEST).read_text())
    assert set(manifest.images) == {
        Modality.CBF,
        Modality.CBV,
        Modality.MTT,
        Modality.TMAX,
        Modality.TTP,
        Modality.CORE,
    }
    done = manifest.provenance.preprocessing
    assert done is not None and done.parameters["method"] == "bcsvd"
    found = done.steps[0]["arguments"]["found"]  # type: ignore[index]
    assert found["aif"]["voxels"] >= 8 and len(found["aif"]["curve_hu"]) == 16  # type: ignore[index, arg-type]
    report = validate(out)
    assert not [finding for finding in report.findings if finding.severity == "error"]


def test_reruns_are_byte_identical_and_resume(dataset: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    perfusion_dataset(dataset, first, jobs=1)
    report = perfusion_dataset(dataset, second, jobs=2, parameters={"method": "bcsvd"})
    assert tree_digest(first) == tree_digest(second)
    assert report.ids("written") == ["p00000"]
    again = perfusion_dataset(dataset, second, jobs=1)
    assert again.ids("skipped") == ["p00000"] and tree_digest(first) == tree_digest(second)
    other = perfusion_dataset(dataset, tmp_path / "osvd", jobs=1, parameters={"method": "osvd"})
    assert other.ids("written") == ["p00000"]


def test_maps_from_the_command_feed_the_occlusion_pipeline(dataset: Path, tmp_path: Path) -> None:
    from strokedata.preprocess import preprocess_dataset

    maps = tmp_path / "maps"
    perfusion_dataset(dataset, maps, jobs=1)
    report = preprocess_dataset(
        maps, "occlusion", tmp_path / "occlusion", jobs=1, parameters={"registration": None}
    )
    assert "p00000" in report.ids("written")


def test_a_given_aif_mask_gives_the_automatic_maps_on_a_clean_phantom(quiet: DigitalPhantom) -> None:
    given = np.zeros(quiet.cbf.shape, dtype=np.uint8)
    given[quiet.aif_block[0], quiet.aif_block[1], :] = 1
    series = np.moveaxis(quiet.ctp, -1, 0)
    settings = PerfusionSettings(vof=False)
    by_mask = perfusion_maps(series, 1.0, SPACING, settings, aif_mask=given)
    automatic = perfusion_maps(series, 1.0, SPACING, settings)
    assert by_mask.record["aif_source"] == "mask" and by_mask.record["aif"]["voxels"] == given.sum()
    ratio = _block_means(quiet, by_mask.maps["CBF"]) / _block_means(quiet, automatic.maps["CBF"])
    assert np.all(np.abs(ratio - 1) < 0.05)
    with pytest.raises(ValueError, match="file name"):
        PerfusionSettings(aif="../elsewhere/aif.nii.gz")


@given(mtt=st.floats(1.0, 30.0), shape=st.sampled_from(["exponential", "box", "triangular"]))
@settings(max_examples=25, deadline=None)
def test_every_residue_shape_starts_at_one_and_has_mtt_as_its_area(mtt: float, shape: str) -> None:
    from strokedata.phantoms.perfusion import residue_function

    times = np.arange(0, 20 * mtt, 0.01)  # the exponential tail beyond: exp(-20) of the area
    values = residue_function(shape, times, mtt)
    assert values[0] == 1.0 and np.all(np.diff(values) <= 0)
    assert np.trapezoid(values, times) == pytest.approx(mtt, abs=0.011)  # a box's edge: one 0.01 s step


def test_phantom_options_change_only_what_they_name(tmp_path: Path) -> None:
    from strokedata.phantoms import generate_patient

    base = generate_patient(2, 0, preset("tiny", modalities=[Modality.CTP, Modality.TMAX, Modality.CBF]))
    delayed = generate_patient(
        2, 0, preset("tiny", modalities=[Modality.CTP, Modality.TMAX, Modality.CBF], ctp={"bolus_delay": 2.0})
    )
    tmax, later = base.images[Modality.TMAX][0], delayed.images[Modality.TMAX][0]
    assert np.allclose(later[tmax > 0], tmax[tmax > 0] + 2.0) and np.all(later[tmax == 0] == 0)
    assert np.array_equal(base.images[Modality.CBF][0], delayed.images[Modality.CBF][0])
    assert not np.array_equal(base.images[Modality.CTP][0], delayed.images[Modality.CTP][0])
    digital = generate_dataset(tmp_path / "digital", 2, preset("digital", ctp={"noise_hu": 3}), jobs=1)
    assert not [finding for finding in validate(digital).findings if finding.severity == "error"]
    with pytest.raises(ValueError, match="TTP"):
        preset("tiny", modalities=[Modality.TTP])


def test_a_thin_given_artery_is_not_diluted_by_the_analysis_grid(quiet: DigitalPhantom) -> None:
    """At 0.45 mm the analysis bins 2 x 2; the given AIF's curve is still taken at full resolution."""
    series = np.moveaxis(quiet.ctp, -1, 0)
    fine = np.repeat(np.repeat(series, 2, axis=1), 2, axis=2)  # the phantom at 0.45 mm in-plane
    mask = np.zeros(fine.shape[1:], dtype=np.uint8)
    start = 2 * quiet.aif_block[0].start + 1  # one voxel wide, not aligned with the 2 x 2 blocks
    mask[start, 2 * quiet.aif_block[1].start : 2 * quiet.aif_block[1].stop, :] = 1
    settings = PerfusionSettings(vof=False)
    binned = perfusion_maps(fine, 1.0, (0.45, 0.45, 5.0), settings, aif_mask=mask)
    whole = perfusion_maps(
        fine, 1.0, (0.45, 0.45, 5.0), settings.model_copy(update={"analysis_mm": 0.0}), aif_mask=mask
    )
    assert binned.record["analysis"]["bin_factor"] == 2 and binned.record["aif"]["voxels"] == mask.sum()
    assert binned.record["aif"]["peak_hu"] == pytest.approx(whole.record["aif"]["peak_hu"], rel=1e-6)
    with pytest.raises(PerfusionError, match="shape"):
        perfusion_maps(fine, 1.0, (0.45, 0.45, 5.0), settings, aif_mask=mask[..., 0])


def test_tmax_stays_within_the_acquisition_and_a_negative_aif_is_refused(quiet: DigitalPhantom) -> None:
    series = np.moveaxis(quiet.ctp, -1, 0)
    noisy = series + np.random.default_rng(9).normal(0, 15, series.shape).astype(np.float32)
    for method in ("bcsvd", "osvd"):
        tmax = perfusion_maps(noisy, 1.0, SPACING, PerfusionSettings(method=method)).maps["TMAX"]
        assert tmax.max() <= len(series) * 1.0
    falling = np.zeros(quiet.cbf.shape, dtype=np.uint8)
    falling[quiet.aif_block[0], quiet.aif_block[1], :] = 1
    sinking = series.astype(np.float32).copy()
    sinking[25:, falling > 0] -= 400  # after its peak the "artery" drops far below its baseline
    with pytest.raises(PerfusionError, match="area"):
        perfusion_maps(sinking, 1.0, SPACING, PerfusionSettings(vof=False), aif_mask=falling)


def test_the_frame_interval_of_a_5d_export_and_the_method_options(dataset: Path, tmp_path: Path) -> None:
    import nibabel as nib
    import torchio as tio

    from strokedata.transforms.perfusion import frame_interval

    path = tmp_path / "ctp5d.nii.gz"
    image = nib.Nifti1Image(np.zeros((4, 4, 2, 1, 9), dtype=np.int16), np.eye(4))
    image.header.set_zooms((0.5, 0.5, 5.0, 1.0, 1.6))
    nib.save(image, path)
    assert frame_interval(tio.ScalarImage(path)) == pytest.approx(1.6)
    out = tmp_path / "osvd"
    result = runner.invoke(
        app, ["perfusion", str(dataset), "--out", str(out), "--jobs", "1", "--set", 'method="osvd"']
    )
    manifest = PatientManifest.model_validate_json((out / "p00000" / PATIENT_MANIFEST).read_text())
    assert manifest.provenance.preprocessing is not None
    assert manifest.provenance.preprocessing.parameters["method"] == "osvd", result.output
    clash = [
        "perfusion",
        str(dataset),
        "--out",
        str(tmp_path / "x"),
        "--method",
        "ssvd",
        "--set",
        'method="osvd"',
    ]
    assert runner.invoke(app, clash).exit_code == 2


def test_truncation_correction_gives_cbf_in_its_units(quiet: DigitalPhantom) -> None:
    """Truncated SVD lowers the residue's maximum, the more the shorter the MTT; the correction divides
    by what it does to a noiseless exponential residue of the voxel's MTT."""
    for method in ("bcsvd", "osvd"):
        ratios = {}
        for corrected in (True, False):
            cbf = _block_means(quiet, _maps(quiet, method=method, cbf_correction=corrected)["CBF"])
            ratios[corrected] = cbf / _block_means(quiet, quiet.cbf)
        assert 0.9 < np.median(ratios[True]) < 1.1, method
        assert np.median(ratios[False]) < 0.85, method
        shortest = _block_means(quiet, quiet.mtt) < 4  # where truncation costs most
        assert np.abs(ratios[True][shortest] - 1).mean() < np.abs(ratios[False][shortest] - 1).mean() / 2


@given(
    level=st.floats(-50, 150),
    apart=st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15), st.floats(-1000, 3000)), max_size=40),
)
@settings(max_examples=40, deadline=None)
def test_voxels_kept_apart_do_not_bleed_into_smoothing(
    level: float, apart: list[tuple[int, int, float]]
) -> None:
    from strokedata.perfusion.signal import masked_curves

    series = np.full((2, 16, 16, 1), level, dtype=np.float32)
    flags = np.zeros((16, 16, 1), dtype=bool)
    for x, y, value in apart:
        series[:, x, y, 0], flags[x, y, 0] = value, True
    mask = np.ones((16, 16, 1), dtype=bool)
    curves = masked_curves(series, mask, (1.0, 1.0, 5.0), 2.0, apart=flags[mask])
    if flags.all():
        assert np.array_equal(curves, series[:, mask])  # nothing else within reach: each keeps its own
    else:
        assert np.allclose(curves, level, atol=1e-3 * max(1.0, abs(level)))


def test_an_artery_does_not_spread_into_the_tissue_beside_it(quiet: DigitalPhantom) -> None:
    """The tissue block above the AIF block: its strip of 3 voxels along the artery against its inside."""
    x, y = quiet.aif_block[0], slice(quiet.aif_block[1].start - 3, quiet.aif_block[1].start)
    inside = (x, slice(quiet.aif_block[1].start - 9, quiet.aif_block[1].start - 6))
    excess = {}
    for vessel_cbv in (10.0, None):
        cbv = _maps(quiet, vessel_cbv=vessel_cbv)["CBV"]
        excess[vessel_cbv] = cbv[x, y].mean() / cbv[inside].mean() - 1
    assert abs(excess[10.0]) < 0.1
    assert excess[None] > 0.5  # smoothed with the artery's 300 HU, as before vessels were kept apart


def test_the_aif_leaves_out_the_diluted_rims_of_arteries(quiet: DigitalPhantom) -> None:
    """An artery whose outer two voxels show 30% of its enhancement (partial volume with tissue)."""
    series = np.moveaxis(quiet.ctp, -1, 0).astype(np.float32)
    rim = np.zeros(quiet.cbf.shape, dtype=bool)
    rim[quiet.aif_block[0], quiet.aif_block[1], :] = True
    rim &= ~ndimage.binary_erosion(rim, np.ones((5, 5, 1)))
    base = series[:3].mean(axis=0)
    series[:, rim] = base[rim] + 0.3 * (series[:, rim] - base[rim])
    settings = PerfusionSettings(vof=False)
    result = perfusion_maps(series, quiet.interval, SPACING, settings)
    whole = perfusion_maps(np.moveaxis(quiet.ctp, -1, 0), quiet.interval, SPACING, settings)
    assert result.record["aif"]["peak_hu"] == pytest.approx(whole.record["aif"]["peak_hu"], rel=0.05)
    cbv = _block_means(quiet, result.maps["CBV"]) / _block_means(quiet, quiet.cbv)
    assert 0.85 < np.median(cbv) < 1.1


@given(level=st.floats(0, 80), noise=st.floats(1, 30), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_the_noise_estimate_reads_white_noise_whatever_each_voxels_level(
    level: float, noise: float, seed: int
) -> None:
    from strokedata.perfusion.signal import noise_hu

    generator = np.random.default_rng(seed)
    levels = level + generator.uniform(-30, 30, 4000)  # tissue of many baselines
    curves = levels[None, :] + generator.normal(0, noise, (6, 4000))
    assert noise_hu(curves, 5) == pytest.approx(noise, rel=0.1)


def test_apart_voxels_with_nothing_else_in_reach_keep_their_own_curves() -> None:
    from strokedata.perfusion.signal import masked_curves

    series = np.random.default_rng(1).normal(40, 10, (3, 24, 24, 2)).astype(np.float32)
    mask = np.ones((24, 24, 2), dtype=bool)
    flags = np.zeros((24, 24, 2), dtype=bool)
    flags[:, :, 1] = True  # a whole slice of vessels: nothing in it may be smoothed
    flags[5, 5, 0] = True  # one vessel among tissue: it takes its neighbours' smoothed value
    curves = masked_curves(series, mask, (1.0, 1.0, 5.0), 2.0, apart=flags[mask])
    volume = np.zeros((3, 24, 24, 2), dtype=np.float32)
    volume[:, mask] = curves
    assert np.array_equal(volume[..., 1], series[..., 1])
    neighbours = series[:, 3:8, 3:8, 0].mean(axis=(1, 2))
    assert np.allclose(volume[:, 5, 5, 0], neighbours, atol=3.0)  # near its neighbours, not its own
    assert not np.allclose(volume[:, 5, 5, 0], series[:, 5, 5, 0])


def test_the_cbf_correction_leaves_noise_length_mtts_alone() -> None:
    from strokedata.perfusion.maps import _cbf_factor

    bias = (np.array([1.0, 4.0, 30.0]), np.array([0.3, 0.6, 0.95]), np.zeros(3))
    mtt = np.array([0.0, 2.0, 1 / 0.3, 8.0, 4 / 0.6, 40.0, 8.0])
    cbv = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    factor = _cbf_factor(mtt, cbv, bias)
    assert factor[0] == factor[1] == 1.0  # shorter than the 1 s reference measures: noise
    assert factor[2] == pytest.approx(0.3) and factor[4] == pytest.approx(0.6)
    assert 0.6 < factor[3] < 0.95 and factor[5] == 1.0 and factor[6] == 1.0  # beyond 30 s; no CBV
