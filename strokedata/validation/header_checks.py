"""Geometry checks on NIfTI headers alone: no voxel data is read here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strokedata.io import ImageHeader, ImageReadError, read_header
from strokedata.manifest import CO_REGISTERED_GROUPS, Modality
from strokedata.validation.manifest_checks import ImageRef
from strokedata.validation.report import Finding, ValidationConfig, make_finding

_READ_ERROR_CODES = {
    "corrupt": "F002",
    "truncated": "F003",
    "too_large": "G006",
    "trailing": "F007",
    "not_a_file": "F008",
    "unreadable": "F009",
}
"""Finding code for each kind of ImageReadError."""


@dataclass(frozen=True)
class CheckedImage:
    """An image whose header could be read and whose voxels may be read."""

    ref: ImageRef
    header: ImageHeader


def read_error_finding(patient: str, ref: ImageRef, error: ImageReadError) -> Finding:
    """Return the finding that reports why an image could not be read."""
    return make_finding(_READ_ERROR_CODES[error.kind], patient, ref.relpath, f"{ref.modality.value}: {error}")


def effective_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return ``shape`` without trailing length-1 axes beyond the third (converters often add them)."""
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _geometry_findings(patient: str, ref: ImageRef, header: ImageHeader) -> list[Finding]:
    findings = []
    shape = effective_shape(header.shape)
    name = ref.modality.value
    if ref.modality is Modality.CTP:
        if len(shape) != 4 or shape[3] < 2:
            findings.append(
                make_finding(
                    "G001",
                    patient,
                    ref.relpath,
                    f"CTP has shape {header.shape}; it must be 4D with >= 2 frames",
                )
            )
    elif len(shape) != 3:
        findings.append(
            make_finding("G001", patient, ref.relpath, f"{name} has shape {header.shape}, not 3D")
        )
    spacing = np.asarray(header.pixdim[:3], dtype=np.float64)
    if spacing.size < 3 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        findings.append(
            make_finding(
                "G004", patient, ref.relpath, f"{name} has voxel spacing {header.pixdim[:3]} in pixdim"
            )
        )
        return findings  # a qform built from these spacings is singular too: report the cause only
    linear = header.affine[:3, :3]
    if not np.all(np.isfinite(header.affine)) or abs(float(np.linalg.det(linear))) < 1e-9:
        findings.append(
            make_finding(
                "G005",
                patient,
                ref.relpath,
                f"{name} has a singular or non-finite affine {header.affine.tolist()}",
            )
        )
    return findings


def _ambiguity_findings(patient: str, ref: ImageRef, header: ImageHeader, tolerance: float) -> list[Finding]:
    """Return G007 findings for header fields that nibabel and ITK/SimpleITK (TorchIO) read differently."""
    name = ref.modality.value
    findings = [make_finding("G007", patient, ref.relpath, f"{name}: {what}") for what in header.ambiguities]
    difference = header.qform_sform_difference
    if difference is not None and not difference <= tolerance:
        findings.append(
            make_finding(
                "G007",
                patient,
                ref.relpath,
                f"{name}: qform and sform differ by up to {difference:.4g} mm (tolerance {tolerance:g}); "
                "nibabel (and strokebench) use the sform, ITK/SimpleITK (and TorchIO) may use the qform",
            )
        )
    return findings


def _group_findings(patient: str, images: list[CheckedImage], tolerance: float) -> list[Finding]:
    """Return shape and affine disagreements inside each co-registered group."""
    by_modality = {image.ref.modality: image for image in images}
    findings = []
    for group in CO_REGISTERED_GROUPS:
        members = [by_modality[modality] for modality in group if modality in by_modality]
        members = [image for image in members if len(image.header.shape) >= 3]
        if len(members) < 2:
            continue
        reference = members[0]
        ref_shape = reference.header.shape[:3]
        ref_name = reference.ref.modality.value
        for image in members[1:]:
            name = image.ref.modality.value
            if image.header.shape[:3] != ref_shape:
                findings.append(
                    make_finding(
                        "G002",
                        patient,
                        image.ref.relpath,
                        f"{name} grid {image.header.shape[:3]} differs from {ref_name} {ref_shape}",
                    )
                )
                continue
            difference = float(np.max(np.abs(image.header.affine - reference.header.affine)))
            if not difference <= tolerance:
                findings.append(
                    make_finding(
                        "G003",
                        patient,
                        image.ref.relpath,
                        f"{name} affine differs from {ref_name}'s by up to {difference:.4g} mm "
                        f"(tolerance {tolerance:g})",
                    )
                )
    return findings


def check_headers(
    patient: str, images: list[ImageRef], config: ValidationConfig
) -> tuple[list[CheckedImage], list[Finding]]:
    """Return the images fit to be read in full and the header findings of one patient."""
    checked, findings = [], []
    unmappable: set[Modality] = set()  # singular affines: comparing them to their group means nothing
    for ref in images:
        try:
            header = read_header(ref.path)
        except ImageReadError as error:
            findings.append(read_error_finding(patient, ref, error))
            continue
        geometry = _geometry_findings(patient, ref, header)
        findings.extend(geometry)
        if not any(finding.code in ("G004", "G005") for finding in geometry):  # else the cause alone
            findings.extend(_ambiguity_findings(patient, ref, header, config.affine_tolerance))
        if header.n_voxels > config.max_voxels:
            findings.append(
                make_finding(
                    "G006",
                    patient,
                    ref.relpath,
                    f"{ref.modality.value} declares {header.n_voxels:,} voxels {header.shape}, "
                    f"above the limit {config.max_voxels:,}; it was not read",
                )
            )
            continue
        checked.append(CheckedImage(ref, header))
        if any(finding.code == "G005" for finding in geometry):
            unmappable.add(ref.modality)
    comparable = [image for image in checked if image.ref.modality not in unmappable]
    findings.extend(_group_findings(patient, comparable, config.affine_tolerance))
    return checked, findings
