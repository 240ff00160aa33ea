"""Writing a ``Scan`` as a canonical dataset: checks first, then one atomic folder per patient.

Phase 1 decides every patient's fate without writing: excluded (a required series is missing), failed
(an unusable id, a file the layout reader could not place, a header the validator refuses, voxel data
shorter than its header says) or to be imported. Phase 2 writes each imported patient into a hidden
``.<id>.partial-*`` folder beside its final place and renames it into place; a patient whose folder already
holds exactly what would be written is left untouched. The source is only read.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import ValidationError

from strokedata import __version__
from strokedata.csvcells import csv_text
from strokedata.importers.nifti import check_data, needs_squeeze, squeezed_bytes
from strokedata.importers.report import (
    ImporterError,
    ImportMode,
    ImportNote,
    ImportOptions,
    ImportReport,
    PatientOutcome,
    PatientSource,
    Scan,
)
from strokedata.io import ImageReadError, atomic_write_text
from strokedata.manifest import (
    DATASET_CARD,
    PATIENT_ID_PATTERN,
    PATIENT_MANIFEST,
    DatasetCard,
    Modality,
    PatientManifest,
    Provenance,
)
from strokedata.outputs import check_output_folder
from strokedata.staging import is_leftover, remove_leftovers, staged_folder
from strokedata.validation.header_checks import check_headers, read_error_finding
from strokedata.validation.manifest_checks import ImageRef
from strokedata.validation.report import ValidationConfig

EXCLUDED_CSV = "excluded.csv"
"""Written in the output root: patient_id, source, reason of every patient left out by ``require``.
``strokedata validate`` ignores files in the root, so the list can live next to the patient folders."""

_PATIENT_ID = re.compile(PATIENT_ID_PATTERN)

T = TypeVar("T")
EntryKind = Literal["symlink", "copy", "hardlink", "squeeze"]


@dataclass(frozen=True)
class _Entry:
    """One image file of an output patient folder: its name, how it is made and from which source file."""

    modality: Modality
    name: str
    kind: EntryKind
    source: Path
    target: str = ""
    """The text of the symbolic link (relative to the patient folder), for kind 'symlink'."""


@dataclass
class _Plan:
    """A patient that passed phase 1: its files and its manifest."""

    source: PatientSource
    entries: list[_Entry]
    manifest: PatientManifest
    squeezed: bool = False


def source_relative(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` as a POSIX string (the path itself when outside the root)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def in_modality_order(images: dict[Modality, T]) -> list[tuple[Modality, T]]:
    """Return the (modality, value) pairs of ``images`` in the order of the Modality enum."""
    return [(modality, images[modality]) for modality in Modality if modality in images]


def image_suffix(path: Path) -> str:
    """Return '.nii.gz' or '.nii', as the file's name ends (case-insensitively)."""
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"


def _checked_source(src: Path) -> Path:
    """Return the resolved source folder; raise ImporterError when it is not a folder."""
    if not src.is_dir():
        raise ImporterError(f"{src} is not a folder; give the folder the data was downloaded or exported to")
    return src.resolve()


