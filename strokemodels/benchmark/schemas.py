"""JSON Schemas of the benchmark's files: one CSV row of each predictions and truth file, the reports, a
zoo model's spec, a training run's record and the summary of ``strokebench run``.

A row schema describes one CSV row as an object whose cells are typed as a CSV reader with type
inference gives them (numbers as numbers); ``additionalProperties: false`` mirrors the refusal of
unknown columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strokedata.io import atomic_write_text
from strokemodels.benchmark.compare import CompareReport
from strokemodels.benchmark.files import Kind, columns
from strokemodels.benchmark.leaderboard import LeaderboardEntry
from strokemodels.benchmark.scoring import ScoreReport
from strokemodels.benchmark.tasks import TASKS, TaskCard
from strokemodels.report.summary import RunSummary
from strokemodels.spec import ModelSpec
from strokemodels.training.run import RunRecord

_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def _cell(task: TaskCard, kind: Kind, column: str) -> dict[str, Any]:
    """Return the schema of one column's cells."""
    if column == "patient_id":
        return {"type": "string", "minLength": 1}
    if column in ("prediction", "label") and task.name == "occlusion":
        return {"enum": task.classes}
    if column in ("prediction", "label"):
        return {"enum": [0, 1]}
    if column == "mask":
        return {"type": "string", "pattern": r"\.nii(\.gz)?$", "description": "path relative to the CSV"}
    if column == "slice":
        return {"type": "integer", "minimum": 0, "description": "index along the third voxel axis"}
    if column == "fold":
        return {"type": ["string", "integer"], "description": "cross-validation fold"}
    if column == "model":
        return {"type": "string", "minLength": 1, "description": "one leaderboard row per model"}
    if column.startswith("region_") and kind == "label":
        return {"enum": [0, 1]}
    return dict(_PROBABILITY)


def row_schema(task: TaskCard, kind: Kind) -> dict[str, Any]:
    """Return the JSON Schema of one CSV row of a ``kind`` ('prediction' or 'label') file of ``task``."""
    required, optional = columns(task, kind)
    what = "predictions" if kind == "prediction" else "truth"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{what} row, task {task.name}",
        "description": f"One CSV row of a {what} file of task {task.name}: {task.prediction_format}",
        "type": "object",
        "properties": {column: _cell(task, kind, column) for column in [*required, *optional]},
        "required": required,
        "additionalProperties": False,
    }


def benchmark_schemas() -> dict[str, dict[str, Any]]:
    """Return {file name: JSON Schema} of every benchmark file format."""
    schemas = {}
    for name, task in TASKS.items():
        schemas[f"predictions-{name}.schema.json"] = row_schema(task, "prediction")
        schemas[f"truth-{name}.schema.json"] = row_schema(task, "label")
    for file_name, model in (
        ("score-report.schema.json", ScoreReport),
        ("compare-report.schema.json", CompareReport),
        ("leaderboard-entry.schema.json", LeaderboardEntry),
        ("model-spec.schema.json", ModelSpec),
        ("run.schema.json", RunRecord),
        ("run-summary.schema.json", RunSummary),
    ):
        schemas[file_name] = model.model_json_schema(mode="serialization")
    return schemas


def export_benchmark_schemas(out_dir: str | Path) -> list[Path]:
    """Write every benchmark schema into ``out_dir`` (atomically) and return their paths."""
    written = []
    for name, schema in benchmark_schemas().items():
        path = Path(out_dir) / name
        atomic_write_text(path, json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
