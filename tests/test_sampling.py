"""Sampling: log-smoothed class weights against a hand computation, the seeded weighted sampler's
balance and reproducibility, every slice of every phantom once with its clot regions, and core-balanced
patches equal to direct slicing, padded at the border; all inside a torch DataLoader."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare
from torch.utils.data import DataLoader

import strokedata.sampling
import strokedata.sampling.patches
import strokedata.sampling.weights
from strokedata.labels import regions_by_slice
from strokedata.phantoms import generate_dataset, preset
from strokedata.sampling import (
    PatchDataset,
    SliceDataset,
    WeightedSampler,
    class_counts,
    class_weights,
    extract_patch,
    inverse_frequency_weights,
    positive_weights,
    sample_weights,
)
from strokedata.subjects import subjects
from strokedata.transforms import TemporalResample

MODALITIES = ["CTP", "CORE", "SPIRAL", "MCTA1", "CLOT", "ATLAS"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny phantoms: cores of 86, 0, 1 and 312 voxels (seed 0), some clot in a few slices."""
    config = preset("tiny", modalities=MODALITIES)
    return generate_dataset(tmp_path_factory.mktemp("sampling") / "data", 4, config, seed=0, jobs=1)


def _nifti(cohort: Path, patient: str, name: str) -> np.ndarray:
    image = nib.load(cohort / patient / f"{name}.nii.gz")
    return np.asarray(image.dataobj)


def test_the_doctests_hold() -> None:
    for module in (strokedata.sampling, strokedata.sampling.weights, strokedata.sampling.patches):
        assert doctest.testmod(module).failed == 0


# --- class weights ------------------------------------------------------------------------------------


def test_log_smoothed_weights_by_hand() -> None:
    counts = [50, 30, 15, 5]  # N = 100
    expected_mu_1 = [1.0, math.log(100 / 30), math.log(100 / 15), math.log(100 / 5)]
    np.testing.assert_allclose(class_weights(counts=counts, mu=1.0), expected_mu_1)
    np.testing.assert_allclose(class_weights(counts=counts), [1.0, 1.0, 1.0, math.log(0.15 * 100 / 5)])
    labels = np.repeat(np.arange(4), counts)
    assert class_weights(labels).tolist() == class_weights(counts=counts).tolist()
    assert class_counts(labels).tolist() == counts
    # the 000 cohort: with the default mu every class is at the floor; mu = 1 weighs ICA-T and M2
    cohort = [148, 588, 264]
    assert class_weights(counts=cohort).tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(class_weights(counts=cohort, mu=1.0), [1.9105, 1.0, 1.3318], atol=1e-4)


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=12), st.floats(0.01, 10))
def test_rarer_classes_never_weigh_less(counts: list[int], mu: float) -> None:
    weights = class_weights(counts=counts, mu=mu)
    assert np.all(weights >= 1)
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(weights[order]) <= 1e-12)  # more samples, no more weight
    balanced = inverse_frequency_weights(counts=counts)
    np.testing.assert_allclose(balanced * np.array(counts), sum(counts) / len(counts))


def test_a_class_without_samples_is_named_or_zero() -> None:
    with pytest.raises(ValueError, match=r"class 1 has no sample"):
        class_weights([0, 0, 2])
    with pytest.raises(ValueError, match=r"class 3 has no sample"):
        inverse_frequency_weights([0, 1, 2], n_classes=4)
    zero = class_weights([0, 0, 2], empty="zero", mu=1.0)
    assert zero[1] == 0 and zero[2] == pytest.approx(math.log(3))
    assert inverse_frequency_weights([0, 0, 2], empty="zero").tolist() == [0.75, 0.0, 1.5]
    for bad in ([0, -1], [0.5, 1], [None, 1], [[0, 1]]):
        with pytest.raises(ValueError):
            class_weights(bad)
    with pytest.raises(ValueError, match="one of them"):
        class_weights([0, 1], counts=[1, 1])
    with pytest.raises(ValueError, match="mu"):
        class_weights([0, 1], mu=0)
    with pytest.raises(ValueError, match="fit"):
        class_counts([0, 3], n_classes=2)


def test_positive_weights_per_region() -> None:
    labels = np.zeros((20, 3), dtype=np.uint8)
    labels[:10, 0] = 1
    labels[:2, 1] = 1
    labels[5, 2] = 1
    np.testing.assert_allclose(positive_weights(labels, mu=1.0), [1.0, math.log(10), math.log(20)])
    with pytest.raises(ValueError, match="label 2 has no sample"):
        positive_weights(labels[:4])
    assert positive_weights(labels[:4], empty="zero")[2] == 0
    with pytest.raises(ValueError, match="0 and 1"):
        positive_weights([[2, 0]])


