"""Shared by the benchmarks: datasets of phantoms generated once into benchmarks/data/, and timing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
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


_WRAPPER = """
import json, resource, subprocess, sys
tree, program, *arguments = sys.argv[1:]
code = ("import sys; sys.path.insert(0, %r); sys.argv = [%r, *sys.argv[1:]]; "
        "from cli.%s_app import main; main()") % (tree, program, program)
done = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr, "peak": peak}))
"""


def run(tree: Path, program: str, *arguments: object) -> dict[str, object]:
    """Return exit status (``code``), output (``out``, ``err``) and peak memory (``peak``, bytes) of
    ``strokedata`` or ``strokebench`` run from the source ``tree`` (first on the path) in a new process."""
    wrapped = [sys.executable, "-c", _WRAPPER, str(tree), program, *map(str, arguments)]
    environment = {**os.environ, "CI": "1", "COLUMNS": "200"}
    result: dict[str, object] = json.loads(
        subprocess.run(wrapped, capture_output=True, text=True, env=environment).stdout
    )
    return result
