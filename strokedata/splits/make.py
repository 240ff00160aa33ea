"""``make_split`` and ``extend_split``: stratified, grouped and multi-label splits of a dataset."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strokedata import __version__
from strokedata.csvcells import csv_text
from strokedata.dataset import Dataset, load_dataset
from strokedata.executor import Executor, executor_for
from strokedata.io import atomic_write_text
from strokedata.labels import favourable_recanalization, patient_regions_job
from strokedata.manifest import N_REGIONS, PatientManifest
from strokedata.splits.allocate import exact_allocation, greedy_allocation
from strokedata.splits.model import (
    ClassBalance,
    Fold,
    Missing,
    SplitError,
    SplitFile,
    SplitParameters,
    SplitReport,
    dataset_hash,
    membership_hash,
)

MULTI_LABEL = "regions"
SINGLE_LABEL_KEYS: dict[str, Callable[[PatientManifest], str | None]] = {
    "occlusion": lambda m: m.labels.occlusion_location,
    "side": lambda m: m.labels.occlusion_side,
    "mtici": lambda m: m.labels.mtici,
    "recanalization": lambda m: {True: "favourable", False: "unfavourable", None: None}[
        favourable_recanalization(m.labels.mtici)
    ],
    "site": lambda m: m.site,
}
"""Single-label stratify keys and how each is read from a manifest (None: the patient lacks it)."""
STRATIFY_KEYS = (*SINGLE_LABEL_KEYS, MULTI_LABEL)
MISSING_STRATUM = "(missing)"
ALL_PATIENTS = "(all)"
"""The single stratum when only the multi-label key stratifies."""


def _order_key(seed: int, patient_id: str) -> str:
    return hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()


@dataclass
class Table:
    """Patients to split: ids, stratum (single-label part), regions (multi-label part), group."""

    ids: list[str]
    strata: list[str]
    regions: np.ndarray | None  # (patients, 15) or None
    groups: list[str] | None


def _label_table(
    dataset: Dataset, parameters: SplitParameters, executor: Executor
) -> tuple[Table, list[str]]:
    """Return the table of patients to split and the ids excluded for missing labels."""
    unknown = [key for key in parameters.stratify if key not in STRATIFY_KEYS]
    if unknown:
        raise SplitError(f"unknown stratify key(s) {', '.join(unknown)}; use {', '.join(STRATIFY_KEYS)}")
    single = [key for key in parameters.stratify if key != MULTI_LABEL]
    regions: dict[str, list[int] | None] = {}
    if MULTI_LABEL in parameters.stratify:  # labels.regions where given, else read from CLOT x ATLAS
        jobs = [(dataset.root / m.patient_id, m) for m in dataset]
        regions.update(dict(executor.map_unordered(patient_regions_job, jobs)))
    missing: dict[str, list[str]] = {}
    rows = []
    for manifest in dataset:
        values = [SINGLE_LABEL_KEYS[key](manifest) for key in single]
        lacking = [key for key, value in zip(single, values, strict=True) if value is None]
        if MULTI_LABEL in parameters.stratify and regions.get(manifest.patient_id) is None:
            lacking.append(MULTI_LABEL)
        group = _group_of(manifest, parameters.group_by)
        if parameters.group_by is not None and group is None:
            lacking.append(f"group '{parameters.group_by}'")
        for key in lacking:
            missing.setdefault(key, []).append(manifest.patient_id)
        rows.append((manifest.patient_id, values, group, bool(lacking)))
    if missing and parameters.missing == "error":
        listing = "; ".join(
            f"{key}: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''} ({len(ids)})"
            for key, ids in sorted(missing.items())
        )
        raise SplitError(
            f"patients lack a stratify label or group: {listing}. Label them, or pass "
            "--missing exclude (leave them out) or --missing own-stratum (a stratum of their own)"
        )
    excluded = (
        sorted(pid for pid, _, _, lacking in rows if lacking) if parameters.missing == "exclude" else []
    )
    left_out = set(excluded)
    kept = [row for row in rows if row[0] not in left_out]
    table = Table(
        ids=[pid for pid, _, _, _ in kept],
        strata=[
            " x ".join(MISSING_STRATUM if v is None else v for v in values) or ALL_PATIENTS
            for _, values, _, _ in kept
        ],
        regions=np.array([regions.get(pid) or [0] * N_REGIONS for pid, _, _, _ in kept], dtype=np.int64)
        if MULTI_LABEL in parameters.stratify
        else None,
        groups=[group if group is not None else f"(own group) {pid}" for pid, _, group, _ in kept]
        if parameters.group_by is not None
        else None,
    )
    return table, excluded


def _group_of(manifest: PatientManifest, group_by: str | None) -> str | None:
    if group_by is None:
        return None
    if group_by == "site":
        return manifest.site
    value = manifest.clinical.get(group_by)
    return None if value is None else str(value)


def _partition_names(parameters: SplitParameters) -> tuple[list[str], list[float]]:
    """Return the partitions' names and fractions: [test,] fold0..fold{k-1} or test, val, train."""
    test = parameters.test_size
    names, fractions = (["test"], [test]) if test > 0 else ([], [])
    if parameters.folds is not None:
        names += [f"fold{i}" for i in range(parameters.folds)]
        fractions += [(1 - test) / parameters.folds] * parameters.folds
    else:
        val = parameters.val_size or 0.0
        names += ["val", "train"]
        fractions += [(1 - test) * val, (1 - test) * (1 - val)]
    return names, fractions


