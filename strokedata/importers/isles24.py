"""The ISLES'24 layout (BIDS): ``raw_data/`` (or ``rawdata/``), ``derivatives/`` and ``phenotype/``, one
``sub-<label>`` folder per patient with an acute session (``ses-01`` or ``ses-0001``) and a follow-up
session (``ses-02`` or ``ses-0002``).

With ``space="ncct"`` (the default) every image is in the patient's NCCT space: NCCT from ``raw_data``,
CTA, CTP and the perfusion maps from ``derivatives`` (``*_space-ncct_*``), and the follow-up lesion mask
(``*_lesion-msk``, traced on DWI days later: the final infarct, not the acute core) as CORE unless
``lesion_as_core`` is False. With ``space="native"`` the acquired NCCT, CTA, CTP and maps of ``raw_data``
are imported and no CORE (the lesion mask lies in NCCT space). The LVO and circle-of-Willis masks have
no canonical modality: their paths go to ``provenance.original_ids``, the images are not imported;
neither is the follow-up MRI (DWI, ADC). Per-subject phenotype tables (CSV or TSV; XLSX when openpyxl is
installed) become clinical fields. docs/importers.md lists what was confirmed and what assumed.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from typing import Literal

from strokedata.importers.nifti import subfolders
from strokedata.importers.normalise import (
    LabelNormaliser,
    UnknownSpelling,
    clinical_key,
    clinical_value,
    spelling_key,
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
from strokedata.importers.writer import run_import, source_relative
from strokedata.manifest import ClinicalValue, Labels, Modality

Space = Literal["ncct", "native"]

RAW_FOLDERS = ("raw_data", "rawdata")
"""The released archive names it raw_data; the challenge's README rawdata. Either is accepted."""

PERFUSION_MAPS: dict[str, Modality] = {
    "tmax": Modality.TMAX,
    "mtt": Modality.MTT,
    "cbf": Modality.CBF,
    "cbv": Modality.CBV,
}
VESSEL_MASKS = ("lvo-msk", "cow-msk")

PHENOTYPE_COLUMNS: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "nihss at admission": "nihss",
    "mrs at admission": "mrs_admission",
    "mrs 3 months": "mrs_90d",
}
"""spelling_key(column) -> clinical key, for the columns whose meaning is known; others are snake_cased."""
MTICI_COLUMNS = frozenset({"tici", "mtici", "tici score", "mtici score", "etici"})
"""Columns (spelling_key) read as labels.mtici."""

_ACUTE = re.compile(r"^ses-0*1$")
_FOLLOW_UP = re.compile(r"^ses-0*2$")
_TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")

DESCRIPTION = (
    "ISLES'24 (BIDS) imported by strokebench, {space} space. Patient ids are the BIDS subject labels. "
    "{core}LVO and circle-of-Willis masks are named in provenance.original_ids, not imported; the "
    "follow-up MRI is not imported; phenotype tables are clinical fields."
)


def _session(subject: Path | None, pattern: re.Pattern[str]) -> Path | None:
    """Return the session folder of ``subject`` matching ``pattern`` (acute or follow-up), if any."""
    if subject is None or not subject.is_dir():
        return None
    return next((folder for folder in subfolders(subject) if pattern.match(folder.name)), None)


def _find(folder: Path | None, subject: str, kind: str, space: bool | None) -> list[Path]:
    """Return the files ``<subject>_ses-<n>_[space-ncct_]<kind>.nii[.gz]`` in ``folder``.

    ``space`` True requires the ``space-ncct`` entity, False forbids it, None accepts either.
    """
    if folder is None or not folder.is_dir():
        return []
    pattern = re.compile(
        rf"^{re.escape(subject)}_ses-\d+_(?P<space>space-ncct_)?{re.escape(kind)}\.nii(\.gz)?$", re.IGNORECASE
    )
    found = []
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match and path.is_file() and (space is None or bool(match.group("space")) == space):
            found.append(path)
    return found


