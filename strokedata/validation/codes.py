"""The stable finding codes of ``strokedata validate``: one entry per check, documented in docs/validation.md.

Codes never change meaning once released; a retired check keeps its code reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Code:
    """A check's stable code, short name, default severity and the fix a user should apply."""

    code: str
    name: str
    severity: Severity
    fix: str


_ALL = (
    # manifests
    Code("M001", "card-missing", "error", "create <root>/dataset.json (see docs/dataset-format.md)"),
    Code("M002", "json-invalid", "error", "fix the JSON syntax at the position given"),
    Code("M003", "schema-invalid", "error", "correct the field named; unknown fields are not allowed"),
    Code("M004", "id-mismatch", "error", "make patient_id equal the folder name, or rename the folder"),
    Code("M005", "id-duplicate", "error", "give every patient a distinct id (case-insensitively)"),
    Code(
        "M006", "manifest-missing", "error", "add a patient.json, or move the folder out of the dataset root"
    ),
    Code("M007", "modality-missing", "warning", "add the image, or drop the modality from dataset.json"),
    Code("M008", "modality-unexpected", "warning", "list the modality in dataset.json 'modalities'"),
    Code(
        "M009", "dataset-empty", "error", "point the command at the dataset root that holds patient folders"
    ),
    Code(
        "M010",
        "folder-hidden",
        "warning",
        "hidden folders are not read as patients; drop the leading dot if the folder holds one",
    ),
    # files
    Code("F001", "file-missing", "error", "restore the file, or correct its path in patient.json"),
    Code("F002", "nifti-corrupt", "error", "re-export the image from its source; the file cannot be read"),
    Code("F003", "nifti-truncated", "error", "copy the file again from its source; it ends too early"),
    Code("F004", "file-unreferenced", "warning", "reference the image in patient.json, or move it out"),
    Code(
        "F005",
        "path-outside-root",
        "error",
        "use a relative path inside the patient folder; copy files instead of linking out of the root",
    ),
    Code(
        "F006",
        "nifti-pair-ambiguous",
        "error",
        "delete or rename the copy patient.json does not name (SimpleITK and TorchIO read the .nii)",
    ),
    Code(
        "F007",
        "nifti-trailing-data",
        "error",
        "re-export the image from its source; the file holds more data than its header declares",
    ),
    Code(
        "F008",
        "not-a-file",
        "error",
        "point patient.json at a regular NIfTI file; folders, devices, pipes and sockets are not images",
    ),
    Code(
        "F009",
        "unreadable",
        "error",
        "give the user running strokedata read access (chmod/chown), or move it out of the dataset",
    ),
    # geometry
    Code("G001", "dimensionality", "error", "CTP must be 4D (x, y, z, time) and every other modality 3D"),
    Code("G002", "shape-mismatch", "error", "resample the image onto its co-registered group's grid"),
    Code(
        "G003",
        "affine-mismatch",
        "error",
        "register or resample the image; raise --affine-tolerance only if the difference is rounding",
    ),
    Code("G004", "spacing-invalid", "error", "fix pixdim in the header (positive, finite voxel sizes in mm)"),
    Code("G005", "affine-singular", "error", "fix the sform/qform in the header; it cannot map voxels to mm"),
    Code("G006", "too-many-voxels", "error", "check the header's dimensions, or raise --max-voxels"),
    Code(
        "G007",
        "readers-disagree",
        "error",
        "re-export the image with scl_slope 1 (or the intended slope), an sform without shear and a qform "
        "equal to it (nibabel: header.set_sform(affine, 1); header.set_qform(affine, 1))",
    ),
    # values
    Code("V001", "non-finite", "error", "replace NaN/Inf voxels (for example with the background value)"),
    Code("V002", "hu-range", "error", "check the rescale slope/intercept; CT must be in Hounsfield units"),
    Code("V003", "spiral-range", "error", "SPIRAL is a probability map: rescale it to [0, 1]"),
    Code("V004", "atlas-values", "error", "ATLAS must hold integers 0..14 (nearest-neighbour resampling)"),
    Code("V005", "clot-values", "error", "CLOT must hold 0 (background), 1 (clot body) or 2 (clot border)"),
    Code(
        "V006",
        "mask-not-binary",
        "error",
        "store the mask as 0/1 (threshold it, nearest-neighbour resampling)",
    ),
    Code(
        "V007", "perfusion-negative", "error", "perfusion parameters cannot be negative; check the map export"
    ),
    Code(
        "V008",
        "perfusion-implausible",
        "warning",
        "check the map's units; raise the bound with --perfusion-max if they are right",
    ),
    Code("V009", "all-zero", "error", "the image holds no data; re-export it"),
    # labels
    Code("L001", "side-missing", "warning", "set labels.occlusion_side to L or R"),
    Code(
        "L002", "label-vocabulary", "error", "use a value of the label's vocabulary (docs/dataset-format.md)"
    ),
    Code("L003", "clot-empty", "error", "check the CLOT mask, or the occlusion label"),
    Code(
        "L004",
        "regions-disagree",
        "error",
        "fix labels.regions or the CLOT/ATLAS images, or drop labels.regions",
    ),
    # splits (validate --split)
    Code("S001", "split-unknown-id", "error", "remove the id from the split, or restore the patient"),
    Code("S002", "split-duplicate", "error", "keep the patient in one partition only; remake the split"),
    Code("S003", "split-unassigned", "warning", "place new patients with `strokedata split --extend`"),
    Code(
        "S004",
        "split-dataset-changed",
        "warning",
        "the manifests changed since the split; check the change, or remake or extend the split",
    ),
    Code(
        "S005", "split-invalid", "error", "remake the split with `strokedata split`; do not edit it by hand"
    ),
    Code(
        "S006",
        "split-fold-inconsistent",
        "error",
        "every fold must train on all other folds' validation patients; remake the split",
    ),
    # leakage
    Code("K001", "duplicate-content", "error", "the same scan belongs to one patient only; remove the copy"),
)

CODES: dict[str, Code] = {entry.code: entry for entry in _ALL}
"""Every finding code, keyed by code."""