# --- the weighted sampler -----------------------------------------------------------------------------


def test_inverse_frequency_sampling_balances_the_classes() -> None:
    labels = np.repeat([0, 1, 2], [90, 9, 1])
    weights = sample_weights(labels, inverse_frequency_weights(labels))
    sampler = WeightedSampler(weights, 30_000, seed=7)
    drawn = np.bincount(labels[sampler.indices()], minlength=3)
    assert drawn.sum() == 30_000
    assert chisquare(drawn).pvalue > 0.001  # uniform over classes
    # log-smoothed weights draw class c in proportion to n_c * w_c
    smoothed = class_weights(labels, mu=1.0)
    expected = np.array([90, 9, 1]) * smoothed / (np.array([90, 9, 1]) * smoothed).sum()
    drawn = np.bincount(labels[WeightedSampler(sample_weights(labels, smoothed), 30_000, seed=7).indices()])
    assert chisquare(drawn, expected * 30_000).pvalue > 0.001


def test_the_sampler_is_reproducible_per_seed_and_epoch() -> None:
    weights = np.linspace(0.1, 1.0, 50)
    first, again = WeightedSampler(weights, seed=3), WeightedSampler(weights, seed=3)
    assert list(first) == list(again) == list(first) and len(first) == 50
    other_seed = WeightedSampler(weights, seed=4)
    assert list(other_seed) != list(first)
    first.set_epoch(1)
    epoch_1 = list(first)
    assert epoch_1 != list(again) and epoch_1 == again.indices(1).tolist()
    distinct = WeightedSampler(weights, 50, seed=0, replacement=False)
    assert sorted(distinct) == list(range(50))
    assert all(isinstance(i, int) for i in distinct)


