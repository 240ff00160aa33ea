"""Shared by the benchmarks: datasets of phantoms generated once into benchmarks/data/, and timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from strokedata.phantoms import PhantomConfig, generate_dataset


def cached_dataset(root: Path, patients: int, config: PhantomConfig) -> Path:
    """Return the phantom dataset at ``root``, generating it first unless it is already complete."""
    if (root / "dataset.json").is_file() and len(list(root.glob("*/patient.json"))) == patients:
        return root
    if root.exists():
        raise SystemExit(f"{root} exists but is not a complete {patients}-patient dataset; remove it")
    return generate_dataset(root, patients, config, seed=0)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Return the median wall time of ``repeats`` calls of ``action``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
