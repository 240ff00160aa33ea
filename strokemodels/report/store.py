"""The run folder's memory of finished steps: each step is keyed by what it depends on, so that a rerun
skips what is done and redoes what changed.

A dataset's key is its files' relative paths, sizes and modification times (``folder_key``: a stat of
each file, not a read); a step's key hashes its name, its parameters and its inputs' keys. A finished
step leaves ``work/steps/<step>.json`` holding its key and what it produced; the outputs whose place
depends on their inputs (training runs, preprocessed datasets) live under ``work/<kind>/<key>/``, so a
changed input gets a new folder and never meets a run of other data. Keys never reach the report or
the summary: they hold modification times.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from strokedata import __version__
from strokedata.io import atomic_write_text

WORK = "work"


def digest(parts: Mapping[str, Any]) -> str:
    """Return the sha256 (hex, 16 characters) of ``parts`` and the tool's version as canonical JSON
    (results of another version are not reused)."""
    text = json.dumps({**parts, "version": __version__}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder_key(root: Path) -> str:
    """Return the key of the files under ``root``: their relative paths, sizes and modification times,
    in sorted order (a changed, added or removed file changes it)."""
    entries = []
    for folder, directories, files in os.walk(root):
        directories.sort()
        for name in sorted(files):
            path = Path(folder) / name
            status = path.stat()
            entries.append([path.relative_to(root).as_posix(), status.st_size, status.st_mtime_ns])
    return digest({"files": entries})


def file_key(path: Path) -> str:
    """Return the sha256 (16 hex characters) of a small file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class StepStore:
    """The finished steps of one run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.steps = run_dir / WORK / "steps"

    def folder(self, kind: str, key: str) -> Path:
        """Return the work folder of a ``kind`` of output made with ``key``."""
        return self.run_dir / WORK / kind / key

    def done(self, step: str, key: str) -> dict[str, Any] | None:
        """Return what ``step`` recorded when it finished with ``key``; None when it has not."""
        marker = self.steps / f"{step}.json"
        if not marker.is_file():
            return None
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        return recorded["result"] if recorded.get("key") == key else None

    def finish(self, step: str, key: str, result: Mapping[str, Any]) -> None:
        """Record that ``step`` finished with ``key`` and produced ``result`` (JSON), atomically."""
        self.steps.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": key, "result": result}, sort_keys=True, indent=1)
        atomic_write_text(self.steps / f"{step}.json", text + "\n")

    def once(
        self, step: str, key: str, work: Callable[[], dict[str, Any]], unless_missing: Path | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Return (``work()``'s result, True), recording it, or (the recorded result, False) when
        ``step`` already finished with ``key`` and its output ``unless_missing`` (if given) is there."""
        recorded = self.done(step, key)
        if recorded is not None and (unless_missing is None or unless_missing.exists()):
            return recorded, False
        result = work()
        self.finish(step, key, result)
        return result, True
