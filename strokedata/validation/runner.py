"""``validate(path)``: header checks for every patient first, then one full read of each volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strokedata import __version__
from strokedata.errors import DatasetNotFoundError
from strokedata.executor import Executor, Progress, executor_for, map_reporting
from strokedata.manifest import DEFAULT_ATLAS_REGIONS, DatasetCard, Modality, PatientManifest
from strokedata.validation.header_checks import CheckedImage, check_headers
from strokedata.validation.manifest_checks import (
    PatientPlan,
    duplicate_id_findings,
    hidden_folder_findings,
    load_card,
    patient_folders,
    plan_patient,
)
from strokedata.validation.report import Finding, ValidationConfig, ValidationReport, make_finding
from strokedata.validation.split_checks import split_findings
from strokedata.validation.value_checks import PatientContent, check_values


@dataclass(frozen=True)
class _HeaderTask:
    root: Path
    folder: str
    card: DatasetCard | None
    config: ValidationConfig

    @property
    def label(self) -> str:
        """Return the patient folder: the name of this task on a cluster."""
        return self.folder


@dataclass(frozen=True)
class _HeaderResult:
    plan: PatientPlan
    images: list[CheckedImage]
    findings: list[Finding]


@dataclass(frozen=True)
class _VoxelTask:
    folder: str
    manifest: PatientManifest
    images: list[CheckedImage]
    config: ValidationConfig
    region_names: list[str]

    @property
    def label(self) -> str:
        """Return the patient folder: the name of this task on a cluster."""
        return self.folder


def _inspect_patient(task: _HeaderTask) -> _HeaderResult:
    """Phase 1 for one patient: manifest and file checks, then header checks."""
    plan = plan_patient(task.root, task.folder, task.card)
    images, findings = check_headers(task.folder, plan.images, task.config)
    return _HeaderResult(plan, images, findings)


def _read_patient(task: _VoxelTask) -> PatientContent:
    """Phase 2 for one patient: read every image once and check its values and labels."""
    return check_values(task.folder, task.manifest, task.images, task.config, task.region_names)


def _leakage_findings(contents: list[PatientContent]) -> list[Finding]:
    """Return K001 findings for voxel content that two or more patients share."""
    owners: dict[str, list[tuple[str, str, Modality]]] = {}
    for content in contents:
        for relpath, (modality, digest) in content.hashes.items():
            owners.setdefault(digest, []).append((content.folder, relpath, modality))
    findings = []
    for users in owners.values():
        if len({patient for patient, _, _ in users}) < 2:
            continue
        for patient, relpath, modality in users:
            others = ", ".join(
                sorted(f"{file} ({kind.value})" for who, file, kind in users if who != patient)
            )
            findings.append(
                make_finding(
                    "K001", patient, relpath, f"{modality.value} has the same voxel content as {others}"
                )
            )
    return findings


def validate(
    path: str | Path,
    config: ValidationConfig | None = None,
    *,
    split: str | Path | None = None,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> ValidationReport:
    """Return the validation report of the dataset at ``path``; the dataset is only read, never written.

    ``split``, a split file, is checked against the dataset too (codes S001-S006). ``jobs`` sets the
    number of local worker processes (default: all cores) unless an ``executor`` is given. Raises
    DatasetNotFoundError when ``path`` is not a folder; every other problem is a finding.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{root} is not a folder; give the dataset root (the folder with dataset.json)"
        )
    with executor_for(jobs, executor) as runner:
        return _validate_with(runner, path, config or ValidationConfig(), progress, split)


def _validate_with(
    executor: Executor,
    path: str | Path,
    config: ValidationConfig,
    progress: Progress | None,
    split: str | Path | None,
) -> ValidationReport:
    """Return the report of the dataset at ``path``, running per-patient work on ``executor``."""
    root = Path(path)
    card, findings = load_card(root)
    folders = patient_folders(root)
    findings.extend(hidden_folder_findings(root))
    if not folders:
        findings.append(make_finding("M009", None, None, f"{root} holds no patient folders"))

    header_tasks = [_HeaderTask(root, folder, card, config) for folder in folders]
    inspected = list(map_reporting(executor, _inspect_patient, header_tasks, "headers", progress))
    inspected.sort(key=lambda result: result.plan.folder)
    for result in inspected:
        findings.extend(result.plan.findings)
        findings.extend(result.findings)
    findings.extend(duplicate_id_findings([result.plan for result in inspected]))

    region_names = list(card.atlas_regions if card is not None else DEFAULT_ATLAS_REGIONS)
    voxel_tasks = [
        _VoxelTask(result.plan.folder, result.plan.manifest, result.images, config, region_names)
        for result in inspected
        if result.plan.manifest is not None and result.images
    ]
    contents = list(map_reporting(executor, _read_patient, voxel_tasks, "voxels", progress))
    for content in contents:
        findings.extend(content.findings)
    findings.extend(_leakage_findings(contents))
    if split is not None:
        plans = [result.plan for result in inspected]
        manifests = [plan.manifest for plan in plans if plan.manifest is not None]
        findings.extend(split_findings(Path(split), folders, manifests, len(manifests) == len(plans)))

    if config.strict:
        findings = [finding.model_copy(update={"severity": "error"}) for finding in findings]
    findings.sort(key=Finding.sort_key)
    errors = sum(finding.severity == "error" for finding in findings)
    return ValidationReport(
        tool_version=__version__,
        dataset=str(path),
        config=config,
        n_patients=len(folders),
        n_images=sum(len(result.plan.manifest.images) for result in inspected if result.plan.manifest),
        image_bytes=sum(content.bytes_read for content in contents),
        errors=errors,
        warnings=len(findings) - errors,
        valid=errors == 0,
        split=None if split is None else str(split),
        findings=findings,
    )