def _prepare_output(source_root: Path, out: Path, name: str) -> None:
    """Create ``out`` or reuse it when it holds an earlier import of the same name; remove leftovers of
    interrupted runs. Raise ImporterError when ``out`` overlaps the source or holds something else."""
    out_real = out.resolve()
    if out_real == source_root or out_real.is_relative_to(source_root):
        raise ImporterError(f"--out {out} lies inside the source {source_root}; the source is never written")
    if source_root.is_relative_to(out_real):
        raise ImporterError(f"the source {source_root} lies inside --out {out}; choose a folder outside it")
    if out.exists():
        if not out.is_dir():
            raise ImporterError(f"--out {out} is a file; give a folder")
        card_path = out / DATASET_CARD
        if card_path.is_file():
            try:
                existing = DatasetCard.model_validate_json(card_path.read_bytes())
            except ValueError:
                raise ImporterError(
                    f"{card_path} is not a valid dataset card; choose an empty folder"
                ) from None
            if existing.name != name:
                raise ImporterError(
                    f"{out} holds another dataset ('{existing.name}', not '{name}'); choose an empty folder, "
                    "or give the same --name to update it"
                )
        elif any(not is_leftover(entry) for entry in out.iterdir()):
            raise ImporterError(f"{out} is not empty and holds no {DATASET_CARD}; choose an empty folder")
        remove_leftovers(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically unless ``path`` already holds exactly it."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def _failed(source: PatientSource, reason: str, file: str | None = None) -> PatientOutcome:
    return PatientOutcome(source.patient_id, source.folder, "failed", reason, file)


def _header_failure(source: PatientSource, source_root: Path) -> tuple[PatientOutcome | None, bool]:
    """Return the failure of a patient whose images the validator's header checks (or the data-size check)
    refuse, or None; and whether its CTP is a 5D (x, y, z, 1, t) file to be squeezed to 4D."""
    refs = [
        ImageRef(modality, source_relative(path, source_root), path)
        for modality, path in in_modality_order(source.images)
    ]
    checked, findings = check_headers(source.patient_id, refs, ValidationConfig())
    squeezed = {
        image.ref.relpath
        for image in checked
        if image.ref.modality is Modality.CTP and needs_squeeze(image.header)
    }
    errors = [
        finding
        for finding in findings
        if finding.severity == "error" and not (finding.code == "G001" and finding.file in squeezed)
    ]
    if errors:
        reason = "; ".join(f"{finding.code} {finding.message}" for finding in errors)
        return _failed(source, reason, errors[0].file), bool(squeezed)
    for image in checked:
        try:
            check_data(image.ref.path, image.header)
        except ImageReadError as error:
            finding = read_error_finding(source.patient_id, image.ref, error)
            return _failed(source, f"{finding.code} {finding.message}", image.ref.relpath), False
    return None, bool(squeezed)


def _entries(source: PatientSource, out_real: Path, mode: ImportMode, squeeze_ctp: bool) -> list[_Entry]:
    """Return the image files of a patient's output folder: ``<modality>.nii[.gz]`` each."""
    entries = []
    for modality, path in in_modality_order(source.images):
        name = f"{modality.value.lower()}{image_suffix(path)}"
        if modality is Modality.CTP and squeeze_ctp:
            entries.append(_Entry(modality, name, "squeeze", path))
        elif mode == "symlink":
            target = os.path.relpath(path, out_real / source.patient_id)
            entries.append(_Entry(modality, name, "symlink", path, Path(target).as_posix()))
        else:
            entries.append(_Entry(modality, name, mode, path))
    return entries


def _plan_patient(
    source: PatientSource, source_root: Path, out_real: Path, options: ImportOptions, source_label: str
) -> _Plan | PatientOutcome:
    """Return what to write for one patient, or its outcome when it is excluded or fails (phase 1)."""
    if source.problems:
        file, _ = source.problems[0]
        return _failed(source, "; ".join(reason for _, reason in source.problems), file)
    lacking = [modality.value for modality in options.require if modality not in source.images]
    if lacking:
        reason = f"lacks {', '.join(lacking)} (required)"
        return PatientOutcome(source.patient_id, source.folder, "excluded", reason)
    if options.mode == "symlink":
        for modality, path in in_modality_order(source.images):
            if not path.resolve().is_relative_to(source_root):
                return _failed(
                    source,
                    f"{modality.value} links to {path.resolve()}, outside the source: a link to it would "
                    "leave the dataset's linked sources; import with --copy",
                    source_relative(path, source_root),
                )
    failure, squeeze_ctp = _header_failure(source, source_root)
    if failure is not None:
        return failure
    entries = _entries(source, out_real, options.mode, squeeze_ctp)
    original_ids = dict(source.original_ids)
    if squeeze_ctp and Modality.CTP.value in original_ids:
        original_ids[Modality.CTP.value] += " (5D, squeezed to 4D)"
    try:
        manifest = PatientManifest(
            patient_id=source.patient_id,
            site=source.site,
            images={entry.modality: entry.name for entry in entries},
            labels=source.labels,
            clinical=source.clinical,
            provenance=Provenance(source=source_label, original_ids=original_ids, tool_version=__version__),
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_url=False)
        )
        return _failed(source, f"the manifest would be invalid: {problems}")
    return _Plan(source, entries, manifest, squeeze_ctp)


