"""Checks of a split file against the dataset it claims to split (``validate --split``)."""

from __future__ import annotations

from pathlib import Path

from strokedata.manifest import PatientManifest
from strokedata.validation.report import Finding, make_finding


def split_findings(
    split_path: Path, folders: list[str], manifests: list[PatientManifest], complete: bool
) -> list[Finding]:
    """Return findings about a split file: unreadable, unknown ids, duplicates, unassigned patients,
    inconsistent folds, and a dataset hash that no longer matches (checked only when every manifest is
    valid, ``complete``)."""
    from strokedata.splits.model import (
        SplitError,
        dataset_hash,
        read_split,
    )  # splits import the dataset layer

    where = str(split_path)
    try:
        split = read_split(split_path)
    except SplitError as error:
        return [make_finding("S005", None, where, str(error))]
    findings = []
    owners: dict[str, list[str]] = {}
    for name, ids in split.partitions().items():
        for pid in ids:
            owners.setdefault(pid, []).append(name)
    known = set(folders)
    for pid in sorted(set(owners) - known):
        findings.append(make_finding("S001", pid, where, f"the split names {pid}, which the dataset lacks"))
    for pid, names in sorted(owners.items()):
        if len(names) > 1:
            findings.append(make_finding("S002", pid, where, f"{pid} is in {' and '.join(names)}"))
    for pid in sorted(known - set(owners)):
        findings.append(make_finding("S003", pid, where, f"{pid} is in no partition of the split"))
    if split.folds is not None:
        validated = {pid for fold in split.folds for pid in fold.val}
        for index, fold in enumerate(split.folds):
            expected = validated - set(fold.val)
            if set(fold.train) != expected:
                odd = sorted(set(fold.train) ^ expected)
                findings.append(
                    make_finding(
                        "S006",
                        None,
                        where,
                        f"fold {index} trains on {len(fold.train)} patients, not on the other folds' "
                        f"{len(expected)} validation patients (differs at {', '.join(odd[:5])})",
                    )
                )
    if complete and split.dataset_hash != dataset_hash(manifests):
        findings.append(
            make_finding(
                "S004", None, where, "the dataset hash differs from the one recorded when the split was made"
            )
        )
    return findings
