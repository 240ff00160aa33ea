"""Phantoms: they validate, they are physically consistent, the papers' rules work on them, they reproduce."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strokedata import validate
from strokedata.io import atomic_write_text, read_volume
from strokedata.labels import occluded_side_from_tmax, regions_from_clot
from strokedata.manifest import DATASET_CARD, LABEL_MAPS, Modality
from strokedata.phantoms import PatientPhantom, generate_dataset, generate_patient, preset, write_patient
from strokedata.phantoms.anatomy import grid_affine
from strokedata.phantoms.cohort import draw_site_and_side, probability_favourable
from strokedata.phantoms.generate import dataset_card
from strokedata.phantoms.perfusion import CORE_SEVERITY, Physiology, perfusion_maps
from strokedata.phantoms.vessels import Occlusion

TINY = preset("tiny")
seeds = st.integers(0, 2**32 - 1)
indices = st.integers(0, 10_000)
mixes = st.sampled_from(
    [
        {"ICA-T": 1.0, "M1": 0.0, "M2": 0.0},
        {"ICA-T": 0.0, "M1": 1.0, "M2": 0.0},
        {"ICA-T": 0.0, "M1": 0.0, "M2": 1.0},
        {"ICA-T": 0.148, "M1": 0.588, "M2": 0.264},
    ]
)


def _image(phantom: PatientPhantom, modality: Modality) -> np.ndarray:
    return phantom.images[modality][0]


@settings(max_examples=15)
@given(seed=seeds, index=indices, mix=mixes)
def test_every_phantom_validates_cleanly(
    tmp_path_factory: pytest.TempPathFactory, seed: int, index: int, mix: dict[str, float]
) -> None:
    config = preset("tiny", occlusion_mix=mix)
    root = tmp_path_factory.mktemp("phantom")
    atomic_write_text(root / DATASET_CARD, dataset_card(seed, 1, config).model_dump_json())
    phantom = generate_patient(seed, index, config)
    write_patient(root, phantom)
    report = validate(root, jobs=1)
    assert report.findings == [], [f"{f.code}: {f.message}" for f in report.findings]
    if max(mix.values()) == 1.0:
        assert phantom.manifest.labels.occlusion_location == max(mix, key=lambda site: mix[site])
    assert phantom.manifest.labels.regions is None  # left to derivation from CLOT x ATLAS


@settings(max_examples=25)
@given(seed=seeds, index=indices, mix=mixes)
def test_phantoms_are_physically_consistent(seed: int, index: int, mix: dict[str, float]) -> None:
    phantom = generate_patient(seed, index, preset("tiny", occlusion_mix=mix))
    for modality, (data, _, _) in phantom.images.items():
        assert np.isfinite(data).all(), modality
    cbf, cbv, mtt, tmax = (
        _image(phantom, m) for m in (Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX)
    )
    np.testing.assert_allclose(cbv, cbf * mtt / 60, rtol=1e-5, atol=1e-6)
    core = _image(phantom, Modality.CORE) > 0
    assert (tmax[core] > 6).all()  # the core lies in the hypoperfused territory
    affine = phantom.images[Modality.TMAX][1]
    assert occluded_side_from_tmax(tmax, affine) == phantom.occlusion.side


@settings(max_examples=25)
@given(seed=seeds, index=indices, mix=mixes)
def test_the_clot_lies_inside_the_occluded_vessel(seed: int, index: int, mix: dict[str, float]) -> None:
    phantom = generate_patient(seed, index, preset("tiny", occlusion_mix=mix))
    clot = _image(phantom, Modality.CLOT)
    assert clot.any() and set(np.unique(clot)) <= {0, 1, 2}
    occlusion: Occlusion = phantom.occlusion
    vessel = phantom.vessels[occlusion.vessel]
    points, radii = vessel.section(occlusion.start, occlusion.end)
    affine = grid_affine(TINY.angio)
    centres = phantom.pose.to_head(np.argwhere(clot > 0) @ affine[:3, :3].T + affine[:3, 3])
    half_diagonal = 0.5 * float(np.linalg.norm(TINY.angio.spacing)) / phantom.pose.scale
    floor = TINY.min_vessel_radius_voxels * min(TINY.angio.spacing) / phantom.pose.scale
    reach = max(float(radii.max()), floor) + half_diagonal
    for centre in centres:  # distance from each clot voxel to the clot's stretch of the centre line
        a, b = points[:-1], points[1:]
        t = np.clip(((centre - a) * (b - a)).sum(1) / np.maximum(((b - a) ** 2).sum(1), 1e-9), 0, 1)
        distance = np.linalg.norm(centre - (a + t[:, None] * (b - a)), axis=1).min()
        assert distance <= reach


@given(seed=seeds, severity=st.floats(0, 1), grey=st.floats(0, 1))
def test_deficit_values_lie_in_the_published_ranges(seed: int, severity: float, grey: float) -> None:
    """Core: CBF < 30% of the same tissue's healthy value, CBV falls; penumbra: Tmax > 6 s, CBV kept."""
    physiology = Physiology.draw(np.random.default_rng(seed))
    points = np.random.default_rng(seed).uniform(-60, 60, (50, 3)).astype(np.float32)
    inside = np.ones(50, dtype=bool)
    shade = np.full(50, grey, dtype=np.float32)
    healthy = perfusion_maps(shade, inside, points, np.zeros(50, np.float32), physiology)
    ill = perfusion_maps(shade, inside, points, np.full(50, severity, np.float32), physiology)
    assert (healthy.cbf >= 0.6 * 20).all() and (healthy.cbf <= 1.4 * 65).all()
    assert (healthy.tmax <= 1.0).all()
    if severity > CORE_SEVERITY:
        assert (ill.cbf / healthy.cbf < 0.3).all() and (ill.cbv < 0.7 * healthy.cbv).all()
    if severity >= 0.36:  # (6 s - healthy delay of at most 1 s) / 16 s
        assert (ill.tmax > 6).all()
    if severity <= 0.31:
        assert (ill.tmax <= 6).all()
    if severity <= 0.44:  # penumbra keeps its blood volume
        assert (ill.cbv >= 0.999 * healthy.cbv).all()


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_datasets_are_byte_identical_for_any_job_count_and_subset(tmp_path: Path) -> None:
    serial = generate_dataset(tmp_path / "serial", 3, TINY, seed=7, jobs=1)
    parallel = generate_dataset(tmp_path / "parallel", 3, TINY, seed=7, jobs=2)
    subset = generate_dataset(tmp_path / "subset", 2, TINY, seed=7, jobs=1)
    assert _digests(serial) == _digests(parallel)
    subset_digests = {k: v for k, v in _digests(subset).items() if k != DATASET_CARD}
    assert subset_digests.items() <= _digests(serial).items()
    other = generate_dataset(tmp_path / "other", 1, TINY, seed=8, jobs=1)
    assert _digests(other)["p00000/ctp.nii.gz"] != _digests(serial)["p00000/ctp.nii.gz"]


