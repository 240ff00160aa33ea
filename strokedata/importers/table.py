"""The generic layout: a CSV with one row per patient and a path pattern per modality.

A pattern is relative to the image root and may name any CSV column in braces (``{id}/cbf.nii.gz``,
``{site}/{id}_CTA.nii``) and use glob wildcards (``{id}/*Tmax*.nii.gz``); it must match exactly one file.
Label columns go through the spelling tables of strokedata.importers.normalise; a value they cannot map
is reported for its patient and field and the label is left unset. The remaining columns become clinical
fields (snake_case keys), unless a list of clinical columns is given.
"""

from __future__ import annotations

import csv
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strokedata.importers.nifti import nifti_stem
from strokedata.importers.normalise import (
    LabelNormaliser,
    UnknownSpelling,
    clinical_key,
    clinical_value,
)
from strokedata.importers.report import (
    ImporterError,
    ImportOptions,
    ImportReport,
    LabelProblem,
    PatientSource,
    Scan,
    checked_clinical,
)
from strokedata.importers.writer import in_modality_order, run_import, source_relative
from strokedata.manifest import MTICI, ClinicalValue, Labels, Modality, OcclusionLocation, OcclusionSide

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class TableColumns:
    """Which CSV columns hold what: the id, the labels (None: not given), the site and the clinical fields
    (None: every column not used otherwise)."""

    id: str = "id"
    occlusion_location: str | None = None
    occlusion_side: str | None = None
    mtici: str | None = None
    site: str | None = None
    clinical: Sequence[str] | None = None


@dataclass(frozen=True)
class _Table:
    """A CSV read whole: its columns and its rows, each with its line number."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Return the columns and the (line number, row) pairs of a CSV (delimiter ',', ';' or tab).

    Raises ImporterError when the file cannot be read, is empty or names a column twice.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImporterError(f"cannot read {path}: {error}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ImporterError(f"{path} is empty; give a CSV with a header row and one row per patient")
    header = lines[0]
    delimiter = "\t" if "\t" in header else ";" if header.count(";") > header.count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    columns = [name.strip() for name in next(reader)]
    doubled = sorted({name for name in columns if columns.count(name) > 1})
    if doubled:
        raise ImporterError(f"{path} names the column(s) {', '.join(doubled)} twice; keep one")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        rows.append((line, {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(columns)}))
    return columns, rows


def _placeholders(pattern: str) -> list[str]:
    """Return the column names a pattern refers to in braces."""
    return [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]


def _check_columns(table: _Table, columns: TableColumns, patterns: Mapping[Modality, str]) -> None:
    """Raise ImporterError naming a column or a pattern placeholder the CSV lacks, or a bad pattern."""
    known = set(table.columns)
    named = [columns.id, columns.occlusion_location, columns.occlusion_side, columns.mtici, columns.site]
    for name in [*(n for n in named if n is not None), *(columns.clinical or [])]:
        if name not in known:
            raise ImporterError(f"{table.path} has no column '{name}' (it has: {', '.join(table.columns)})")
    for modality, pattern in patterns.items():
        if Path(pattern).is_absolute():
            raise ImporterError(
                f"the {modality.value} pattern '{pattern}' is absolute; give it relative to --root"
            )
        try:
            missing = [name for name in _placeholders(pattern) if name not in known]
        except ValueError as error:
            raise ImporterError(f"the {modality.value} pattern '{pattern}' is malformed: {error}") from None
        if missing or "" in _placeholders(pattern):
            raise ImporterError(
                f"the {modality.value} pattern '{pattern}' refers to {', '.join(missing) or '{}'}, not a "
                f"column of {table.path.name} ({', '.join(table.columns)})"
            )


def _image(patient: PatientSource, modality: Modality, pattern: str, row: dict[str, str], root: Path) -> None:
    """Record the file a modality's pattern names for this row, or why there is none."""
    relative = pattern.format_map({name: value.strip() for name, value in row.items()})
    if _GLOB & set(relative):
        try:
            matches = sorted(path for path in root.glob(relative) if path.is_file())
        except ValueError as error:  # a pattern pathlib refuses (empty, absolute after substitution)
            patient.problems.append((relative, f"the {modality.value} pattern gives {relative!r}: {error}"))
            return
    else:
        matches = [root / relative] if (root / relative).is_file() else []
    if not matches:
        patient.notes.append(f"no {modality.value}: nothing matches {relative}")
        return
    if len(matches) > 1:
        shown = ", ".join(source_relative(path, root) for path in matches[:3])
        patient.problems.append(
            (relative, f"{len(matches)} files match the {modality.value} pattern: {shown}")
        )
        return
    path = matches[0]
    if not path.resolve().is_relative_to(root) or ".." in Path(relative).parts:
        patient.problems.append((relative, f"{modality.value} {relative} lies outside --root {root}"))
    elif nifti_stem(path) is None:
        patient.problems.append((relative, f"{modality.value} {relative} is not a .nii or .nii.gz file"))
    else:
        patient.images[modality] = path
        patient.original_ids[modality.value] = source_relative(path, root)


