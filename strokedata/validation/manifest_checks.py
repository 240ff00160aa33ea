"""Checks of the dataset card, the patient manifests and the files a patient folder holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from strokedata.errors import DatasetNotFoundError
from strokedata.io import JSONFileError, parse_json
from strokedata.manifest import (
    DATASET_CARD,
    PATH_OUTSIDE,
    PATIENT_MANIFEST,
    DatasetCard,
    Modality,
    PatientManifest,
)
from strokedata.outputs import file_kind
from strokedata.validation.report import Finding, make_finding

IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
"""File endings treated as images when looking for files no manifest references."""

_LABEL_FIELDS = ("occlusion_location", "occlusion_side", "mtici")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ImageRef:
    """An image a manifest references: its modality, its path as reported, and its resolved path."""

    modality: Modality
    relpath: str
    path: Path


@dataclass
class PatientPlan:
    """A patient folder after the manifest checks: its manifest (None if unusable) and its images."""

    folder: str
    manifest: PatientManifest | None
    images: list[ImageRef] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _dotted(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_model(
    model: type[M], path: Path, patient_id: str | None, relpath: str
) -> tuple[M | None, list[Finding]]:
    """Return the model read from a JSON file (None when unusable) and the findings about the file."""
    try:
        text = path.read_text(encoding="utf-8")
        parse_json(text)
    except PermissionError:
        return None, [make_finding("F009", patient_id, relpath, "the file cannot be read: permission denied")]
    except JSONFileError as error:
        return None, [make_finding("M002", patient_id, relpath, f"invalid JSON: {error}")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [make_finding("M002", patient_id, relpath, f"the file cannot be read as UTF-8: {error}")]
    try:
        return model.model_validate_json(text), []
    except ValidationError as error:
        findings = []
        for item in error.errors(include_url=False):
            location = tuple(item["loc"])
            detail = f"{_dotted(location)}: {item['msg']} (got {_shown(item['input'])})"
            if item["type"] == PATH_OUTSIDE:
                code = "F005"
            elif len(location) == 2 and location[0] == "labels" and location[1] in _LABEL_FIELDS:
                code = "L002"
            else:
                code = "M003"
            findings.append(make_finding(code, patient_id, relpath, detail))
        return None, findings


def load_card(root: Path) -> tuple[DatasetCard | None, list[Finding]]:
    """Return the dataset card (None when missing or invalid) and the findings about it."""
    path = root / DATASET_CARD
    if not path.is_file():
        return None, [make_finding("M001", None, DATASET_CARD, f"no {DATASET_CARD} in {root}")]
    card, findings = load_model(DatasetCard, path, None, DATASET_CARD)
    if card is not None:
        for source in card.linked_sources:
            if not _safe_source(root, source):
                detail = (
                    f"linked_sources: '{source}' resolves to {(root / source).resolve()}, which holds the "
                    "dataset itself or the whole file system; images may not link into it"
                )
                findings.append(make_finding("M003", None, DATASET_CARD, detail))
    return card, findings


def _safe_source(root: Path, source: str) -> bool:
    """Return True when a linked source folder neither is the file-system root nor holds the dataset."""
    resolved = (root / source).resolve()
    return resolved != resolved.parent and not root.resolve().is_relative_to(resolved)


def patient_folders(root: Path) -> list[str]:
    """Return the sorted names of the patient folders: every non-hidden folder in the root.

    Raises DatasetNotFoundError when the root cannot be listed.
    """
    try:
        entries = list(os.scandir(root))
    except OSError as error:
        raise DatasetNotFoundError(
            f"cannot list {root}: {error.strerror}; check the path and its permissions"
        ) from None
    return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def hidden_folder_findings(root: Path) -> list[Finding]:
    """Return an M010 warning for each folder in the root whose name starts with a dot (never read)."""
    hidden = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and entry.name.startswith("."))
    return [
        make_finding("M010", None, f"{name}/", f"the folder {name}/ is hidden and was skipped")
        for name in hidden
    ]


def _file_state(path: Path) -> str | None:
    """Return None for a readable regular file, else what the path is: 'missing', 'unreadable' or the
    kind of file ('a folder', 'a named pipe (FIFO)', ...)."""
    try:
        mode = path.stat().st_mode
    except PermissionError:
        return "unreadable"
    except (OSError, ValueError):
        return "missing"
    return file_kind(mode)


def _card_checks(manifest: PatientManifest, card: DatasetCard, folder: str, relpath: str) -> list[Finding]:
    findings = []
    for modality in card.modalities:
        if modality not in manifest.images:
            findings.append(
                make_finding(
                    "M007", folder, relpath, f"dataset.json expects {modality.value}, this patient has none"
                )
            )
    for modality in manifest.images:
        if modality not in card.modalities:
            findings.append(
                make_finding(
                    "M008", folder, relpath, f"{modality.value} is not among dataset.json's modalities"
                )
            )
    for name in _LABEL_FIELDS:
        value = getattr(manifest.labels, name)
        vocabulary = getattr(card.labels, name)
        if value is not None and value not in vocabulary:
            findings.append(
                make_finding(
                    "L002",
                    folder,
                    relpath,
                    f"labels.{name} = '{value}' is not in dataset.json's vocabulary {vocabulary}",
                )
            )
    return findings


def _label_checks(manifest: PatientManifest, folder: str, relpath: str) -> list[Finding]:
    labels = manifest.labels
    if labels.occlusion_location is not None and labels.occlusion_side is None:
        return [
            make_finding(
                "L001", folder, relpath, f"occlusion {labels.occlusion_location} is labelled without a side"
            )
        ]
    return []


def linked_roots(root: Path, card: DatasetCard | None) -> list[Path]:
    """Return the resolved folders images may lie in: the dataset root, then the card's linked sources
    (each resolved relative to the root; a source holding the dataset or the file-system root is left
    out, see load_card)."""
    roots = [root.resolve()]
    if card is not None:
        roots.extend((root / s).resolve() for s in card.linked_sources if _safe_source(root, s))
    return roots


def _resolve_images(
    root: Path, folder: str, manifest: PatientManifest, card: DatasetCard | None = None
) -> tuple[list[ImageRef], list[Finding]]:
    """Return the referenced images that exist inside the root or a linked source, and findings for the
    others."""
    allowed = linked_roots(root, card)
    where = "the dataset root and its linked sources" if len(allowed) > 1 else "the dataset root"
    images, findings = [], []
    for modality, path_text in manifest.images.items():
        relpath = f"{folder}/{PurePosixPath(path_text)}"
        path = root / folder / path_text
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:  # a symlink loop
            findings.append(
                make_finding("F001", folder, relpath, f"{modality.value} cannot be resolved: {error}")
            )
            continue
        if not any(resolved.is_relative_to(base) for base in allowed):
            findings.append(
                make_finding(
                    "F005",
                    folder,
                    relpath,
                    f"{modality.value} resolves to {resolved}, outside {where}",
                )
            )
        elif (state := _file_state(resolved)) == "missing":
            missing = "is a broken link" if path.is_symlink() else "does not exist"
            findings.append(make_finding("F001", folder, relpath, f"{modality.value} image {missing}"))
        elif state == "unreadable":
            findings.append(
                make_finding(
                    "F009", folder, relpath, f"{modality.value} image cannot be reached: permission denied"
                )
            )
        elif state is not None:
            findings.append(
                make_finding(
                    "F008", folder, relpath, f"{modality.value} image is {state}, not a regular file"
                )
            )
        else:
            images.append(ImageRef(modality, relpath, resolved))
    return images, findings


def _folder_images(patient_dir: Path) -> set[str]:
    """Return the image-like files below a patient folder, as POSIX paths relative to it."""
    found = set()
    for directory, subdirectories, files in os.walk(patient_dir):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in files:
            if name.lower().endswith(IMAGE_FILE_SUFFIXES) and not name.startswith("."):
                found.add(Path(directory, name).relative_to(patient_dir).as_posix())
    return found


def _folder_checks(root: Path, folder: str, manifest: PatientManifest) -> list[Finding]:
    """Return findings for ambiguous .nii/.nii.gz pairs and for images no manifest references."""
    present = _folder_images(root / folder)
    referenced = {PurePosixPath(path).as_posix() for path in manifest.images.values()}
    findings = []
    paired = set()
    for name in sorted(present):
        if name.endswith(".nii") and f"{name}.gz" in present:
            paired.update({name, f"{name}.gz"})
            shown = f"{name}.gz" if f"{name}.gz" in referenced else name
            findings.append(
                make_finding(
                    "F006", folder, f"{folder}/{shown}", f"both {name} and {name}.gz exist in the folder"
                )
            )
    for name in sorted(present - referenced - paired):
        findings.append(
            make_finding(
                "F004", folder, f"{folder}/{name}", "this image file is not referenced by patient.json"
            )
        )
    return findings


def plan_patient(root: Path, folder: str, card: DatasetCard | None) -> PatientPlan:
    """Return the patient's manifest checks: its manifest, the images to read, and the findings."""
    relpath = f"{folder}/{PATIENT_MANIFEST}"
    path = root / folder / PATIENT_MANIFEST
    try:
        os.scandir(root / folder).close()
    except PermissionError:
        detail = f"the folder {folder}/ cannot be read: permission denied; it was not validated"
        return PatientPlan(folder, None, findings=[make_finding("F009", folder, f"{folder}/", detail)])
    if not path.is_file():
        return PatientPlan(
            folder,
            None,
            findings=[
                make_finding(
                    "M006", folder, f"{folder}/", f"the folder {folder}/ holds no {PATIENT_MANIFEST}"
                )
            ],
        )
    manifest, findings = load_model(PatientManifest, path, folder, relpath)
    if manifest is None:
        return PatientPlan(folder, None, findings=findings)
    if manifest.patient_id != folder:
        findings.append(
            make_finding(
                "M004", folder, relpath, f"patient_id is '{manifest.patient_id}' but the folder is '{folder}'"
            )
        )
    if card is not None:
        findings.extend(_card_checks(manifest, card, folder, relpath))
    findings.extend(_label_checks(manifest, folder, relpath))
    images, image_findings = _resolve_images(root, folder, manifest, card)
    findings.extend(image_findings)
    findings.extend(_folder_checks(root, folder, manifest))
    return PatientPlan(folder, manifest, images, findings)


def duplicate_id_findings(plans: list[PatientPlan]) -> list[Finding]:
    """Return M005 findings for patient ids used by two folders, compared case-insensitively."""
    owners: dict[str, list[str]] = {}
    for plan in plans:
        if plan.manifest is not None:
            owners.setdefault(plan.manifest.patient_id.lower(), []).append(plan.folder)
    findings = []
    for folders in owners.values():
        if len(folders) > 1:
            for folder in folders:
                others = ", ".join(name for name in sorted(folders) if name != folder)
                findings.append(
                    make_finding(
                        "M005",
                        folder,
                        f"{folder}/{PATIENT_MANIFEST}",
                        f"the patient id is also used by folder(s) {others}",
                    )
                )
    return findings