def test_a_subset_of_modalities_gives_the_same_images() -> None:
    full = generate_patient(3, 5, TINY)
    part = generate_patient(3, 5, preset("tiny", modalities=[Modality.TMAX, Modality.MCTA2, Modality.NCCT]))
    assert set(part.images) == {Modality.TMAX, Modality.MCTA2, Modality.NCCT}
    for modality in part.images:
        assert np.array_equal(part.images[modality][0], full.images[modality][0])
    assert part.manifest.labels == full.manifest.labels and part.manifest.clinical == full.manifest.clinical


def test_cohort_follows_the_occlusion_mix() -> None:
    draws = Counter(draw_site_and_side(np.random.default_rng([0, i]), TINY)[0] for i in range(4000))
    for site, expected in (("ICA-T", 0.148), ("M1", 0.588), ("M2", 0.264)):
        assert abs(draws[site] / 4000 - expected) < 0.03  # > 4 binomial standard deviations


def test_mtici_model_rewards_collaterals_and_short_clots() -> None:
    def occlusion(location: str, length: float, collateral: float) -> Occlusion:
        return Occlusion(location, "L", "L_M1", 0.0, length, False, collateral)  # type: ignore[arg-type]

    assert probability_favourable(occlusion("M1", 8, 0.9)) > probability_favourable(occlusion("M1", 8, 0.2))
    assert probability_favourable(occlusion("M1", 6, 0.5)) > probability_favourable(occlusion("M1", 14, 0.5))
    assert probability_favourable(occlusion("M2", 8, 0.5)) > probability_favourable(
        occlusion("ICA-T", 8, 0.5)
    )


def test_spiral_threshold_finds_some_clot_regions_but_not_all(tmp_path: Path) -> None:
    """The 003 baseline: regions where SPIRAL > 0.9 against the regions holding clot."""
    root = generate_dataset(tmp_path / "cohort", 12, TINY, seed=11, jobs=1)
    hits = misses = false_alarms = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        atlas = read_volume(folder / "atlas.nii.gz", 10**8).data
        truth = regions_from_clot(read_volume(folder / "clot.nii.gz", 10**8).data, atlas).astype(bool)
        spiral = read_volume(folder / "spiral.nii.gz", 10**8).data
        predicted = regions_from_clot((spiral > 0.9).astype(np.uint8), atlas).astype(bool)
        hits += int((truth & predicted).sum())
        misses += int((truth & ~predicted).sum())
        false_alarms += int((~truth & predicted).sum())
    assert hits > 0 and (misses > 0 or false_alarms > 0)


def test_deficits_and_labels_vary_across_the_cohort() -> None:
    phantoms = [generate_patient(5, i, TINY) for i in range(12)]
    hypoperfused = [float((_image(p, Modality.TMAX) > 6).sum()) for p in phantoms]
    assert len(set(hypoperfused)) > 6
    assert {p.manifest.labels.occlusion_side for p in phantoms} == {"L", "R"}
    assert len({p.manifest.labels.mtici for p in phantoms}) >= 3
    for phantom in phantoms:
        for modality in LABEL_MAPS & set(phantom.images):
            assert phantom.images[modality][0].dtype == np.uint8


def test_presets_have_the_documented_sizes() -> None:
    realistic = preset("realistic")
    assert realistic.angio.shape == (512, 512, 200) and realistic.perfusion.shape == (512, 512, 27)
    assert realistic.ncct.shape[:2] == (512, 512) and 1.0 <= realistic.frame_interval <= 2.0
    assert 40 <= realistic.frames * realistic.frame_interval <= 60
    assert TINY.angio.shape == (64, 64, 16)
    with pytest.raises(ValueError):
        preset("huge")  # type: ignore[arg-type]
