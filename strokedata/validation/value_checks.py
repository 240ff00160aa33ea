"""Checks on voxel values and on labels that need them; each image is read in full exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from strokedata.io import ImageReadError, Volume, content_hash, read_volume
from strokedata.labels import regions_from_clot
from strokedata.manifest import LABEL_MAPS, N_REGIONS, PATIENT_MANIFEST, Modality, PatientManifest
from strokedata.validation.header_checks import CheckedImage, read_error_finding
from strokedata.validation.report import Finding, ValidationConfig, make_finding

HOUNSFIELD = frozenset(
    {Modality.NCCT, Modality.CTA, Modality.MCTA1, Modality.MCTA2, Modality.MCTA3, Modality.CTP}
)
PERFUSION = frozenset({Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX, Modality.TTP})
MAY_BE_EMPTY = frozenset({Modality.CLOT, Modality.CORE, Modality.SPIRAL})
"""Modalities for which an all-zero image is legitimate (no clot, no core, no deficit)."""
_ALLOWED_LABELS = {
    Modality.ATLAS: ("V004", N_REGIONS - 1),
    Modality.CLOT: ("V005", 2),
    Modality.CORE: ("V006", 1),
    Modality.BRAIN_MASK: ("V006", 1),
}
"""Label maps: the code reporting bad values and the largest value allowed (the smallest is 0)."""


@dataclass
class PatientContent:
    """What reading one patient's voxels found: findings, content hashes and bytes read."""

    folder: str
    findings: list[Finding] = field(default_factory=list)
    hashes: dict[str, tuple[Modality, str]] = field(default_factory=dict)
    """file (relative to the root) -> (modality, sha256 of its voxel content), scalar images only."""
    bytes_read: int = 0


def _value_range_finding(
    patient: str, image: CheckedImage, low: float, high: float, config: ValidationConfig
) -> Finding | None:
    modality, relpath, name = image.ref.modality, image.ref.relpath, image.ref.modality.value
    shown = f"{name} values span {low:.6g}..{high:.6g}"
    if modality in HOUNSFIELD and (low < config.hu_range[0] or high > config.hu_range[1]):
        span = f"{config.hu_range[0]:g}..{config.hu_range[1]:g} HU"
        return make_finding("V002", patient, relpath, f"{shown} after scaling, outside {span}")
    if modality is Modality.SPIRAL and (low < 0 or high > 1):
        return make_finding("V003", patient, relpath, f"{shown}, outside [0, 1]")
    if modality in PERFUSION:
        bound = config.perfusion_max.get(modality)
        if low < 0:
            return make_finding("V007", patient, relpath, f"{shown}; the minimum is negative")
        if bound is not None and high > bound:
            return make_finding("V008", patient, relpath, f"{shown}, above the plausible maximum {bound:g}")
    return None


def _label_values_finding(
    patient: str, image: CheckedImage, volume: Volume, stored: np.ndarray, low: float, high: float
) -> Finding | None:
    """Return a finding when a label map's values (``stored``: its finite voxels) are not allowed labels."""
    code, largest = _ALLOWED_LABELS[image.ref.modality]
    name = image.ref.modality.value
    if low < 0 or high > largest:
        return make_finding(
            code, patient, image.ref.relpath, f"{name} values span {low:g}..{high:g}, outside 0..{largest}"
        )
    exact_integers = (
        volume.data.dtype.kind in "iu"
        and float(volume.header.slope).is_integer()
        and float(volume.header.inter).is_integer()
    )
    if not exact_integers:
        values = volume.scaled(stored)
        if not np.array_equal(values, np.round(values)):
            return make_finding(code, patient, image.ref.relpath, f"{name} holds non-integer values")
    return None


def _volume_findings(
    patient: str, image: CheckedImage, volume: Volume, config: ValidationConfig
) -> tuple[list[Finding], tuple[float, float] | None]:
    """Return the value findings of one image and the range of its finite scaled values (None when it
    holds none)."""
    modality, relpath = image.ref.modality, image.ref.relpath
    data = volume.data
    findings = []
    finite_values = data
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            count = int(finite.size - np.count_nonzero(finite))
            findings.append(
                make_finding(
                    "V001", patient, relpath, f"{modality.value} holds {count:,} NaN or infinite voxels"
                )
            )
            finite_values = data[finite]
            if finite_values.size == 0:
                return findings, None
    low, high = volume.scaled_range(finite_values)
    if modality in LABEL_MAPS:
        finding = _label_values_finding(patient, image, volume, finite_values, low, high)
    else:
        finding = _value_range_finding(patient, image, low, high, config)
    if finding is not None:
        findings.append(finding)
    if low == high == 0 and modality not in MAY_BE_EMPTY:
        findings.append(make_finding("V009", patient, relpath, f"every {modality.value} voxel is zero"))
    return findings, (low, high)


def _label_findings(
    patient: str,
    manifest: PatientManifest,
    clot: tuple[str, np.ndarray] | None,
    atlas: np.ndarray | None,
    region_names: list[str],
) -> list[Finding]:
    """Return findings where the manifest's labels disagree with the CLOT and ATLAS images."""
    if clot is None:
        return []
    clot_file, clot_values = clot
    findings = []
    location = manifest.labels.occlusion_location
    if location is not None and not np.any(clot_values):
        findings.append(
            make_finding(
                "L003",
                patient,
                clot_file,
                f"the patient is labelled with an {location} occlusion, the CLOT mask is empty",
            )
        )
    explicit = manifest.labels.regions
    if explicit is not None and atlas is not None and atlas.shape == clot_values.shape:
        derived = regions_from_clot(clot_values, atlas)
        differing = [index for index in range(N_REGIONS) if derived[index] != explicit[index]]
        if differing:
            shown = ", ".join(
                f"{index} {region_names[index]} (labels {explicit[index]}, images {int(derived[index])})"
                for index in differing
            )
            findings.append(
                make_finding(
                    "L004",
                    patient,
                    f"{patient}/{PATIENT_MANIFEST}",
                    f"labels.regions disagrees with CLOT x ATLAS at {shown}",
                )
            )
    return findings


def check_values(
    patient: str,
    manifest: PatientManifest,
    images: list[CheckedImage],
    config: ValidationConfig,
    region_names: list[str],
) -> PatientContent:
    """Return what reading each of one patient's images once finds: value and label findings, hashes."""
    content = PatientContent(patient)
    clot: tuple[str, np.ndarray] | None = None
    atlas: np.ndarray | None = None
    for image in images:
        try:
            volume = read_volume(image.ref.path, config.max_voxels)
        except ImageReadError as error:
            content.findings.append(read_error_finding(patient, image.ref, error))
            continue
        content.bytes_read += volume.file_bytes
        findings, value_range = _volume_findings(patient, image, volume, config)
        content.findings.extend(findings)
        if image.ref.modality not in LABEL_MAPS:
            digest = content_hash(volume, value_range)
            content.hashes[image.ref.relpath] = (image.ref.modality, digest)
        if image.ref.modality is Modality.CLOT:
            clot = (image.ref.relpath, volume.scaled())
        elif image.ref.modality is Modality.ATLAS:
            atlas = volume.scaled()
    content.findings.extend(_label_findings(patient, manifest, clot, atlas, region_names))
    return content
