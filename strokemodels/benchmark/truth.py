"""The truth of a task, derived from a canonical dataset (optionally one partition of a split)."""

from __future__ import annotations

from pathlib import Path

from strokedata import load_dataset
from strokedata.executor import executor_for
from strokedata.labels import favourable_recanalization, patient_regions_job
from strokedata.splits import read_split
from strokemodels.benchmark.files import PredictionFileError


def truth_from_dataset(
    task: str,
    root: str | Path,
    split: str | Path | None = None,
    partition: str | None = None,
    jobs: int | None = None,
) -> tuple[dict[str, object], list[str]]:
    """Return ({patient_id: truth} of ``task``, ids left out because they lack the label).

    occlusion: labels.occlusion_location; recanalization: 1 when mTICI >= 2c, else 0; clot-regions:
    labels.regions or CLOT x ATLAS. With ``split`` and ``partition`` ('test', 'train', 'val',
    'fold0'...: a fold's validation patients), only that partition's patients.
    """
    dataset = load_dataset(root)
    manifests = list(dataset)
    if split is not None:
        partitions = read_split(split).partitions()
        if partition not in partitions:
            raise PredictionFileError(
                f"--partition '{partition}' is not in {split}; choose one of {', '.join(sorted(partitions))}"
            )
        chosen = set(partitions[partition])
        manifests = [m for m in manifests if m.patient_id in chosen]
    values: dict[str, object | None]
    if task == "occlusion":
        values = {m.patient_id: m.labels.occlusion_location for m in manifests}
    elif task == "recanalization":
        values = {m.patient_id: favourable_recanalization(m.labels.mtici) for m in manifests}
        values = {pid: None if v is None else int(bool(v)) for pid, v in values.items()}
    elif task == "clot-regions":
        with executor_for(jobs, None) as runner:
            values = dict(
                runner.map_unordered(
                    patient_regions_job, [(dataset.root / m.patient_id, m) for m in manifests]
                )
            )
    else:
        raise PredictionFileError(f"the truth of task '{task}' cannot be derived from a dataset yet")
    unlabelled = sorted(pid for pid, value in values.items() if value is None)
    return {pid: value for pid, value in sorted(values.items()) if value is not None}, unlabelled