def _labels(
    patient: PatientSource, row: dict[str, str], columns: TableColumns, normaliser: LabelNormaliser
) -> Labels:
    """Return a row's labels; values the spelling tables cannot map are recorded and left unset."""
    location: OcclusionLocation | None = None
    side: OcclusionSide | None = None
    mtici: MTICI | None = None
    problems = patient.unmapped
    if columns.occlusion_location is not None:
        text = row[columns.occlusion_location]
        try:
            location, side = normaliser.occlusion(text)
        except UnknownSpelling:
            problems.append(LabelProblem(patient.patient_id, "occlusion_location", text))
    if columns.occlusion_side is not None:
        text = row[columns.occlusion_side]
        try:
            stated = normaliser.side(text)
        except UnknownSpelling:
            problems.append(LabelProblem(patient.patient_id, "occlusion_side", text))
        else:
            if stated is not None and side is not None and stated != side:
                patient.notes.append(
                    f"the occlusion names side {side}, the side column {stated}: {stated} kept"
                )
            side = stated if stated is not None else side
    if columns.mtici is not None:
        text = row[columns.mtici]
        try:
            mtici = normaliser.mtici(text)
        except UnknownSpelling:
            problems.append(LabelProblem(patient.patient_id, "mtici", text))
    return Labels(occlusion_location=location, occlusion_side=side, mtici=mtici)


def _clinical(
    patient: PatientSource, row: dict[str, str], names: Sequence[str], normaliser: LabelNormaliser
) -> None:
    """Fill a patient's clinical fields from the named columns (snake_case keys)."""
    values: dict[str, ClinicalValue] = {}
    for name in names:
        key = clinical_key(name)
        value: ClinicalValue = clinical_value(row[name])
        if key == "sex" and isinstance(value, str):
            try:
                value = normaliser.sex(value)
            except UnknownSpelling:
                patient.unmapped.append(LabelProblem(patient.patient_id, "sex", row[name]))
                value = None
        values[key] = value
    kept, warnings = checked_clinical(values)
    patient.clinical.update(kept)
    patient.notes.extend(warnings)


def _default_columns(columns: TableColumns, present: list[str]) -> TableColumns:
    """Return ``columns`` with unset label and site columns taken from same-named CSV columns."""
    defaults = {
        "occlusion_location": columns.occlusion_location,
        "occlusion_side": columns.occlusion_side,
        "mtici": columns.mtici,
        "site": columns.site,
    }
    chosen = {
        name: given if given is not None else (name if name in present else None)
        for name, given in defaults.items()
    }
    return TableColumns(columns.id, clinical=columns.clinical, **chosen)


def scan_table(
    labels_csv: str | Path,
    root: str | Path,
    patterns: Mapping[Modality, str],
    *,
    columns: TableColumns | None = None,
    normaliser: LabelNormaliser | None = None,
) -> Scan:
    """Return the patients of a CSV (one row each) whose images ``patterns`` find below ``root``.

    Label and site columns default to CSV columns named ``occlusion_location``, ``occlusion_side``,
    ``mtici`` and ``site``. Raises ImporterError when the CSV, a column, a pattern or ``root`` is unusable.
    """
    table_path = Path(labels_csv)
    image_root = Path(root)
    if not image_root.is_dir():
        raise ImporterError(f"--root {image_root} is not a folder; give the folder the patterns start from")
    image_root = image_root.resolve()
    if not patterns:
        raise ImporterError("give at least one pattern, e.g. --column CBF={id}/cbf.nii.gz")
    names, rows = read_table(table_path)
    table = _Table(table_path, names, rows)
    chosen = _default_columns(columns or TableColumns(), names)
    _check_columns(table, chosen, patterns)
    used = {chosen.id, chosen.occlusion_location, chosen.occlusion_side, chosen.mtici, chosen.site}
    clinical = list(chosen.clinical) if chosen.clinical is not None else [n for n in names if n not in used]
    keys = [clinical_key(name) for name in clinical]
    doubled = sorted({key for key in keys if keys.count(key) > 1})
    if doubled:
        raise ImporterError(
            f"several clinical columns become the key(s) {', '.join(doubled)}; pick them with --clinical"
        )
    scan = Scan(
        "table",
        f"table {table_path.name}",
        "table-import",
        f"Imported by strokebench from {table_path.name}, images found below the image root by the patterns "
        + ", ".join(f"{modality.value}={pattern}" for modality, pattern in in_modality_order(dict(patterns))),
        "unspecified",
    )
    normalise = normaliser or LabelNormaliser()
    for line, row in rows:
        patient_id = row[chosen.id].strip()
        where = f"{table_path.name} line {line}"
        patient = PatientSource(patient_id=patient_id, folder=where, original_ids={"row": where})
        if not patient_id:
            patient.patient_id = f"line-{line}"
            patient.problems.append((None, f"{where} has no id in column '{chosen.id}'"))
            scan.patients.append(patient)
            continue
        for modality, pattern in in_modality_order(dict(patterns)):
            _image(patient, modality, pattern, row, image_root)
        patient.labels = _labels(patient, row, chosen, normalise)
        if chosen.site is not None:
            patient.site = row[chosen.site].strip() or None
        _clinical(patient, row, clinical, normalise)
        scan.patients.append(patient)
    if not scan.patients:
        raise ImporterError(f"{table_path} holds a header but no patient rows")
    return scan


def import_table(
    labels_csv: str | Path,
    root: str | Path,
    out: str | Path,
    patterns: Mapping[Modality, str],
    options: ImportOptions | None = None,
    *,
    columns: TableColumns | None = None,
    normaliser: LabelNormaliser | None = None,
) -> ImportReport:
    """Return the report of importing the patients of ``labels_csv`` (images below ``root``) into ``out``.

    Raises ImporterError when the CSV, a column, a pattern, ``root`` or ``out`` cannot be used.
    """
    scan = scan_table(labels_csv, root, patterns, columns=columns, normaliser=normaliser)
    return run_import(scan, root, out, options or ImportOptions())
