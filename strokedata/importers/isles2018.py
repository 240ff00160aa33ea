"""The ISLES 2018 layout (SMIR export): ``TRAINING/case_N/`` and ``TESTING/case_N/``, each series in a
folder ``SMIR.Brain.XX.O.<MOD>.<series id>/`` holding one ``.nii`` of the same stem.

MOD -> modality: CT -> NCCT, CT_4DPWI -> CTP, CT_CBF -> CBF, CT_CBV -> CBV, CT_MTT -> MTT, CT_Tmax -> TMAX,
OT -> CORE (the infarct core traced on DWI; absent from TESTING). Patient ids are ``train_case_N`` and
``test_case_N`` (the two folders number their cases independently). A CTP stored as (x, y, z, 1, t) is
written as a 4D copy (see docs/importers.md). Some patients were scanned as two slabs, each a case: a slab
map (CSV with columns ``case`` and ``patient``) records ``clinical.scan_group`` so that
``strokedata split --group-by scan_group`` keeps a patient's slabs in one partition.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from strokedata.importers.nifti import nifti_files, nifti_stem, subfolders
from strokedata.importers.report import ImporterError, ImportOptions, ImportReport, PatientSource, Scan
from strokedata.importers.writer import run_import, source_relative
from strokedata.manifest import Modality

SERIES: dict[str, Modality] = {
    "CT": Modality.NCCT,
    "CT_4DPWI": Modality.CTP,
    "CT_CBF": Modality.CBF,
    "CT_CBV": Modality.CBV,
    "CT_MTT": Modality.MTT,
    "CT_TMAX": Modality.TMAX,
    "OT": Modality.CORE,
}
"""SMIR series kind (upper case) -> modality."""

SPLITS = {"TRAINING": "train", "TESTING": "test"}
"""Top-level folder (compared case-insensitively) -> prefix of the patient ids."""

SCAN_GROUP = "scan_group"
"""The clinical field a slab map fills: the patient a case (slab) belongs to."""

_SERIES_FOLDER = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<kind>[A-Za-z0-9_]+)\.(?P<series>\d+)$")
_CASE_FOLDER = re.compile(r"^case_(?P<number>\d+)$")

DESCRIPTION = (
    "ISLES 2018 (CT perfusion, SMIR export) imported by strokebench: CT -> NCCT, CT_4DPWI -> CTP (4D; a "
    "(x, y, z, 1, t) file is stored as a 4D copy), CT_CBF/CBV/MTT/Tmax -> CBF/CBV/MTT/TMAX, OT -> CORE "
    "(training cases only). Ids train_case_N and test_case_N; provenance.original_ids names each SMIR series."
)


def _case(folder: Path, prefix: str, root: Path) -> PatientSource:
    """Return the patient of one case folder."""
    patient_id = f"{prefix}_{folder.name}" if prefix else folder.name
    relative = source_relative(folder, root)
    patient = PatientSource(patient_id=patient_id, folder=relative, original_ids={"case": relative})
    ignored = []
    for series in subfolders(folder):
        match = _SERIES_FOLDER.match(series.name)
        kind = match.group("kind").upper() if match else None
        if match is None or kind not in SERIES:
            ignored.append(series.name)
            continue
        modality = SERIES[kind]
        files = nifti_files(series)
        same_stem = [path for path in files if nifti_stem(path) == series.name]
        chosen = same_stem or files
        if len(chosen) != 1:
            reason = "holds no .nii file" if not chosen else f"holds {len(chosen)} .nii files; keep one"
            patient.problems.append((source_relative(series, root), f"series {series.name} {reason}"))
            continue
        if modality in patient.images:
            patient.problems.append(
                (source_relative(series, root), f"two {kind} series ({series.name}); keep one")
            )
            continue
        patient.images[modality] = chosen[0]
        patient.original_ids[modality.value] = series.name
    expected = [
        kind for kind, modality in SERIES.items() if not (modality is Modality.CORE and prefix == "test")
    ]
    missing = [kind for kind in expected if SERIES[kind] not in patient.images]
    if missing:
        patient.notes.append(f"no {', '.join(missing)} series")
    if ignored:
        patient.notes.append(f"folders that are not ISLES 2018 series were ignored: {', '.join(ignored)}")
    return patient


def _case_folders(folder: Path) -> list[Path]:
    """Return the ``case_N`` folders of ``folder`` in case-number order."""
    cases = [path for path in subfolders(folder) if _CASE_FOLDER.match(path.name)]
    return sorted(cases, key=lambda path: int(path.name.split("_")[1]))


def read_slab_map(path: Path) -> dict[str, str]:
    """Return {case: patient} from a slab-map CSV with columns ``case`` and ``patient``.

    ``case`` is an imported id (``train_case_5``) or a case folder relative to the source
    (``TRAINING/case_5``). Raises ImporterError when the file cannot be read, lacks a column, leaves a
    value empty or maps one case twice to different patients.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImporterError(f"cannot read the slab map {path}: {error}") from None
    rows = csv.DictReader(text.splitlines())
    columns = {name.strip().lower(): name for name in rows.fieldnames or []}
    if "case" not in columns or "patient" not in columns:
        raise ImporterError(
            f"the slab map {path} needs the columns 'case' and 'patient' (it has: {', '.join(columns)})"
        )
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        case = (row.get(columns["case"]) or "").strip()
        patient = (row.get(columns["patient"]) or "").strip()
        if not case or not patient:
            raise ImporterError(f"{path}, line {line}: give both a case and a patient")
        if mapping.get(case, patient) != patient:
            raise ImporterError(
                f"{path}, line {line}: case {case} is mapped to {mapping[case]} and {patient}"
            )
        mapping[case] = patient
    return mapping


