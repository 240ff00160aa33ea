"""The validation report and its configuration, both pydantic models written as JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strokedata.io import MAX_VOXELS
from strokedata.manifest import Modality
from strokedata.validation.codes import CODES, Severity

REPORT_SCHEMA_VERSION: Literal[1] = 1

PERFUSION_MAXIMA: dict[Modality, float] = {
    Modality.CBF: 1000.0,  # ml/100 g/min; grey matter 50-80, large vessels a few hundred
    Modality.CBV: 100.0,  # ml/100 g; grey matter 4-6, vessels up to a few tens
    Modality.MTT: 60.0,  # s; healthy 3-5, severe ischaemia 10-20
    Modality.TMAX: 120.0,  # s; healthy < 2, penumbra > 6, rarely above 30
    Modality.TTP: 200.0,  # s from the first time point; within the acquisition (40-90 s)
}
"""Default upper bounds (absolute units) above which a perfusion map is implausible (warning V008)."""

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)


class ValidationConfig(BaseModel):
    """The tolerances and limits of one validation run; recorded in its report."""

    model_config = _CONFIG

    affine_tolerance: Annotated[float, Field(ge=0)] = Field(
        default=1e-3, description="largest element-wise affine difference (mm) inside a co-registered group"
    )
    max_voxels: Annotated[int, Field(gt=0)] = Field(
        default=MAX_VOXELS, description="headers declaring more voxels are refused before any allocation"
    )
    hu_range: tuple[float, float] = Field(
        default=(-1100.0, 4000.0), description="plausible Hounsfield units for NCCT, CTA, MCTA and CTP"
    )
    perfusion_max: dict[Modality, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: dict(PERFUSION_MAXIMA),
        description="upper plausible value per perfusion map, absolute units",
    )
    strict: bool = Field(default=False, description="warnings count as errors")

    @model_validator(mode="after")
    def _ordered_range(self) -> ValidationConfig:
        if not self.hu_range[0] < self.hu_range[1]:
            raise ValueError("hu_range must be (low, high) with low < high")
        return self


class Finding(BaseModel):
    """One problem: its stable code, severity, where it is and what to do about it."""

    model_config = _CONFIG

    code: str
    name: str
    severity: Severity
    patient_id: str | None = Field(description="patient folder name; null for dataset-level findings")
    file: str | None = Field(description="path relative to the dataset root, POSIX separators")
    message: str

    def sort_key(self) -> tuple[str, str, str, str]:
        """Return the key that orders findings by patient, file, code and message."""
        return (self.patient_id or "", self.file or "", self.code, self.message)


def make_finding(code: str, patient_id: str | None, file: str | None, detail: str) -> Finding:
    """Return a finding for ``code`` whose message is ``detail`` followed by the code's fix."""
    entry = CODES[code]
    return Finding(
        code=code,
        name=entry.name,
        severity=entry.severity,
        patient_id=patient_id,
        file=file,
        message=f"{detail}; {entry.fix}",
    )


class ValidationReport(BaseModel):
    """The outcome of validating one dataset: every finding, sorted, and the counts."""

    model_config = _CONFIG

    schema_version: Literal[1] = REPORT_SCHEMA_VERSION
    tool_version: str
    dataset: str = Field(description="the dataset root as given")
    config: ValidationConfig
    n_patients: int = Field(description="patient folders found")
    n_images: int = Field(description="images referenced by the manifests")
    image_bytes: int = Field(description="bytes of image files read")
    errors: int
    warnings: int
    valid: bool = Field(description="true when there is no error")
    split: str | None = Field(default=None, description="the split file checked against the dataset, if any")
    findings: list[Finding]

    @model_validator(mode="after")
    def _consistent_counts(self) -> ValidationReport:
        errors = sum(finding.severity == "error" for finding in self.findings)
        if (errors, len(self.findings) - errors, errors == 0) != (self.errors, self.warnings, self.valid):
            raise ValueError("errors, warnings and valid disagree with the findings")
        return self

    def codes(self) -> set[str]:
        """Return the set of finding codes in the report."""
        return {finding.code for finding in self.findings}