def _unit_counts(table: Table, members: list[list[int]]) -> np.ndarray:
    """Return (units, labels + 1): per unit, its patients per stratum one-hot and per region, and its size."""
    strata = sorted(set(table.strata))
    columns = len(strata) + (N_REGIONS if table.regions is not None else 0) + 1
    counts = np.zeros((len(members), columns))
    index = {stratum: k for k, stratum in enumerate(strata)}
    for unit, patients in enumerate(members):
        for patient in patients:
            counts[unit, index[table.strata[patient]]] += 1
            if table.regions is not None:
                counts[unit, len(strata) : len(strata) + N_REGIONS] += table.regions[patient]
            counts[unit, -1] += 1
    return counts


def _units(table: Table) -> list[list[int]]:
    """Return the allocation units: the groups' patient indices, or one patient each."""
    if table.groups is None:
        return [[i] for i in range(len(table.ids))]
    by_group: dict[str, list[int]] = {}
    for i, group in enumerate(table.groups):
        by_group.setdefault(group, []).append(i)
    return [by_group[group] for group in sorted(by_group)]


def _allocate(
    table: Table, parameters: SplitParameters, fractions: list[float], previous: dict[str, int] | None = None
) -> np.ndarray:
    """Return a partition index per patient of the table (``previous``: id -> partition to keep)."""
    keys = [_order_key(parameters.seed, pid) for pid in table.ids]
    if previous is None and table.groups is None and table.regions is None:
        return exact_allocation(table.strata, keys, fractions)
    members = _units(table)
    counts = _unit_counts(table, members)
    fixed = {}
    for unit, patients in enumerate(members):
        kept = {previous[table.ids[p]] for p in patients if previous and table.ids[p] in previous}
        if len(kept) > 1:
            raise SplitError(
                f"group of {table.ids[patients[0]]} already spans partitions; it cannot be extended"
            )
        if kept:
            fixed[unit] = kept.pop()
    unit_keys = [min(keys[p] for p in patients) for patients in members]
    per_unit = greedy_allocation(counts, unit_keys, fractions, fixed=fixed)
    result = np.empty(len(table.ids), dtype=np.int64)
    for unit, patients in enumerate(members):
        result[patients] = per_unit[unit]
    return result