def _squeezed(plan: _Plan) -> dict[str, bytes]:
    """Return the bytes of the patient's squeezed files, by output name."""
    return {entry.name: squeezed_bytes(entry.source) for entry in plan.entries if entry.kind == "squeeze"}


def _is_current(final: Path, plan: _Plan, payloads: dict[str, bytes], manifest_text: str) -> bool:
    """Return True when ``final`` already holds exactly the files this plan would write."""
    if final.is_symlink() or not final.is_dir():
        return False
    try:
        expected = sorted([*(entry.name for entry in plan.entries), PATIENT_MANIFEST])
        if sorted(os.listdir(final)) != expected:
            return False
        if (final / PATIENT_MANIFEST).read_bytes() != manifest_text.encode("utf-8"):
            return False
        for entry in plan.entries:
            path = final / entry.name
            if entry.kind == "symlink":
                if not path.is_symlink() or os.readlink(path) != entry.target:
                    return False
            elif path.is_symlink():
                return False
            elif entry.kind == "hardlink":
                if not os.path.samefile(path, entry.source):
                    return False
            elif entry.kind == "copy":
                have, want = path.stat(), entry.source.stat()
                if (have.st_size, have.st_mtime_ns) != (want.st_size, want.st_mtime_ns):
                    return False
            elif path.read_bytes() != payloads[entry.name]:
                return False
    except OSError:
        return False
    return True


def _materialise(entry: _Entry, folder: Path, payloads: dict[str, bytes], out: Path) -> None:
    """Create one image file of a patient folder; raise ImporterError when links cannot be made at all."""
    destination = folder / entry.name
    if entry.kind == "squeeze":
        destination.write_bytes(payloads[entry.name])
    elif entry.kind == "copy":
        shutil.copy2(entry.source, destination)
    elif entry.kind == "symlink":
        try:
            os.symlink(entry.target, destination)
        except OSError as error:
            raise ImporterError(
                f"cannot create symbolic links in {out}: {error.strerror or error}; import with --copy"
            ) from None
    else:
        try:
            os.link(entry.source, destination)
        except OSError as error:
            raise ImporterError(
                f"cannot hard-link {entry.source} into {out}: {error.strerror or error}; hard links need "
                "the source and --out on one file system that allows them: import with --copy, or "
                "without --link for symbolic links"
            ) from None


def _write_patient(plan: _Plan, out: Path) -> PatientOutcome:
    """Write one patient's folder atomically (phase 2), or leave it when it is already up to date."""
    source = plan.source
    try:
        payloads = _squeezed(plan)
    except Exception as error:  # a damaged file must fail its patient only; reported with the reason
        return _failed(source, f"the CTP cannot be squeezed to 4D: {error}", source.folder)
    manifest_text = plan.manifest.model_dump_json(indent=2) + "\n"
    final = out / source.patient_id
    if _is_current(final, plan, payloads, manifest_text):
        return PatientOutcome(source.patient_id, source.folder, "imported", changed=False)
    with staged_folder(out, source.patient_id) as partial:
        for entry in plan.entries:
            _materialise(entry, partial, payloads, out)
        atomic_write_text(partial / PATIENT_MANIFEST, manifest_text)
    return PatientOutcome(source.patient_id, source.folder, "imported", changed=True)