def _place(patient: PatientSource, modality: Modality, files: list[Path], root: Path, expected: str) -> None:
    """Record the one file found for ``modality``, a problem when there are several, a note when none."""
    if len(files) > 1:
        names = " and ".join(path.name for path in files)
        patient.problems.append((source_relative(files[0], root), f"{names} are both {modality.value}"))
    elif files:
        patient.images[modality] = files[0]
        patient.original_ids[modality.value] = source_relative(files[0], root)
    else:
        patient.notes.append(f"no {modality.value} ({expected})")


def _table_rows(path: Path) -> list[dict[str, str]]:
    """Return the rows of a CSV, TSV or XLSX phenotype table as {column: text}."""
    if path.suffix.lower() == ".xlsx":
        import pandas as pd

        frame = pd.read_excel(path, dtype=object)
        return [
            {str(column): "" if value is None else str(value) for column, value in row.items()}
            for row in frame.to_dict(orient="records")
        ]
    text = path.read_text(encoding="utf-8-sig")
    delimiter = (
        "\t" if path.suffix.lower() == ".tsv" else ";" if text.split("\n", 1)[0].count(";") > 0 else ","
    )
    return [
        {key: value for key, value in row.items() if isinstance(key, str) and isinstance(value, str)}
        for row in csv.DictReader(text.splitlines(), delimiter=delimiter)
    ]


def _phenotype(patient: PatientSource, tables: list[Path], root: Path, normaliser: LabelNormaliser) -> None:
    """Fill a patient's clinical fields (and mTICI) from its phenotype tables' first row."""
    clinical: dict[str, ClinicalValue] = {}
    mtici = None
    for path in tables:
        try:
            rows = _table_rows(path)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            patient.notes.append(f"phenotype table {source_relative(path, root)} cannot be read: {error}")
            continue
        if not rows:
            continue
        for column, text in rows[0].items():
            key = spelling_key(column)
            if key in MTICI_COLUMNS:
                try:
                    mtici = normaliser.mtici(text)
                except UnknownSpelling:
                    patient.unmapped.append(LabelProblem(patient.patient_id, "mtici", text))
                continue
            name = PHENOTYPE_COLUMNS.get(key, clinical_key(column))
            value: ClinicalValue = clinical_value(text)
            if name == "sex" and isinstance(value, str):
                try:
                    value = normaliser.sex(value)
                except UnknownSpelling:
                    patient.unmapped.append(LabelProblem(patient.patient_id, "sex", text))
                    value = None
            if name in clinical and clinical[name] != value:
                patient.notes.append(f"phenotype '{column}' differs between tables; the first value is kept")
                continue
            clinical[name] = value
    kept, warnings = checked_clinical(clinical)
    patient.clinical.update(kept)
    patient.notes.extend(warnings)
    if mtici is not None:
        patient.labels = Labels(mtici=mtici)


def _subject(
    name: str, raw: Path | None, derivatives: Path | None, root: Path, space: Space, lesion_as_core: bool
) -> PatientSource:
    """Return the patient of one BIDS subject."""
    patient = PatientSource(patient_id=name.removeprefix("sub-"), folder=name, original_ids={"subject": name})
    raw_acute = _session(raw / name if raw else None, _ACUTE)
    derived_acute = _session(derivatives / name if derivatives else None, _ACUTE)
    follow_up = _session(derivatives / name if derivatives else None, _FOLLOW_UP)
    _place(patient, Modality.NCCT, _find(raw_acute, name, "ncct", False), root, "raw acute *_ncct")
    acute, in_ncct = (derived_acute, True) if space == "ncct" else (raw_acute, False)
    where = "derivatives acute *_space-ncct_" if space == "ncct" else "raw acute *_"
    for kind, modality in (("cta", Modality.CTA), ("ctp", Modality.CTP)):
        _place(patient, modality, _find(acute, name, kind, in_ncct), root, f"{where}{kind}")
    maps = acute / "perfusion-maps" if acute is not None else None
    for kind, modality in PERFUSION_MAPS.items():
        _place(patient, modality, _find(maps, name, kind, in_ncct), root, f"{where}{kind} in perfusion-maps/")
    if space == "ncct" and lesion_as_core:
        _place(
            patient, Modality.CORE, _find(follow_up, name, "lesion-msk", None), root, "follow-up *_lesion-msk"
        )
    for kind in VESSEL_MASKS:
        masks = _find(derived_acute, name, kind, None)
        if masks:
            patient.original_ids[kind.replace("-", "_")] = source_relative(masks[0], root)
    return patient


