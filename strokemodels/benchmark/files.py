"""Reading predictions and truth CSV files of the classification tasks, every problem reported at once."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from strokedata.errors import StrokedataError
from strokedata.manifest import N_REGIONS
from strokemodels.benchmark.tasks import TaskCard

REGION_COLUMNS = [f"region_{k:02d}" for k in range(N_REGIONS)]


class PredictionFileError(StrokedataError):
    """A predictions or truth file is unusable; the message lists every problem with its row."""


Row = dict[str, object]
"""patient_id -> 'label' (occlusion), (probability, prediction or None) (recanalization) or a 0/1 list."""


def _number(text: str, where: str, problems: list[str]) -> float | None:
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: '{text}' is not a number")
        return None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        problems.append(f"{where}: {text} is NaN or outside [0, 1]")
        return None
    return value


def read_rows(path: Path, task: TaskCard, column: str, threshold: float) -> dict[str, object]:
    """Return {patient_id: value} from a CSV of ``task`` whose value column is ``column`` ('prediction'
    in predictions files, 'label' in truth files); raise PredictionFileError listing every problem."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionFileError(f"cannot read {path}: {error}") from None
    problems: list[str] = []
    if task.name == "clot-regions":
        required = ["patient_id", *REGION_COLUMNS]
    elif task.name == "recanalization" and column == "prediction":
        required = ["patient_id", "probability"]
    else:
        required = ["patient_id", column]
    absent = [name for name in required if name not in header]
    if absent:
        raise PredictionFileError(
            f"{path}: missing column(s) {', '.join(absent)}; the task expects {task.prediction_format}"
        )
    values: dict[str, object] = {}
    for number, row in enumerate(rows, start=2):
        where = f"{path.name} line {number}"
        pid = (row.get("patient_id") or "").strip()
        if not pid:
            problems.append(f"{where}: empty patient_id")
            continue
        if pid in values:
            problems.append(f"{where}: patient {pid} appears twice")
            continue
        values[pid] = _value(task, row, column, threshold, where, problems)
    if problems:
        shown = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise PredictionFileError(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")
    return values


def _value(
    task: TaskCard, row: dict[str, str], column: str, threshold: float, where: str, problems: list[str]
) -> object:
    if task.name == "occlusion":
        label = (row.get(column) or "").strip()
        if label not in task.classes:
            problems.append(f"{where}: '{label}' is not one of {', '.join(task.classes)}")
        return label
    if task.name == "recanalization":
        if column == "label":
            label = (row.get("label") or "").strip()
            if label not in ("0", "1"):
                problems.append(f"{where}: label '{label}' must be 0 or 1")
            return int(label) if label in ("0", "1") else None
        probability = _number((row.get("probability") or "").strip(), where, problems)
        decided = (row.get("prediction") or "").strip()
        if decided and decided not in ("0", "1"):
            problems.append(f"{where}: prediction '{decided}' must be 0 or 1")
        if probability is None:
            return None
        return (probability, int(decided) if decided in ("0", "1") else int(probability >= threshold))
    bits = []
    for name in REGION_COLUMNS:
        value = _number((row.get(name) or "").strip(), f"{where} {name}", problems)
        bits.append(0 if value is None else int(value >= threshold) if column == "prediction" else int(value))
        if column == "label" and value not in (0.0, 1.0, None):
            problems.append(f"{where} {name}: truth must be 0 or 1")
    return bits