def _apply_slab_map(scan: Scan, mapping: dict[str, str]) -> None:
    """Set ``clinical.scan_group`` of every case: its mapped patient, or its own id when unmapped."""
    used = set()
    for patient in scan.patients:
        for key in (patient.patient_id, patient.folder):
            if key in mapping:
                used.add(key)
                patient.clinical[SCAN_GROUP] = mapping[key]
                break
        else:
            patient.clinical[SCAN_GROUP] = patient.patient_id
    unknown = sorted(set(mapping) - used)
    if unknown:
        scan.notes.append(f"the slab map names cases the source lacks: {', '.join(unknown)}")


def scan_isles2018(src: str | Path, *, slab_map: str | Path | None = None) -> Scan:
    """Return the cases of an ISLES 2018 layout: ``TRAINING/`` and ``TESTING/`` in ``src`` (or the
    ``case_N`` folders of ``src`` itself), with ``clinical.scan_group`` from ``slab_map`` when given.

    Raises ImporterError when ``src`` holds no case folder or the slab map is unusable.
    """
    root = Path(src)
    if not root.is_dir():
        raise ImporterError(f"{root} is not a folder; give the folder holding TRAINING/ and TESTING/")
    root = root.resolve()
    scan = Scan("isles2018", "ISLES 2018 (SMIR)", "isles2018", DESCRIPTION, "ISLES-2018-terms-of-use")
    splits = {folder.name.upper(): folder for folder in subfolders(root) if folder.name.upper() in SPLITS}
    for name, folder in sorted(splits.items(), key=lambda item: list(SPLITS).index(item[0])):
        scan.patients.extend(_case(case, SPLITS[name], root) for case in _case_folders(folder))
    if not splits:
        scan.patients.extend(_case(case, "", root) for case in _case_folders(root))
    if not scan.patients:
        raise ImporterError(
            f"{root} holds no TRAINING/ or TESTING/ folder with case_N folders (nor case_N folders itself): "
            "is this the ISLES 2018 layout?"
        )
    if slab_map is not None:
        _apply_slab_map(scan, read_slab_map(Path(slab_map)))
    return scan


def import_isles2018(
    src: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
    *,
    slab_map: str | Path | None = None,
) -> ImportReport:
    """Return the report of importing an ISLES 2018 layout from ``src`` into the canonical dataset ``out``.

    Raises ImporterError when the source, the slab map or ``out`` cannot be used.
    """
    return run_import(scan_isles2018(src, slab_map=slab_map), src, out, options or ImportOptions())