def _excluded_csv(outcomes: list[PatientOutcome]) -> str:
    """Return the exclusion list as CSV text: a header, then one row per excluded patient."""
    rows = [(o.patient_id, o.source, o.reason) for o in outcomes if o.status == "excluded"]
    return csv_text(["patient_id", "source", "reason"], rows)


def _check_hardlinks(source_root: Path, out: Path) -> None:
    """Raise ImporterError when the source and ``out`` (or its nearest existing parent) lie on different
    file systems."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if os.stat(source_root).st_dev != os.stat(existing).st_dev:
        raise ImporterError(
            f"--link needs the source and --out on one file system; {source_root} and {out} are on "
            "different ones: import with --copy, or without --link for symbolic links"
        )


def run_import(scan: Scan, src: str | Path, out: str | Path, options: ImportOptions) -> ImportReport:
    """Return the report of writing ``scan`` (found in ``src``) as a canonical dataset into ``out``.

    Raises ImporterError when ``src`` is not a folder, ``out`` overlaps it or holds another dataset, or
    links of the chosen mode cannot be made; a patient that cannot be imported is reported, the others are
    imported.
    """
    source_root = _checked_source(Path(src))
    out_path = Path(out)
    check_output_folder(out_path)
    name = options.name or scan.name
    if options.mode == "hardlink":
        _check_hardlinks(source_root, out_path.resolve())
    _prepare_output(source_root, out_path, name)
    out_real = out_path.resolve()
    report = ImportReport(scan.layout, Path(src), out_path, options.mode)
    report.notes.extend(ImportNote(None, note) for note in scan.notes)
    owners: dict[str, str] = {}
    plans: list[_Plan] = []
    patients = sorted(scan.patients, key=lambda patient: (patient.patient_id, patient.folder))
    for done, source in enumerate(patients, start=1):
        report.unmapped.extend(source.unmapped)
        report.notes.extend(ImportNote(source.patient_id, note) for note in source.notes)
        owner = owners.setdefault(source.patient_id.lower(), source.folder)
        result: _Plan | PatientOutcome
        if not _PATIENT_ID.match(source.patient_id):
            result = _failed(
                source,
                f"'{source.patient_id}' cannot be a patient id: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, 128 characters at most",
            )
        elif owner != source.folder:
            result = _failed(source, f"the id '{source.patient_id}' is also {owner}'s (ids ignore case)")
        else:
            result = _plan_patient(source, source_root, out_real, options, scan.source_label)
        if isinstance(result, _Plan):
            plans.append(result)
        else:
            report.outcomes.append(result)
        if options.progress is not None:
            options.progress("Checking sources", done, len(patients))
    squeezed = [plan.source.patient_id for plan in plans if plan.squeezed]
    if squeezed:
        shown = ", ".join(squeezed[:5]) + (" ..." if len(squeezed) > 5 else "")
        report.notes.append(
            ImportNote(
                None,
                f"{len(squeezed)} CTP series stored as (x, y, z, 1, t) were written as 4D copies (header "
                f"rewritten, voxels unchanged): {shown}",
            )
        )
    modalities = [m for m in Modality if any(m in plan.source.images for plan in plans)]
    card = DatasetCard(
        name=name,
        version="1.0",
        description=scan.description,
        license=options.license or scan.license,
        modalities=modalities,
        linked_sources=[os.path.relpath(source_root, out_real)] if options.mode == "symlink" else [],
    )
    _write_if_changed(out_path / DATASET_CARD, card.model_dump_json(indent=2) + "\n")
    for done, plan in enumerate(plans, start=1):
        report.outcomes.append(_write_patient(plan, out_path))
        if options.progress is not None:
            options.progress("Importing", done, len(plans))
    report.outcomes.sort(key=lambda outcome: (outcome.patient_id, outcome.source))
    report.excluded_csv = out_path / EXCLUDED_CSV
    _write_if_changed(report.excluded_csv, _excluded_csv(report.outcomes))
    imported = {outcome.patient_id for outcome in report.imported}
    report.stale = sorted(
        entry.name
        for entry in out_path.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in imported
    )
    return report
