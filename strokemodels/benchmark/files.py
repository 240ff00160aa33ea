"""Reading predictions and truth CSV files of the four tasks, every problem reported at once.

A file holds one row per patient (per patient and slice for slice-level clot-regions). Predictions
files may add a ``fold`` column (cross-validation) and a ``model`` column (several models in one
file). Unknown columns are refused: a misspelt column would otherwise be ignored silently. Cells that
the toolkit's own CSV writers neutralised against formula injection (a leading apostrophe,
strokedata.csvcells) are read back as their original text.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from strokedata.csvcells import restore
from strokedata.manifest import N_REGIONS
from strokedata.outputs import file_kind
from strokemodels.benchmark.errors import PredictionFileError
from strokemodels.benchmark.tasks import TaskCard

REGION_COLUMNS = [f"region_{k:02d}" for k in range(N_REGIONS)]
_SHOWN = 30  # problems listed in one message
MAX_TABLE_BYTES = 512 * 2**20
"""Largest predictions or truth CSV read (512 MiB): a bound on the memory that scoring a file takes."""
Kind = Literal["prediction", "label"]


@dataclass(frozen=True)
class Rows:
    """One model's rows of a predictions file, or the rows of a truth, by patient id.

    ``values``: occlusion, a class name; recanalization, the 0/1 decision (the label in a truth);
    clot-regions, a tuple of 15 0/1 values, or {slice: tuple} at slice level; core, the mask's path.
    ``scores``: the probabilities behind a decision (recanalization: (p,); occlusion: one per class),
    where given. ``folds``: each patient's fold, where given.
    """

    values: dict[str, Any]
    scores: dict[str, tuple[float, ...]] = field(default_factory=dict)
    folds: dict[str, str] = field(default_factory=dict)
    slice_level: bool = False


def probability_columns(task: TaskCard) -> list[str]:
    """Return the optional per-class probability columns of the occlusion task ('p_ICA-T', ...)."""
    return [f"p_{name}" for name in task.classes] if task.name == "occlusion" else []


def columns(task: TaskCard, kind: Kind) -> tuple[list[str], list[str]]:
    """Return (required, optional) columns of a ``kind`` file of ``task``."""
    extra = ["fold", "model"] if kind == "prediction" else []
    if task.name == "clot-regions":
        return ["patient_id", *REGION_COLUMNS], ["slice", *extra]
    if task.name == "core":
        return ["patient_id", "mask"], extra
    if task.name == "recanalization" and kind == "prediction":
        return ["patient_id", "probability"], ["prediction", *extra]
    probabilities = probability_columns(task) if kind == "prediction" else []
    return ["patient_id", kind], probabilities + extra


def _bounded_lines(handle: TextIO, path: Path) -> Iterator[str]:
    """Yield the lines of an open text file; raise PredictionFileError once more than MAX_TABLE_BYTES
    characters were read (a line without end included), so that memory stays bounded."""
    remaining = MAX_TABLE_BYTES
    while line := handle.readline(remaining + 1):
        remaining -= len(line)
        if remaining < 0:
            raise PredictionFileError(_too_large(path))
        yield line


def _too_large(path: Path) -> str:
    return (
        f"{path} holds more than {MAX_TABLE_BYTES // 2**20} MiB; larger predictions and truth files are "
        "refused (docs/benchmark.md): split it by model or by fold and score each part"
    )


def _check_header(path: Path, header: list[str], task: TaskCard, kind: Kind) -> None:
    """Raise PredictionFileError when the header repeats, lacks or adds columns for a ``kind`` file."""
    required, optional = columns(task, kind)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise PredictionFileError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    absent = [name for name in required if name not in header]
    unknown = [name for name in header if name not in required and name not in optional]
    if absent or unknown:
        what = [f"missing column(s) {', '.join(absent)}"] * bool(absent)
        what += [f"unknown column(s) {', '.join(unknown)}"] * bool(unknown)
        raise PredictionFileError(
            f"{path}: {'; '.join(what)}; a {'predictions' if kind == 'prediction' else 'truth'} file of task "
            f"{task.name} has the columns {', '.join(required)} and optionally "
            f"{', '.join(optional) or 'nothing else'}"
        )
    probabilities = [name for name in probability_columns(task) if name in header]
    if probabilities and len(probabilities) != len(task.classes):
        raise PredictionFileError(
            f"{path}: give all of {', '.join(probability_columns(task))} or none "
            f"(found {', '.join(probabilities)})"
        )


def read_table(path: Path, task: TaskCard, kind: Kind, threshold: float = 0.5) -> dict[str | None, Rows]:
    """Return {model: Rows} from a predictions (``kind`` 'prediction') or truth ('label') CSV of ``task``;
    the key is None without a model column. Raises PredictionFileError listing every problem.

    Rows are checked as they are read, never all held at once; a file of more than MAX_TABLE_BYTES is
    refused (before reading, when its size is known).
    """
    try:
        if path.is_file() and path.stat().st_size > MAX_TABLE_BYTES:
            raise PredictionFileError(_too_large(path))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(_bounded_lines(handle, path))
            header = [restore(name.strip()) for name in reader.fieldnames or []]
            reader.fieldnames = header
            _check_header(path, header, task, kind)
            reading = _Reader(path, task, kind, threshold, path.parent, "slice" in header)
            for row in reader:
                reading.add(reader.line_num, row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PredictionFileError(f"cannot read {path}: {error}") from None
    return reading.finish()


class _Reader:
    """Collects the rows of one file, by model, and every problem met on the way."""

    def __init__(
        self, path: Path, task: TaskCard, kind: Kind, threshold: float, folder: Path, slice_level: bool
    ) -> None:
        self.path, self.task, self.kind, self.threshold, self.folder = path, task, kind, threshold, folder
        self.slice_level = slice_level
        self.name = path.name
        self.score_columns = ["probability"] if task.name == "recanalization" else probability_columns(task)
        self.problems: list[str] = []
        self.tables: dict[str | None, Rows] = {}

    def add(self, number: int, row: dict[str, str | None]) -> None:
        """Check one row (line ``number``) and store its value under its model and patient."""
        where = f"{self.name} line {number}"
        text = {key: restore((value or "").strip()) for key, value in row.items() if key is not None}
        if None in row:
            self.problems.append(f"{where}: more fields than columns")
            return
        pid = text.get("patient_id", "")
        if not pid:
            self.problems.append(f"{where}: empty patient_id")
            return
        model = text.get("model")
        if model == "":
            self.problems.append(f"{where}: empty model")
            return
        if model not in self.tables:
            self.tables[model] = Rows({}, slice_level=self.slice_level)
        table = self.tables[model]
        scores = self._scores(text, where)
        value = self._value(text, scores, where)
        if self.slice_level:
            slice_index = self._slice(text.get("slice", ""), where)
            slices = table.values.setdefault(pid, {})
            if slice_index in slices:
                self.problems.append(f"{where}: patient {pid} slice {slice_index} appears twice")
                return
            slices[slice_index] = value
        elif pid in table.values:
            self.problems.append(
                f"{where}: patient {pid} appears twice" + (f" for model {model}" if model else "")
            )
            return
        else:
            table.values[pid] = value
        self._fold(table, pid, text, where)
        if scores is not None:
            table.scores[pid] = scores

    def finish(self) -> dict[str | None, Rows]:
        """Return the tables, or raise PredictionFileError with every problem found."""
        if self.problems:
            shown = "\n  ".join(self.problems[:_SHOWN])
            more = f"\n  ... and {len(self.problems) - _SHOWN} more" if len(self.problems) > _SHOWN else ""
            raise PredictionFileError(f"{self.path}: {len(self.problems)} problem(s):\n  {shown}{more}")
        if not self.tables:
            raise PredictionFileError(f"{self.path}: the file holds no rows")
        return self.tables

    def _fold(self, table: Rows, pid: str, text: dict[str, str], where: str) -> None:
        if "fold" not in text:
            return
        fold = text["fold"]
        if not fold:
            self.problems.append(f"{where}: empty fold")
        elif table.folds.setdefault(pid, fold) != fold:
            self.problems.append(f"{where}: patient {pid} lies in folds {table.folds[pid]} and {fold}")

    def _slice(self, text: str, where: str) -> int:
        if not (text.isascii() and text.isdigit()):
            self.problems.append(f"{where}: slice '{text}' is not a non-negative integer")
            return -1
        return int(text)

    def _number(self, text: str, where: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            self.problems.append(f"{where}: '{text}' is not a number")
            return None
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            self.problems.append(f"{where}: {text} is NaN or outside [0, 1]")
            return None
        return value

    def _scores(self, text: dict[str, str], where: str) -> tuple[float, ...] | None:
        names = self.score_columns
        if self.kind != "prediction" or not names or names[0] not in text:
            return None
        values = [self._number(text[name], f"{where} {name}") for name in names]
        if any(value is None for value in values):
            return None
        scores = tuple(float(value) for value in values if value is not None)
        if len(scores) > 1 and abs(sum(scores) - 1.0) > 0.01:
            self.problems.append(
                f"{where}: the class probabilities sum to {sum(scores):.4f}, not 1; give softmax outputs"
            )
        return scores

    def _value(self, text: dict[str, str], scores: tuple[float, ...] | None, where: str) -> Any:
        task, kind = self.task, self.kind
        if task.name == "occlusion":
            label = text[kind]
            if label not in task.classes:
                self.problems.append(f"{where}: '{label}' is not one of {', '.join(task.classes)}")
            return label
        if task.name == "recanalization":
            return self._decision(text, scores, where)
        if task.name == "core":
            return self._mask(text["mask"], where)
        bits = []
        for name in REGION_COLUMNS:
            value = self._number(text[name], f"{where} {name}")
            if kind == "label" and value not in (0.0, 1.0, None):
                self.problems.append(f"{where} {name}: truth must be 0 or 1")
            decided = value is not None and (
                value >= self.threshold if kind == "prediction" else value == 1.0
            )
            bits.append(int(decided))
        return tuple(bits)

    def _decision(self, text: dict[str, str], scores: tuple[float, ...] | None, where: str) -> int | None:
        if self.kind == "label":
            label = text["label"]
            if label not in ("0", "1"):
                self.problems.append(f"{where}: label '{label}' must be 0 or 1")
            return int(label) if label in ("0", "1") else None
        decided = text.get("prediction", "")
        if decided and decided not in ("0", "1"):
            self.problems.append(f"{where}: prediction '{decided}' must be 0 or 1")
            return None
        if decided:
            return int(decided)
        return None if scores is None else int(scores[0] >= self.threshold)

    def _mask(self, text: str, where: str) -> Path | None:
        if not text:
            self.problems.append(f"{where}: empty mask path")
            return None
        path = self.folder / text
        if not text.endswith((".nii", ".nii.gz")):
            self.problems.append(f"{where}: mask '{text}' is not a NIfTI file (.nii or .nii.gz)")
        elif not path.is_file():
            kind = file_kind(path.stat().st_mode) if path.exists() else None
            state = f"is {kind}, not a regular file" if kind else "does not exist"
            self.problems.append(f"{where}: mask '{text}' {state} (paths are relative to the CSV)")
        return path