def _split_file(
    hashed: str, parameters: SplitParameters, table: Table, assignment: np.ndarray, excluded: list[str]
) -> SplitFile:
    names, _ = _partition_names(parameters)
    members: dict[str, list[str]] = {name: [] for name in names}
    for pid, partition in zip(table.ids, assignment, strict=True):
        members[names[partition]].append(pid)
    test = sorted(members.get("test", []))
    partitions: dict[str, list[str]] = {"test": test, "excluded": excluded}
    fields: dict[str, object] = {}
    if parameters.folds is not None:
        vals = [sorted(members[f"fold{i}"]) for i in range(parameters.folds)]
        everyone = {pid for fold in vals for pid in fold}
        fields["folds"] = [Fold(train=sorted(everyone - set(val)), val=val) for val in vals]
        partitions.update({f"fold{i}": val for i, val in enumerate(vals)})
    else:
        partitions.update({"train": sorted(members["train"]), "val": sorted(members["val"])})
        fields.update(train=partitions["train"], val=partitions["val"])
    return SplitFile.model_validate(
        {
            "tool_version": __version__,
            "dataset_hash": hashed,
            "membership_hash": membership_hash(partitions),
            "parameters": parameters,
            "test": test,
            "excluded": excluded,
            **fields,
        },
        strict=False,
    )


def split_rows(table: Table, parameters: SplitParameters, hashed: str, excluded: list[str]) -> SplitFile:
    """Return the split of a table of patients (ids, strata, optional regions and groups).

    The dataset-free core of ``make_split``; ``hashed`` is the dataset hash to record.
    """
    _, fractions = _partition_names(parameters)
    return _split_file(hashed, parameters, table, _allocate(table, parameters, fractions), excluded)


def balance_report(
    split: SplitFile, table_strata: dict[str, str], regions: dict[str, list[int]] | None, folds: int | None
) -> SplitReport:
    """Return per-partition class counts against their ideals, the largest deviation and warnings."""
    names, fractions = _partition_names(split.parameters)
    partitions = split.partitions()
    labels: dict[str, set[str]] = {}
    for pid, stratum in table_strata.items():
        labels.setdefault(stratum, set()).add(pid)
    for k in range(N_REGIONS if regions is not None else 0):
        labels[f"region {k:02d}"] = {pid for pid, vector in (regions or {}).items() if vector[k]}
    classes, warnings, worst = [], [], 0.0
    for label in sorted(labels):
        patients = labels[label]
        counts = {name: len(patients & set(partitions[name])) for name in names}
        ideal = {name: round(len(patients) * f, 3) for name, f in zip(names, fractions, strict=True)}
        deviation = max(abs(counts[n] - ideal[n]) for n in names) if names else 0.0
        worst = max(worst, deviation)
        classes.append(
            ClassBalance(
                label=label,
                total=len(patients),
                counts=counts,
                ideal=ideal,
                largest_deviation=round(deviation, 3),
            )
        )
        if folds is not None and 0 < len(patients) < folds:
            warnings.append(
                f"class '{label}' has {len(patients)} patients, fewer than the {folds} folds: "
                "some folds validate on none"
            )
    sizes = {name: len(partitions[name]) for name in names}
    if split.excluded:
        sizes["excluded"] = len(split.excluded)
    return SplitReport(
        partition_sizes=sizes, classes=classes, largest_deviation=round(worst, 3), warnings=warnings
    )


def _report(split: SplitFile, table: Table) -> SplitReport:
    regions = (
        None
        if table.regions is None
        else {pid: row.tolist() for pid, row in zip(table.ids, table.regions, strict=True)}
    )
    return balance_report(
        split, dict(zip(table.ids, table.strata, strict=True)), regions, split.parameters.folds
    )


