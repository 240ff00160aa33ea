"""Tiny, valid canonical datasets for the corruption tests: every modality, hand-placed labels.

Smaller (16x16x8) and more predictable than the phantoms, so that each test can corrupt a known voxel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from strokedata.labels import regions_from_clot
from strokedata.manifest import DatasetCard, Labels, Modality, PatientManifest, Provenance

CTA_SHAPE = (16, 16, 8)
PERFUSION_SHAPE = (12, 12, 6)
CTP_FRAMES = 5
NCCT_SHAPE = (16, 16, 8)
LOCATIONS = ("ICA-T", "M1", "M2")
MTICI = ("0", "1", "2a", "2b", "2c", "3")
ALL_MODALITIES = [modality for modality in Modality if modality is not Modality.TTP]  # what pristine() writes


def _affine(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


CTA_AFFINE = _affine((0.5, 0.5, 1.0), (-4.0, -4.0, -4.0))
PERFUSION_AFFINE = _affine((1.0, 1.0, 2.0), (-6.0, -6.0, -6.0))
NCCT_AFFINE = _affine((0.5, 0.5, 1.0), (-4.0, -4.0, -4.0))


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write ``data`` as a NIfTI image with both sform and qform set to ``affine``."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    nib.save(image, path)


def _atlas(shape: tuple[int, int, int]) -> np.ndarray:
    """Return an atlas whose 14 territories tile the volume (7 per hemisphere), 0 at the border."""
    atlas = np.zeros(shape, dtype=np.uint8)
    x = shape[0]
    for side in range(2):
        for territory in range(7):
            xs = slice(1 + side * (x // 2 - 1), (side + 1) * (x // 2 - 1) + 1)
            ys = slice(1 + territory * 2, 3 + territory * 2)
            atlas[xs, ys, 1:-1] = 1 + side * 7 + territory
    return atlas


def build_patient(root: Path, index: int, *, with_regions: bool = True) -> PatientManifest:
    """Write patient ``p{index:03d}`` (all modalities, its labels coherent with its images)."""
    rng = np.random.default_rng(1000 + index)
    patient_id = f"p{index:03d}"
    folder = root / patient_id
    folder.mkdir(parents=True)
    occluded = index % 4 != 3
    side = "L" if index % 2 == 0 else "R"
    atlas = _atlas(CTA_SHAPE)
    clot = np.zeros(CTA_SHAPE, dtype=np.uint8)
    if occluded:
        x0 = 3 if side == "L" else CTA_SHAPE[0] - 5
        y0 = 2 + 2 * (index % 6)
        clot[x0 : x0 + 2, y0 : y0 + 2, 3:5] = 1
        clot[x0, y0, 3] = 2
    ncct = rng.normal(35, 5, NCCT_SHAPE).astype(np.int16)
    ncct[[0, -1], :, :] = -1000
    brain = np.zeros(NCCT_SHAPE, dtype=np.uint8)
    brain[2:-2, 2:-2, 1:-1] = 1
    cta = rng.normal(40, 8, CTA_SHAPE).astype(np.int16)
    cta[:, [0, -1], :] = -1000
    images: dict[Modality, np.ndarray] = {
        Modality.NCCT: ncct,
        Modality.BRAIN_MASK: brain,
        Modality.CTA: cta,
        Modality.MCTA1: cta + 5,
        Modality.MCTA2: cta + 10,
        Modality.MCTA3: cta + 15,
        Modality.SPIRAL: rng.uniform(0, 1, CTA_SHAPE).astype(np.float32),
        Modality.ATLAS: atlas,
        Modality.CLOT: clot,
        Modality.CBF: rng.uniform(10, 80, PERFUSION_SHAPE).astype(np.float32),
        Modality.CBV: rng.uniform(1, 6, PERFUSION_SHAPE).astype(np.float32),
        Modality.MTT: rng.uniform(2, 12, PERFUSION_SHAPE).astype(np.float32),
        Modality.TMAX: rng.uniform(0, 15, PERFUSION_SHAPE).astype(np.float32),
        Modality.CORE: (rng.uniform(0, 1, PERFUSION_SHAPE) > 0.9).astype(np.uint8),
        Modality.CTP: rng.normal(40, 10, (*PERFUSION_SHAPE, CTP_FRAMES)).astype(np.int16),
    }
    paths = {}
    for modality, data in images.items():
        affine = {Modality.NCCT: NCCT_AFFINE, Modality.BRAIN_MASK: NCCT_AFFINE}.get(modality)
        if affine is None:
            perfusion = data.shape[:3] == PERFUSION_SHAPE
            affine = PERFUSION_AFFINE if perfusion else CTA_AFFINE
        name = f"{modality.value.lower()}.nii.gz"
        save(folder / name, data, affine)
        paths[modality] = name
    regions = regions_from_clot(clot, atlas).tolist() if with_regions else None
    manifest = PatientManifest(
        patient_id=patient_id,
        site=f"site{index % 2}",
        images=paths,
        labels=Labels(
            occlusion_location=LOCATIONS[index % 3] if occluded else None,
            occlusion_side=side if occluded else None,
            mtici=MTICI[index % 6],
            regions=regions,
        ),
        clinical={"age": 50 + index, "sex": "F" if index % 2 else "M", "onset_to_imaging_min": 60.5},
        provenance=Provenance(source="tests.builders", original_ids={"case": str(index)}),
    )
    (folder / "patient.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def build_dataset(root: Path, n_patients: int = 3) -> Path:
    """Write a valid dataset of ``n_patients`` tiny patients into ``root`` and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    card = DatasetCard(
        name="tiny-test-dataset",
        version="1.0",
        description="Tiny synthetic dataset built by the strokebench tests",
        license="CC0-1.0",
        modalities=ALL_MODALITIES,
    )
    (root / "dataset.json").write_text(card.model_dump_json(indent=2))
    for index in range(n_patients):
        build_patient(root, index)
    return root


def edit_json(path: Path, changes: dict[str, object]) -> None:
    """Rewrite a JSON file with keys changed; a dotted key ('labels.mtici') sets a nested field."""
    content = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = content
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    path.write_text(json.dumps(content, indent=2))


def tree_digest(root: Path) -> str:
    """Return the sha256 of every file under ``root`` (relative names and bytes): equal means untouched."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()