def scan_isles24(
    src: str | Path,
    *,
    space: Space = "ncct",
    lesion_as_core: bool = True,
    normaliser: LabelNormaliser | None = None,
) -> Scan:
    """Return the subjects of an ISLES'24 BIDS layout in ``src``: every ``sub-*`` folder of ``raw_data``
    (or ``rawdata``) and ``derivatives``, with clinical fields from ``phenotype``.

    Raises ImporterError when ``src`` holds neither a raw-data nor a derivatives folder with subjects.
    """
    root = Path(src)
    if not root.is_dir():
        raise ImporterError(f"{root} is not a folder; give the folder holding raw_data/ and derivatives/")
    if space not in ("ncct", "native"):
        raise ImporterError(f"space '{space}': choose ncct or native")
    root = root.resolve()
    raw = next((root / name for name in RAW_FOLDERS if (root / name).is_dir()), None)
    derivatives = root / "derivatives" if (root / "derivatives").is_dir() else None
    subjects = sorted(
        {folder.name for base in (raw, derivatives) if base for folder in subfolders(base)}
        if raw or derivatives
        else set()
    )
    subjects = [name for name in subjects if name.startswith("sub-")]
    if not subjects:
        raise ImporterError(
            f"{root} holds no raw_data/ (or rawdata/) or derivatives/ folder with sub-* folders: is this the "
            "ISLES'24 BIDS layout?"
        )
    core = (
        "CORE is the follow-up (DWI) final-infarct lesion mask, not the acute core. "
        if space == "ncct" and lesion_as_core
        else "No CORE. "
    )
    scan = Scan(
        "isles24",
        "ISLES'24 (BIDS)",
        "isles24",
        DESCRIPTION.format(space="NCCT" if space == "ncct" else "native", core=core),
        "CC-BY-NC-SA-4.0",
    )
    scan.notes.append(
        "lvo-msk and cow-msk have no canonical modality: named in provenance.original_ids, not imported; "
        "the follow-up DWI and ADC are not imported"
    )
    if space == "native":
        scan.notes.append("native space: the lesion mask lies in NCCT space and is not imported as CORE")
    phenotype = root / "phenotype"
    tables = (
        sorted(p for p in phenotype.rglob("*") if p.suffix.lower() in _TABLE_SUFFIXES and p.is_file())
        if phenotype.is_dir()
        else []
    )
    if any(p.suffix.lower() == ".xlsx" for p in tables) and importlib.util.find_spec("openpyxl") is None:
        scan.notes.append("phenotype .xlsx tables need openpyxl (pip install openpyxl): they were not read")
        tables = [p for p in tables if p.suffix.lower() != ".xlsx"]
    chosen = normaliser or LabelNormaliser()
    for name in subjects:
        patient = _subject(name, raw, derivatives, root, space, lesion_as_core)
        _phenotype(patient, [p for p in tables if p.name.startswith(f"{name}_")], root, chosen)
        scan.patients.append(patient)
    return scan


def import_isles24(
    src: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
    *,
    space: Space = "ncct",
    lesion_as_core: bool = True,
) -> ImportReport:
    """Return the report of importing an ISLES'24 BIDS layout from ``src`` into the canonical dataset ``out``.

    Raises ImporterError when the source or ``out`` cannot be used.
    """
    scan = scan_isles24(src, space=space, lesion_as_core=lesion_as_core)
    return run_import(scan, src, out, options or ImportOptions())
