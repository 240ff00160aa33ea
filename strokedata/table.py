"""The dataset as a table: one row per patient with manifest fields, derived labels, shapes and spacings.

Derived labels sit beside the labels they can disagree with: the occluded side by the Tmax rule of 000
beside the labelled side (``side_agrees``), the clot regions from CLOT x ATLAS beside nothing when the
manifest gives none, the core volume from CORE.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strokedata.csvcells import neutralise
from strokedata.dataset import load_dataset
from strokedata.errors import StrokedataError
from strokedata.executor import Executor, Progress, executor_for, map_reporting
from strokedata.io import MAX_VOXELS, ImageReadError, read_header, read_volume
from strokedata.labels import (
    core_volume_ml,
    favourable_recanalization,
    occluded_side_from_tmax,
    occlusion_class_index,
    patient_regions,
)
from strokedata.manifest import N_REGIONS, Modality, PatientManifest

if TYPE_CHECKING:
    import pandas as pd

REGION_COLUMNS = [f"region_{k:02d}" for k in range(N_REGIONS)]
"""Columns of the clot-region vector."""
FIXED_COLUMNS = [
    "patient_id",
    "site",
    "occlusion_location",
    "occlusion_class",
    "occlusion_side",
    "mtici",
    "favourable_recanalization",
    *REGION_COLUMNS,
    "core_volume_ml",
    "occlusion_side_tmax",
    "side_agrees",
]
"""The columns every table starts with, in order; clinical_* and geometry columns follow."""


class TableError(StrokedataError):
    """A patient's images cannot be read to build its row; the message names the patient and file."""


def _geometry(folder: Path, manifest: PatientManifest) -> dict[str, str]:
    """Return '{MODALITY}_shape' and '{MODALITY}_spacing_mm' cells ('64x64x16', '3.4x3.4x10') per image."""
    cells = {}
    for modality, relative in manifest.images.items():
        header = read_header(folder / relative)
        spacing = np.sqrt((header.affine[:3, :3] ** 2).sum(axis=0))
        cells[f"{modality.value}_shape"] = "x".join(str(n) for n in header.shape)
        cells[f"{modality.value}_spacing_mm"] = "x".join(f"{s:.4g}" for s in spacing)
    return cells


def _derived(folder: Path, manifest: PatientManifest) -> dict[str, Any]:
    """Return the labels derived from images: clot regions, core volume, Tmax side and its agreement."""
    labels = manifest.labels
    row: dict[str, Any] = {}
    regions = patient_regions(folder, manifest)
    cells: list[int | None] = [None] * N_REGIONS if regions is None else list(regions)
    row.update(dict(zip(REGION_COLUMNS, cells, strict=True)))
    core_volume = tmax_side = None
    if Modality.CORE in manifest.images:
        core = read_volume(folder / manifest.images[Modality.CORE], MAX_VOXELS)
        core_volume = round(core_volume_ml(core.scaled(), core.header.affine), 6)
    if Modality.TMAX in manifest.images:
        tmax = read_volume(folder / manifest.images[Modality.TMAX], MAX_VOXELS)
        tmax_side = occluded_side_from_tmax(np.asarray(tmax.scaled(), dtype=np.float64), tmax.header.affine)
    row["core_volume_ml"] = core_volume
    row["occlusion_side_tmax"] = tmax_side
    known = labels.occlusion_side in ("L", "R") and tmax_side is not None
    row["side_agrees"] = (labels.occlusion_side == tmax_side) if known else None
    return row


def patient_row(job: tuple[Path, PatientManifest]) -> dict[str, Any]:
    """Return one patient's row: manifest fields, derived labels, clinical scalars, image geometry.

    Raises TableError naming the patient and the file when an image cannot be read.
    """
    folder, manifest = job
    labels = manifest.labels
    row: dict[str, Any] = {
        "patient_id": manifest.patient_id,
        "site": manifest.site,
        "occlusion_location": labels.occlusion_location,
        "occlusion_class": occlusion_class_index(labels.occlusion_location),
        "occlusion_side": labels.occlusion_side,
        "mtici": labels.mtici,
        "favourable_recanalization": favourable_recanalization(labels.mtici),
    }
    try:
        row.update(_derived(folder, manifest))
        row.update({f"clinical_{key}": value for key, value in sorted(manifest.clinical.items())})
        row.update(_geometry(folder, manifest))
    except (ImageReadError, OSError, ValueError) as error:
        raise TableError(f"{manifest.patient_id}: {error}; run `strokedata validate` to see why") from None
    return row


def dataset_table(
    root: str | Path,
    *,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Return the dataset as a pandas DataFrame, one row per patient sorted by id.

    Columns: patient_id, site, occlusion_location, occlusion_class (0 ICA-T, 1 M1, 2 M2),
    occlusion_side, mtici, favourable_recanalization (mTICI >= 2c), region_00..region_14,
    core_volume_ml, occlusion_side_tmax (rule of 000) and side_agrees, clinical_* and, per modality,
    *_shape and *_spacing_mm. Missing values are empty (pandas NA). ``progress`` hears of each patient
    read (phase 'table'). Raises TableError for an
    unreadable image and DatasetInvalidError for invalid manifests.
    """
    import pandas as pd

    dataset = load_dataset(root)
    items = [(dataset.root / m.patient_id, m) for m in dataset]
    with executor_for(jobs, executor) as runner:
        rows = sorted(
            map_reporting(runner, patient_row, items, "table", progress),
            key=lambda row: str(row["patient_id"]),
        )
    clinical = sorted({key for row in rows for key in row if key.startswith("clinical_")})
    geometry = [
        f"{modality.value}_{what}"
        for modality in Modality
        for what in ("shape", "spacing_mm")
        if any(f"{modality.value}_{what}" in row for row in rows)
    ]
    table = pd.DataFrame(rows, columns=[*FIXED_COLUMNS, *clinical, *geometry])
    return table.convert_dtypes()


def table_bytes(table: pd.DataFrame, suffix: str) -> bytes:
    """Return the table encoded as CSV (``suffix`` '.csv', missing values empty, text cells that a
    spreadsheet would run as formulas neutralised: strokedata.csvcells) or Parquet ('.parquet').

    Raises TableError when Parquet is asked for and pyarrow is not installed.
    """
    if suffix == ".csv":
        safe = table.rename(columns=neutralise).map(
            lambda cell: neutralise(cell) if isinstance(cell, str) else cell
        )
        return str(safe.to_csv(index=False, lineterminator="\n")).encode()
    try:
        import pyarrow  # noqa: F401  (pandas writes Parquet through it)
    except ImportError:
        raise TableError(
            "writing Parquet needs pyarrow: pip install 'strokebench[parquet]', or write .csv"
        ) from None
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()
