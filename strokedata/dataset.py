"""``load_dataset(path)``: a dataset's card and patient manifests, checked, as one object."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from strokedata.errors import DatasetInvalidError, DatasetNotFoundError
from strokedata.manifest import DatasetCard, Modality, PatientManifest
from strokedata.safetext import printable
from strokedata.validation.manifest_checks import (
    duplicate_id_findings,
    load_card,
    patient_folders,
    plan_patient,
)


@dataclass(frozen=True)
class Dataset:
    """A canonical dataset: its root, its card and its manifests keyed by patient id (sorted)."""

    root: Path
    card: DatasetCard
    patients: dict[str, PatientManifest]

    def __len__(self) -> int:
        """Return the number of patients."""
        return len(self.patients)

    def __iter__(self) -> Iterator[PatientManifest]:
        """Yield the manifests in patient-id order."""
        return iter(self.patients.values())

    @property
    def ids(self) -> list[str]:
        """Return the sorted patient ids."""
        return list(self.patients)

    def image_path(self, patient_id: str, modality: Modality) -> Path:
        """Return the path of a patient's image; raise KeyError when the patient lacks that modality."""
        manifest = self.patients[patient_id]
        if modality not in manifest.images:
            raise KeyError(f"patient {patient_id} has no {modality.value} image")
        return self.root / patient_id / manifest.images[modality]


def load_dataset(path: str | Path) -> Dataset:
    """Return the dataset at ``path`` after checking its card and manifests (not its voxels).

    Raises DatasetNotFoundError when ``path`` is not a folder and DatasetInvalidError, listing every
    error, when the card or a manifest is invalid or a referenced file is missing; run
    ``strokedata validate`` for the full report, voxels included.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{root} is not a folder; give the dataset root (the folder with dataset.json)"
        )
    card, findings = load_card(root)
    plans = [plan_patient(root, folder, card) for folder in patient_folders(root)]
    for plan in plans:
        findings.extend(plan.findings)
    findings.extend(duplicate_id_findings(plans))
    errors = [finding for finding in findings if finding.severity == "error"]
    if errors or card is None:
        shown = "\n".join(
            f"  {f.code} {printable(f.patient_id or '-')} {printable(f.file or '-')}: {printable(f.message)}"
            for f in errors[:20]
        )
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DatasetInvalidError(
            f"{root} is not a valid dataset ({len(errors)} errors); run `strokedata validate {root}`:\n"
            f"{shown}{more}",
            errors,
        )
    patients = {plan.folder: plan.manifest for plan in plans if plan.manifest is not None}
    return Dataset(root=root, card=card, patients=patients)