def make_split(
    path: str | Path,
    stratify: list[str],
    *,
    test_size: float = 0.15,
    folds: int | None = 5,
    val_size: float | None = None,
    group_by: str | None = None,
    seed: int = 0,
    missing: Missing = "error",
    jobs: int | None = None,
    executor: Executor | None = None,
) -> tuple[SplitFile, SplitReport]:
    """Return a new split of the dataset at ``path`` and its balance report.

    Single-label strata without groups are allocated exactly: every class's count in every partition is
    within one patient of its ideal. Groups and the multi-label ``regions`` key use a greedy allocation
    (rarest label first). Raises SplitError (missing labels, unknown keys) or DatasetInvalidError.
    """
    parameters = SplitParameters(
        stratify=list(stratify),
        test_size=test_size,
        folds=folds,
        val_size=val_size,
        group_by=group_by,
        seed=seed,
        missing=missing,
    )
    dataset = load_dataset(path)
    with executor_for(jobs, executor) as runner:
        table, excluded = _label_table(dataset, parameters, runner)
    if not table.ids:
        raise SplitError("no patient is left to split")
    split = split_rows(table, parameters, dataset_hash(dataset), excluded)
    return split, _report(split, table)


def extend_split(
    path: str | Path, previous: SplitFile, *, jobs: int | None = None, executor: Executor | None = None
) -> tuple[SplitFile, SplitReport]:
    """Return ``previous`` with the dataset's new patients placed (stratified); nobody already placed moves.

    Raises SplitError when patients of the split have left the dataset.
    """
    parameters = previous.parameters
    dataset = load_dataset(path)
    placed = {pid: name for name, ids in previous.partitions().items() for pid in ids}
    gone = sorted(set(placed) - set(dataset.ids))
    if gone:
        raise SplitError(
            f"{len(gone)} patients of the split are no longer in the dataset "
            f"({', '.join(gone[:20])}); a split can only grow"
        )
    with executor_for(jobs, executor) as runner:
        table, newly_excluded = _label_table(dataset, parameters, runner)
    keep = [i for i, pid in enumerate(table.ids) if pid not in previous.excluded]
    table = Table(
        [table.ids[i] for i in keep],
        [table.strata[i] for i in keep],
        None if table.regions is None else table.regions[keep],
        None if table.groups is None else [table.groups[i] for i in keep],
    )
    names, fractions = _partition_names(parameters)
    previous_index = {pid: names.index(name) for pid, name in placed.items() if name in names}
    assignment = _allocate(table, parameters, fractions, previous=previous_index)
    moved = [
        pid
        for pid, partition in zip(table.ids, assignment, strict=True)
        if pid in previous_index and partition != previous_index[pid]
    ]
    if moved:  # the guarantee, checked before anything is written
        raise SplitError(f"internal error: {', '.join(moved[:5])} would move; nothing was written")
    excluded = sorted(set(previous.excluded) | set(newly_excluded))
    split = _split_file(dataset_hash(dataset), parameters, table, assignment, excluded)
    return split, _report(split, table)


def split_csv(split: SplitFile) -> str:
    """Return the split as CSV rows patient_id,partition,fold (k-fold: a train and a val row per fold)."""
    rows: list[tuple[str, str, str]] = [(pid, "test", "") for pid in split.test]
    rows += [(pid, "excluded", "") for pid in split.excluded]
    if split.folds is not None:
        for index, fold in enumerate(split.folds):
            rows += [(pid, "train", str(index)) for pid in fold.train]
            rows += [(pid, "val", str(index)) for pid in fold.val]
    else:
        rows += [(pid, "train", "") for pid in split.train or []] + [
            (pid, "val", "") for pid in split.val or []
        ]
    rows.sort(key=lambda row: (row[0], row[2], row[1]))
    return csv_text(["patient_id", "partition", "fold"], rows)


def write_split(split: SplitFile, out: str | Path, csv_out: str | Path | None = None) -> None:
    """Write the split as JSON (and CSV), each atomically."""
    atomic_write_text(Path(out), split.model_dump_json(indent=2) + "\n")
    if csv_out is not None:
        atomic_write_text(Path(csv_out), split_csv(split))
