"""The truth of a task, derived from a canonical dataset (optionally one partition of a split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strokedata import load_dataset
from strokedata.executor import executor_for
from strokedata.labels import favourable_recanalization, patient_regions_job, slice_regions_job
from strokedata.manifest import Modality
from strokedata.splits import select_partition
from strokemodels.benchmark.files import Rows


def truth_from_dataset(
    task: str,
    root: str | Path,
    split: str | Path | None = None,
    partition: str | None = None,
    *,
    slice_level: bool = False,
    jobs: int | None = None,
) -> tuple[Rows, list[str]]:
    """Return (the truth of ``task`` as Rows, ids left out because they lack the label).

    occlusion: labels.occlusion_location; recanalization: 1 when mTICI >= 2c, else 0; core: the path
    of the CORE image; clot-regions: labels.regions or CLOT x ATLAS, or with ``slice_level`` the
    regions of every slice (third voxel axis) from CLOT x ATLAS. With ``split`` and ``partition``
    ('test', 'train', 'val', 'fold0'...: a fold's validation patients), only that partition's patients.
    """
    dataset = load_dataset(root)
    manifests = list(dataset)
    if split is not None:
        manifests = select_partition(manifests, split, partition or "")
    values: dict[str, Any]
    if task == "occlusion":
        values = {m.patient_id: m.labels.occlusion_location for m in manifests}
    elif task == "recanalization":
        favourable = {m.patient_id: favourable_recanalization(m.labels.mtici) for m in manifests}
        values = {pid: None if v is None else int(v) for pid, v in favourable.items()}
    elif task == "core":
        values = {
            m.patient_id: dataset.root / m.patient_id / m.images[Modality.CORE]
            if Modality.CORE in m.images
            else None
            for m in manifests
        }
    else:
        job = slice_regions_job if slice_level else patient_regions_job
        with executor_for(jobs, None) as runner:
            derived = dict(runner.map_unordered(job, [(dataset.root / m.patient_id, m) for m in manifests]))
        values = {
            pid: None
            if found is None
            else {z: tuple(int(v) for v in row) for z, row in enumerate(found)}
            if slice_level
            else tuple(found)
            for pid, found in derived.items()
        }
    unlabelled = sorted(pid for pid, value in values.items() if value is None)
    labelled = {pid: value for pid, value in sorted(values.items()) if value is not None}
    return Rows(labelled, slice_level=slice_level), unlabelled


def truth_csv(task: str, truth: Rows, folder: Path) -> str:
    """Return the truth of ``task`` as the CSV text ``strokebench score --truth`` reads: patient_id,label
    (occlusion, recanalization); patient_id,mask with paths relative to ``folder``, where the file goes
    (core); patient_id[,slice],region_00..region_14 (clot-regions)."""
    import os

    from strokedata.csvcells import csv_text
    from strokemodels.benchmark.files import REGION_COLUMNS

    if task == "core":
        rows = [(pid, os.path.relpath(path, folder)) for pid, path in truth.values.items()]
        return csv_text(["patient_id", "mask"], rows)
    if task == "clot-regions":
        if truth.slice_level:
            cells = [(pid, z, *bits) for pid, slices in truth.values.items() for z, bits in slices.items()]
            return csv_text(["patient_id", "slice", *REGION_COLUMNS], cells)
        return csv_text(["patient_id", *REGION_COLUMNS], [(pid, *bits) for pid, bits in truth.values.items()])
    return csv_text(["patient_id", "label"], list(truth.values.items()))
