"""The AMI mCTA layout (003_fd89cded39931ac3.txt): one folder per patient holding CTA1, CTA2regA, CTA3regA,
``<id>_clot``, ATLASMASKregA and SpiralregA, each ``.nii`` or ``.nii.gz``.

CTA1 is the unregistered first phase; CTA2regA and CTA3regA are registered to each other and to the atlas,
clot and SPIRAL files ("regA"), and 003 feeds the first registered scan (MCTA2) to its models. Every
patient's ``provenance.original_ids`` says which file each modality came from and whether it is registered.
CTA1 is imported as MCTA1 only when its header geometry (shape and affine) equals the registered group's;
otherwise it is left out with a warning, since the canonical layout requires MCTA1-3 to share one grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strokedata.importers.nifti import nifti_files, nifti_stem, subfolders
from strokedata.importers.report import ImporterError, ImportOptions, ImportReport, PatientSource, Scan
from strokedata.importers.writer import run_import, source_relative
from strokedata.io import ImageReadError, read_header
from strokedata.manifest import Modality
from strokedata.validation.report import ValidationConfig

AMI_FILES: dict[str, Modality] = {
    "cta1": Modality.MCTA1,
    "cta2rega": Modality.MCTA2,
    "cta3rega": Modality.MCTA3,
    "atlasmaskrega": Modality.ATLAS,
    "spiralrega": Modality.SPIRAL,
}
"""File stem (compared case-insensitively) -> modality; the clot file is ``<id>_clot``."""

CLOT_SUFFIX = "_clot"
REGISTERED = (Modality.MCTA2, Modality.MCTA3, Modality.ATLAS, Modality.CLOT, Modality.SPIRAL)
"""The modalities of the registered ("regA") group, in the order used as the geometry reference."""
SOURCE_NAMES = {
    Modality.MCTA1: "CTA1",
    Modality.MCTA2: "CTA2regA",
    Modality.MCTA3: "CTA3regA",
    Modality.ATLAS: "ATLASMASKregA",
    Modality.SPIRAL: "SpiralregA",
    Modality.CLOT: "<id>_clot",
}

DESCRIPTION = (
    "AMI multiphase CTA folders (the AMI-Net report) imported by strokebench. MCTA1 is CTA1, the "
    "unregistered first phase (imported only where its grid equals the registered group's); MCTA2 and MCTA3 "
    "are CTA2regA and CTA3regA, registered to ATLAS (ATLASMASKregA, values 0..14), CLOT (<id>_clot: 0, 1 and "
    "2, both clot) and SPIRAL (SpiralregA, [0, 1]); MCTA2 is the input the AMI-Net report's models use. Clot "
    "regions are derived from CLOT x ATLAS (strokedata.labels), not stored."
)


def _modality_of(path: Path) -> Modality | None:
    """Return the modality an AMI file name stands for, or None for other files."""
    stem = (nifti_stem(path) or "").lower()
    if stem in AMI_FILES:
        return AMI_FILES[stem]
    if stem.endswith(CLOT_SUFFIX) and len(stem) > len(CLOT_SUFFIX):
        return Modality.CLOT
    return None


def _check_cta1(patient: PatientSource, root: Path) -> None:
    """Leave CTA1 out of ``patient`` (with a warning) when its grid differs from the registered group's."""
    if Modality.MCTA1 not in patient.images:
        return
    reference = next((m for m in REGISTERED if m in patient.images), None)
    if reference is None:
        return
    try:
        cta1 = read_header(patient.images[Modality.MCTA1])
        other = read_header(patient.images[reference])
    except ImageReadError:
        return  # reported by the header checks of the import
    tolerance = ValidationConfig().affine_tolerance
    same_grid = cta1.shape[:3] == other.shape[:3] and bool(
        np.max(np.abs(cta1.affine - other.affine)) <= tolerance
    )
    if same_grid:
        return
    path = patient.images.pop(Modality.MCTA1)
    relpath = source_relative(path, root)
    patient.original_ids.pop(Modality.MCTA1.value, None)
    patient.original_ids["CTA1"] = (
        f"{relpath} (unregistered; not imported: its grid differs from the registered group)"
    )
    patient.notes.append(
        f"CTA1 grid {cta1.shape[:3]} differs from {SOURCE_NAMES[reference]}'s {other.shape[:3]} (shape or "
        "affine): CTA1 is unregistered, MCTA1 left out"
    )


def _patient(folder: Path, root: Path) -> PatientSource | None:
    """Return the patient an AMI folder holds, or None when it holds no AMI file."""
    found: dict[Modality, list[Path]] = {}
    ignored = []
    for path in nifti_files(folder):
        modality = _modality_of(path)
        if modality is None:
            ignored.append(path.name)
        else:
            found.setdefault(modality, []).append(path)
    if not found:
        return None
    patient = PatientSource(patient_id=folder.name, folder=folder.name, original_ids={"patient": folder.name})
    for modality in [m for m in Modality if m in found]:
        paths = found[modality]
        if len(paths) > 1:
            names = " and ".join(path.name for path in paths)
            patient.problems.append(
                (source_relative(paths[0], root), f"{names} are both {modality.value}; keep one")
            )
            continue
        patient.images[modality] = paths[0]
        state = "unregistered" if modality is Modality.MCTA1 else "registered"
        patient.original_ids[modality.value] = f"{source_relative(paths[0], root)} ({state})"
    clot = patient.images.get(Modality.CLOT)
    if clot is not None and (nifti_stem(clot) or "").lower() != f"{folder.name}{CLOT_SUFFIX}".lower():
        patient.notes.append(f"the clot file is {clot.name}, not {folder.name}{CLOT_SUFFIX}.nii")
    missing = [SOURCE_NAMES[m] for m in SOURCE_NAMES if m not in found]
    if missing:
        patient.notes.append(f"no {', '.join(missing)} file")
    if ignored:
        patient.notes.append(f"files that are not part of the AMI layout were ignored: {', '.join(ignored)}")
    _check_cta1(patient, root)
    return patient


def scan_ami(src: str | Path) -> Scan:
    """Return the patients of an AMI layout: every folder in ``src`` holding at least one AMI file.

    Raises ImporterError when ``src`` is not a folder or no folder in it holds an AMI file.
    """
    root = Path(src)
    if not root.is_dir():
        raise ImporterError(f"{root} is not a folder; give the folder holding one folder per patient")
    root = root.resolve()
    scan = Scan("ami", "AMI mCTA folders (the AMI-Net report)", "ami-mcta", DESCRIPTION, "unspecified")
    for folder in subfolders(root):
        patient = _patient(folder, root)
        if patient is None:
            scan.notes.append(f"{folder.name}/ holds no AMI file (CTA1, CTA2regA, ...): skipped")
        else:
            scan.patients.append(patient)
    if not scan.patients:
        raise ImporterError(
            f"no folder in {root} holds AMI files (CTA1.nii, CTA2regA.nii, CTA3regA.nii, <id>_clot.nii, "
            "ATLASMASKregA.nii, SpiralregA.nii): is this the AMI layout?"
        )
    return scan


def import_ami(src: str | Path, out: str | Path, options: ImportOptions | None = None) -> ImportReport:
    """Return the report of importing an AMI layout from ``src`` into the canonical dataset ``out``.

    Raises ImporterError when the source or ``out`` cannot be used; docs/importers.md describes the
    mapping.
    """
    return run_import(scan_ami(src), src, out, options or ImportOptions())
