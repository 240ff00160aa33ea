"""JSON Schema export of every file format the toolkit reads or writes."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from strokedata.io import atomic_write_text
from strokedata.manifest import DatasetCard, PatientManifest
from strokedata.splits.model import SplitFile
from strokedata.validation.report import ValidationReport

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "dataset.schema.json": DatasetCard,
    "patient.schema.json": PatientManifest,
    "validation-report.schema.json": ValidationReport,
    "split.schema.json": SplitFile,
}
"""Schema file name -> the pydantic model it is exported from."""


def schema_text(model: type[BaseModel]) -> str:
    """Return the JSON Schema of ``model`` as stable, indented JSON text ending in a newline."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def export_schemas(out_dir: str | Path) -> list[Path]:
    """Write every schema file into ``out_dir`` (atomically) and return their paths."""
    written = []
    for name, model in SCHEMA_MODELS.items():
        path = Path(out_dir) / name
        atomic_write_text(path, schema_text(model))
        written.append(path)
    return written
