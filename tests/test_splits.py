"""Splits: disjoint and covering, balanced within one patient per class, grouped, reproducible, extendable."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strokedata.phantoms import generate_dataset, generate_patient, preset, write_patient
from strokedata.splits import SplitError, extend_split, make_split, read_split, split_csv, write_split
from strokedata.splits.allocate import exact_allocation, greedy_allocation
from tests.builders import edit_json

labels = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=120)
fraction_sets = st.sampled_from(
    [[0.15] + [0.17] * 5, [0.2, 0.16, 0.64], [0.25] * 4, [0.5, 0.5], [0.1, 0.3, 0.6]]
)


@given(classes=labels, fractions=fraction_sets, seed=st.integers(0, 1000))
def test_exact_allocation_is_within_one_patient_per_class(
    classes: list[str], fractions: list[float], seed: int
) -> None:
    keys = [f"{seed}-{i}" for i in range(len(classes))]
    partition = exact_allocation(classes, keys, fractions)
    assert ((partition >= 0) & (partition < len(fractions))).all()  # every item placed exactly once
    for label, total in Counter(classes).items():
        counts = np.bincount(partition[np.array(classes) == label], minlength=len(fractions))
        assert np.all(np.abs(counts - total * np.array(fractions)) < 1 + 1e-9)
    sizes = np.bincount(partition, minlength=len(fractions))
    assert np.all(np.abs(sizes - len(classes) * np.array(fractions)) <= len(set(classes)))


@given(classes=labels, seed=st.integers(0, 1000))
def test_input_order_does_not_change_the_allocation(classes: list[str], seed: int) -> None:
    ids = [f"p{i:04d}" for i in range(len(classes))]
    keys = {pid: f"{seed}:{pid}" for pid in ids}
    first = exact_allocation(classes, [keys[pid] for pid in ids], [0.2, 0.4, 0.4])
    order = list(range(len(ids)))
    random.Random(seed).shuffle(order)
    second = exact_allocation([classes[i] for i in order], [keys[ids[i]] for i in order], [0.2, 0.4, 0.4])
    assert {ids[i]: p for i, p in enumerate(first)} == {ids[i]: p for i, p in zip(order, second, strict=True)}


@settings(max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(40, 150), labels_count=st.integers(3, 15))
def test_multilabel_greedy_keeps_prevalence_closer_than_random(seed: int, n: int, labels_count: int) -> None:
    rng = np.random.default_rng(seed)
    prevalence = rng.uniform(0.03, 0.4, labels_count)
    matrix = (rng.uniform(size=(n, labels_count)) < prevalence).astype(float)
    counts = np.hstack([matrix, np.ones((n, 1))])
    folds = 5

    def deviation(partition: np.ndarray) -> float:
        whole = matrix.mean(axis=0)
        return float(
            np.mean(
                [
                    np.abs(matrix[partition == f].mean(axis=0) - whole).mean()
                    for f in range(folds)
                    if (partition == f).any()
                ]
            )
        )

    greedy = greedy_allocation(counts, [f"{seed}-{i:05d}" for i in range(n)], [1 / folds] * folds)
    randoms = [deviation(rng.permutation(np.arange(n) % folds)) for _ in range(5)]
    assert deviation(greedy) < np.mean(randoms)
    assert set(np.bincount(greedy, minlength=folds)) <= {
        n // folds - 1,
        n // folds,
        n // folds + 1,
        n // folds + 2,
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = preset("tiny", modalities=["CLOT", "ATLAS", "TMAX"])  # type: ignore[list-item]
    return generate_dataset(tmp_path_factory.mktemp("cohort") / "data", 30, config, seed=3, jobs=1)


def _all_ids(split_path_or_split: object) -> list[str]:
    split = split_path_or_split
    ids = list(split.test) + list(split.excluded)  # type: ignore[attr-defined]
    ids += [pid for fold in split.folds for pid in fold.val] if split.folds else split.train + split.val  # type: ignore[attr-defined]
    return ids


def test_kfold_split_is_disjoint_covering_balanced_and_reproducible(cohort: Path, tmp_path: Path) -> None:
    split, report = make_split(cohort, ["occlusion"], test_size=0.15, folds=5, seed=4, jobs=1)
    ids = _all_ids(split)
    assert sorted(ids) == sorted(p.name for p in cohort.iterdir() if p.is_dir()) and len(set(ids)) == len(ids)
    for fold in split.folds or []:
        assert sorted(fold.train + fold.val + split.test) == sorted(ids)
    assert report.largest_deviation < 1
    write_split(split, tmp_path / "a.json", tmp_path / "a.csv")
    again, _ = make_split(cohort, ["occlusion"], test_size=0.15, folds=5, seed=4, jobs=2)
    write_split(again, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    other, _ = make_split(cohort, ["occlusion"], test_size=0.15, folds=5, seed=5, jobs=1)
    assert other.membership_hash != split.membership_hash
    rows = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text())))
    assert {r["patient_id"] for r in rows if r["partition"] == "test"} == set(split.test)
    assert read_split(tmp_path / "a.json") == split


def test_holdout_multilabel_regions_and_combined_strata(cohort: Path) -> None:
    split, report = make_split(
        cohort, ["regions", "side"], test_size=0.2, folds=None, val_size=0.2, seed=1, jobs=2
    )
    assert split.folds is None and split.train and split.val
    assert abs(len(split.test) - 6) <= 2 and abs(len(split.val) - 5) <= 2
    assert any(c.label.startswith("region") for c in report.classes)
    assert any(" x " not in c.label and c.label in {"L", "R"} for c in report.classes)
    _, regions_only = make_split(cohort, ["regions"], test_size=0.2, folds=None, val_size=0.2, seed=1, jobs=1)
    assert "" not in {c.label for c in regions_only.classes} and "(all)" in {
        c.label for c in regions_only.classes
    }


def test_groups_never_straddle_partitions(cohort: Path) -> None:
    split, _ = make_split(cohort, ["occlusion"], test_size=0.0, folds=3, group_by="site", seed=2, jobs=1)
    manifests = {p.name: (p / "patient.json").read_text() for p in cohort.iterdir() if p.is_dir()}
    sites = {pid: text.split('"site": "')[1].split('"')[0] for pid, text in manifests.items()}
    for fold in split.folds or []:
        inside = {sites[pid] for pid in fold.val}
        outside = {sites[pid] for pid in fold.train}
        assert not inside & outside


def test_missing_labels_error_exclude_or_own_stratum(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "data", 12, preset("tiny", modalities=["TMAX"]), seed=2, jobs=1)  # type: ignore[list-item]
    edit_json(root / "p00003" / "patient.json", {"labels.mtici": None})
    with pytest.raises(SplitError, match="p00003"):
        make_split(root, ["mtici"], folds=3, jobs=1)
    excluded, _ = make_split(root, ["mtici"], folds=3, missing="exclude", jobs=1)
    assert excluded.excluded == ["p00003"] and "p00003" not in excluded.test
    assert all("p00003" not in fold.train + fold.val for fold in excluded.folds or [])
    own, report = make_split(root, ["mtici"], folds=3, missing="own-stratum", jobs=1)
    assert "(missing)" in {c.label for c in report.classes} and "p00003" in own.test + [
        pid for fold in own.folds or [] for pid in fold.val
    ]
    assert any("fewer than the 3 folds" in w for w in report.warnings)


def test_extend_keeps_every_assignment_and_places_new_patients(tmp_path: Path) -> None:
    config = preset("tiny", modalities=["TMAX"])  # type: ignore[list-item]
    root = generate_dataset(tmp_path / "data", 20, config, seed=6, jobs=1)
    first, _ = make_split(root, ["occlusion", "side"], test_size=0.2, folds=4, seed=0, jobs=1)
    for index in range(20, 32):
        write_patient(root, generate_patient(6, index, config))
    grown, _ = extend_split(root, first, jobs=1)
    before = first.partitions()
    after = grown.partitions()
    for name, ids in before.items():
        assert set(ids) <= set(after[name]), name
    assert len(_all_ids(grown)) == 32 and grown.dataset_hash != first.dataset_hash
    assert split_csv(grown).count("\n") > split_csv(first).count("\n")
    (root / "p00000").rename(tmp_path / "gone")
    with pytest.raises(SplitError, match="p00000"):
        extend_split(root, grown, jobs=1)


def test_bad_requests_are_clear_errors(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(SplitError, match="unknown stratify"):
        make_split(cohort, ["colour"], jobs=1)
    with pytest.raises(ValueError):
        make_split(cohort, ["occlusion"], folds=5, val_size=0.2, jobs=1)
    (tmp_path / "bad.json").write_text('{"schema_version": 1}')
    with pytest.raises(SplitError, match="not a valid split file"):
        read_split(tmp_path / "bad.json")
