"""What a layout reader finds (``Scan``, one ``PatientSource`` per patient) and what an import did
(``ImportReport``: one outcome per patient, warnings, label spellings it could not map)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from strokedata.errors import StrokedataError
from strokedata.manifest import ClinicalValue, Labels, Modality, PatientManifest

ImportMode = Literal["symlink", "copy", "hardlink"]
"""How images reach the new root: relative symbolic links (default), copies, or hard links."""

IMPORT_MODES: tuple[ImportMode, ...] = ("symlink", "copy", "hardlink")

Progress = Callable[[str, int, int], None]
"""Called as ``progress("Importing", done, total)`` after each patient."""


class ImporterError(StrokedataError):
    """The import cannot run: the source is not the layout named, or the output folder is unusable."""


@dataclass(frozen=True)
class ImportNote:
    """A warning about one patient (``patient_id``) or about the whole source (None)."""

    patient_id: str | None
    message: str


@dataclass(frozen=True)
class LabelProblem:
    """A value the normalisation tables could not map: the patient, the field, and the value as written."""

    patient_id: str
    field: str
    value: str


@dataclass
class PatientSource:
    """One patient as a layout reader found it, before anything is written.

    ``images`` maps each modality to its file in the source; ``problems`` (file, reason) make the patient
    fail: it is reported and not imported. ``folder`` says where the patient is in the source, for reports
    and ``excluded.csv``.
    """

    patient_id: str
    folder: str
    images: dict[Modality, Path] = field(default_factory=dict)
    labels: Labels = field(default_factory=Labels)
    clinical: dict[str, ClinicalValue] = field(default_factory=dict)
    site: str | None = None
    original_ids: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[str | None, str]] = field(default_factory=list)
    unmapped: list[LabelProblem] = field(default_factory=list)


@dataclass
class Scan:
    """Everything a layout reader found: the patients, source-wide warnings and the dataset card's text."""

    layout: str
    source_label: str
    name: str
    description: str
    license: str
    patients: list[PatientSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    """Choices shared by every layout: link mode, required series, card name and licence, progress."""

    mode: ImportMode = "symlink"
    require: Sequence[Modality] = ()
    name: str | None = None
    license: str | None = None
    progress: Progress | None = None


@dataclass(frozen=True)
class PatientOutcome:
    """What happened to one patient.

    ``imported`` (``changed`` False: the folder was already up to date and nothing was written),
    ``excluded`` (a series ``--require`` asks for is missing: ``reason``), or ``failed`` (``file``, relative
    to the source, and ``reason``).
    """

    patient_id: str
    source: str
    status: Literal["imported", "excluded", "failed"]
    reason: str = ""
    file: str | None = None
    changed: bool = False


@dataclass
class ImportReport:
    """The result of an import: one outcome per patient (sorted by id), warnings, unmapped label spellings,
    where the exclusion list was written, and output folders no source patient produced (left in place)."""

    layout: str
    source: Path
    out: Path
    mode: ImportMode
    outcomes: list[PatientOutcome] = field(default_factory=list)
    notes: list[ImportNote] = field(default_factory=list)
    unmapped: list[LabelProblem] = field(default_factory=list)
    excluded_csv: Path | None = None
    stale: list[str] = field(default_factory=list)

    def with_status(self, status: str) -> list[PatientOutcome]:
        """Return the outcomes with ``status`` ('imported', 'excluded' or 'failed'), in id order."""
        return [outcome for outcome in self.outcomes if outcome.status == status]

    @property
    def imported(self) -> list[PatientOutcome]:
        """Return the outcomes of the patients imported (written or already up to date)."""
        return self.with_status("imported")

    @property
    def excluded(self) -> list[PatientOutcome]:
        """Return the outcomes of the patients left out because a required series is missing."""
        return self.with_status("excluded")

    @property
    def failed(self) -> list[PatientOutcome]:
        """Return the outcomes of the patients that could not be imported."""
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        """Return True when no patient failed and every label spelling was mapped (exclusions are fine)."""
        return not self.failed and not self.unmapped


_CLINICAL_PROBE = {"patient_id": "probe", "images": {}}


def checked_clinical(
    values: dict[str, ClinicalValue],
) -> tuple[dict[str, ClinicalValue], list[str]]:
    """Return the clinical values the manifest accepts, and a warning for each value it refuses (dropped:
    an age of 150, a sex spelled unknowably)."""
    kept: dict[str, ClinicalValue] = {}
    warnings = []
    for key, value in values.items():
        try:
            PatientManifest.model_validate({**_CLINICAL_PROBE, "clinical": {key: value}})
        except ValidationError as error:
            message = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            warnings.append(f"clinical '{key}' = {value!r} left out: {message}")
            continue
        kept[key] = value
    return kept, warnings