def test_the_sampler_refuses() -> None:
    for weights in ([], [0.0, 0.0], [1.0, -1.0], [1.0, float("nan")], [[1.0]]):
        with pytest.raises(ValueError):
            WeightedSampler(weights, seed=0)
    with pytest.raises(ValueError, match="distinct"):
        WeightedSampler([1.0, 0.0, 1.0], 3, seed=0, replacement=False)
    for bad in ({"num_samples": 0}, {"seed": -1}, {"seed": 1.5}):
        with pytest.raises(ValueError):
            WeightedSampler([1.0], **{"seed": 0, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        WeightedSampler([1.0], seed=0).set_epoch(-1)
    with pytest.raises(ValueError, match="no class weight"):
        sample_weights([0, 2], [1.0, 1.0])


# --- slices -------------------------------------------------------------------------------------------


def test_every_slice_appears_once_with_its_regions(cohort: Path) -> None:
    patients = subjects(cohort)
    dataset = SliceDataset(patients, ["SPIRAL", "MCTA1"])
    assert len(dataset) == 4 * 16 and dataset.slices_per_subject.tolist() == [16] * 4
    seen = set()
    for index in range(len(dataset)):
        item = dataset[index]
        seen.add((item["patient_id"], item["slice"]))
        assert item["SPIRAL"].shape == (1, 64, 64) and item["SPIRAL"].dtype == np.float32
        assert item["regions"].shape == (15,) and item["regions"].dtype == np.uint8
    assert seen == {(f"p0000{i}", z) for i in range(4) for z in range(16)}
    assert dataset._cache.loads == 4  # in order: one read per subject
    labels = dataset.region_labels()
    for number, patient in enumerate(f"p0000{i}" for i in range(4)):
        expected = regions_by_slice(_nifti(cohort, patient, "clot"), _nifti(cohort, patient, "atlas"))
        np.testing.assert_array_equal(labels[16 * number : 16 * (number + 1)], expected)
        spiral = _nifti(cohort, patient, "spiral")
        item = dataset[16 * number + 9]
        np.testing.assert_array_equal(item["SPIRAL"][0], spiral[:, :, 9])
        np.testing.assert_array_equal(item["regions"], expected[9])
    assert labels.any()  # some slices hold clot
    assert dataset.groups.tolist() == [f"p0000{i}" for i in range(4) for _ in range(16)]
    assert all(not patient["CLOT"]._loaded for patient in patients)  # the subjects stay unloaded


def test_slices_along_another_axis_and_without_regions(cohort: Path) -> None:
    patients = subjects(cohort)[:2]
    dataset = SliceDataset(patients, ["CTP"], axis=0, regions=False)
    assert len(dataset) == 2 * 64
    item = dataset[64 + 5]
    ctp = np.moveaxis(_nifti(cohort, "p00001", "ctp"), -1, 0)  # (t, x, y, z)
    np.testing.assert_array_equal(item["CTP"], ctp[:, 5].astype(np.float32))
    assert "regions" not in item and item["subject_index"] == 1 and item["slice"] == 5
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(ValueError, match="regions=False"):
        dataset.region_labels()


def test_slice_dataset_refusals(cohort: Path) -> None:
    patients = subjects(cohort)[:1]
    with pytest.raises(ValueError, match=r"p00000 has no image 'CBF'"):
        SliceDataset(patients, ["CBF"])
    with pytest.raises(ValueError, match="taken"):
        SliceDataset(patients, ["regions"])
    small = tio.Subject(
        X=tio.ScalarImage(tensor=np.zeros((1, 4, 4, 3))),
        CLOT=tio.LabelMap(tensor=np.zeros((1, 4, 4, 2), dtype=np.uint8)),
        ATLAS=tio.LabelMap(tensor=np.zeros((1, 4, 4, 2), dtype=np.uint8)),
        patient_id="odd",
    )
    with pytest.raises(ValueError, match=r"odd's images are not on one grid"):
        SliceDataset([small], ["X"])


def test_slices_and_the_sampler_inside_a_dataloader(cohort: Path) -> None:
    dataset = SliceDataset(subjects(cohort), ["SPIRAL"])
    has_clot = dataset.region_labels().any(axis=1).astype(int)
    weights = sample_weights(has_clot, inverse_frequency_weights(has_clot))
    sampler = WeightedSampler(weights, 12, seed=0)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=0)
    batches = list(loader)
    assert len(batches) == 3
    batch = batches[0]
    assert isinstance(batch["SPIRAL"], torch.Tensor) and batch["SPIRAL"].shape == (4, 1, 64, 64)
    assert batch["SPIRAL"].dtype == torch.float32 and batch["regions"].shape == (4, 15)
    assert len(batch["patient_id"]) == 4
    order = sampler.indices().tolist()
    assert [int(s) for b in batches for s in b["slice"]] == [index % 16 for index in order]


# --- patches ------------------------------------------------------------------------------------------


def _synthetic(
    name: str, shape: tuple[int, int, int], frames: int, core: list[tuple[int, int, int]]
) -> tio.Subject:
    """A subject whose CTP voxel values encode (frame, x, y, z), positive everywhere, with a core."""
    t, x, y, z = np.indices((frames, *shape))
    ctp = (1 + t * 1e6 + x * 1e4 + y * 1e2 + z).astype(np.float32)
    label = np.zeros((1, *shape), dtype=np.uint8)
    for voxel in core:
        label[(0, *voxel)] = 1
    return tio.Subject(CTP=tio.ScalarImage(tensor=ctp), CORE=tio.LabelMap(tensor=label), patient_id=name)


def test_patch_centres_are_exactly_balanced_and_reproducible(cohort: Path) -> None:
    patients = subjects(cohort)
    dataset = PatchDataset(patients, patches_per_epoch=64, seed=1, frames=16)
    centres = dataset.centres()
    assert centres.shape == (64, 5) and centres[:, 4].sum() == 32
    core_counts = [86, 0, 1, 312]
    for subject, x, y, z, label in centres:
        core = _nifti(cohort, f"p0000{subject}", "core")
        assert core[x, y, z] == label
        assert core_counts[subject] > 0 or label == 0  # p00001 has no core: non-core centres only
    # grouped: each subject's centres together
    runs = [s for i, s in enumerate(centres[:, 0]) if i == 0 or s != centres[i - 1, 0]]
    assert len(runs) == len(set(runs))
    again = PatchDataset(patients, patches_per_epoch=64, seed=1, frames=16)
    assert np.array_equal(again.centres(), centres)
    dataset.set_epoch(1)
    assert not np.array_equal(dataset.centres(), centres) and dataset.centres()[:, 4].sum() == 32
    assert np.array_equal(dataset.centres(0), centres)
    shuffled = PatchDataset(patients, patches_per_epoch=63, seed=1, frames=16, order="shuffled")
    assert shuffled.centres()[:, 4].sum() == 31  # odd: the extra one is non-core


def test_patches_equal_direct_slicing_and_their_labels(cohort: Path) -> None:
    patients = subjects(cohort)
    dataset = PatchDataset(patients, patches_per_epoch=40, seed=2, transform=TemporalResample(32), size=32)
    sources: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for index in range(len(dataset)):
        item = dataset[index]
        subject, x, y, z, label = dataset.centres()[index]
        assert item["patch"].shape == (1, 32, 32, 32) and item["patch"].dtype == np.float32
        assert item["label"] == label and item["central"].shape == (2, 2)
        assert item["central"][0, 0] == label and item["patient_id"] == f"p0000{subject}"
        assert item["centre"].tolist() == [x, y, z]
        if subject not in sources:
            resampled = TemporalResample(32)(patients[subject])["CTP"].numpy()
            sources[subject] = resampled, _nifti(cohort, f"p0000{subject}", "core")
        ctp, core = sources[subject]
        if 15 <= x <= 64 - 17 and 15 <= y <= 64 - 17:
            np.testing.assert_array_equal(item["patch"][0], ctp[:, x - 15 : x + 17, y - 15 : y + 17, z])
            np.testing.assert_array_equal(item["central"], core[x : x + 2, y : y + 2, z])
    assert dataset._cache.loads <= 2 * 4  # the pools, then each subject once (grouped)


def test_patches_at_the_border_are_padded() -> None:
    subject = _synthetic("corner", (6, 5, 2), 3, core=[(0, 0, 1), (5, 4, 0)])
    dataset = PatchDataset([subject], patches_per_epoch=20, seed=0, frames=3, size=4, signal_threshold=None)
    ctp = subject["CTP"].numpy()
    for index in range(len(dataset)):
        item = dataset[index]
        x, y, z = item["centre"].tolist()
        padded = np.pad(ctp[:, :, :, z], ((0, 0), (1, 2), (1, 2)))  # size 4: 1 before, 2 after
        np.testing.assert_array_equal(item["patch"][0], padded[:, x : x + 4, y : y + 4])
        core = np.pad(subject["CORE"].numpy()[0, :, :, z], ((1, 2), (1, 2)))
        np.testing.assert_array_equal(item["central"], core[x + 1 : x + 3, y + 1 : y + 3])
    edge = extract_patch(ctp, 0, 0, 0, 4, "edge")
    np.testing.assert_array_equal(edge, np.pad(ctp[:, :3, :3, 0], ((0, 0), (1, 0), (1, 0)), mode="edge"))
    assert extract_patch(ctp, 2, 2, 1, 3).shape == (3, 3, 3)


def test_patients_without_core_and_cohorts_without_core() -> None:
    with_core = _synthetic("a", (8, 8, 2), 2, core=[(3, 3, 0)])
    without = _synthetic("b", (8, 8, 2), 2, core=[])
    dataset = PatchDataset([with_core, without], patches_per_epoch=10, seed=0, frames=2, size=2)
    centres = dataset.centres()
    assert centres[:, 4].sum() == 5 and np.all(centres[centres[:, 4] == 1, 0] == 0)
    assert np.all(centres[centres[:, 4] == 1, 1:4] == [3, 3, 0])
    none = PatchDataset([without], patches_per_epoch=10, seed=0, frames=2, size=2)
    assert none.centres()[:, 4].sum() == 0
    dark = _synthetic("c", (4, 4, 1), 2, core=[])
    dark["CTP"].set_data(np.zeros((2, 4, 4, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="no subject has a candidate"):
        PatchDataset([dark], patches_per_epoch=2, seed=0, frames=2).centres()
    masked = _synthetic("d", (8, 8, 2), 2, core=[(3, 3, 0)])
    within = np.zeros((1, 8, 8, 2), dtype=np.uint8)
    within[0, 2:5, 2:5, 0] = 1
    masked["MASK"] = tio.LabelMap(tensor=within)
    inside = PatchDataset([masked], patches_per_epoch=50, seed=0, frames=2, within="MASK").centres()
    assert np.all(within[0][tuple(inside[:, 1:4].T)] == 1)


def test_patch_dataset_refusals(cohort: Path) -> None:
    patients = subjects(cohort)[:1]
    with pytest.raises(ValueError, match=r"p00000's 'CTP' has 16 channels.*TemporalResample\(32\)"):
        PatchDataset(patients, patches_per_epoch=4, seed=0)
    with pytest.raises(ValueError, match="2 x 16 frames"):
        PatchDataset(patients, patches_per_epoch=4, seed=0, frames=16, channels=2)
    with pytest.raises(ValueError, match="16 channels"):
        PatchDataset(patients, patches_per_epoch=4, seed=0, transform=tio.Lambda(lambda x: x))[0]
    for bad in ({"patches_per_epoch": 0}, {"seed": -1}, {"padding": "reflect"}, {"order": "random"}):
        with pytest.raises(ValueError):
            PatchDataset(patients, **{"patches_per_epoch": 4, "seed": 0, "frames": 16, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        PatchDataset([], patches_per_epoch=4, seed=0)


def test_patches_inside_a_dataloader(cohort: Path) -> None:
    dataset = PatchDataset(subjects(cohort)[:2], patches_per_epoch=8, seed=0, frames=16, channels=1)
    batch = next(iter(DataLoader(dataset, batch_size=8, num_workers=0)))
    assert batch["patch"].shape == (8, 1, 16, 32, 32) and batch["patch"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["central"].shape == (8, 2, 2)
    assert batch["label"].sum().item() == 4
