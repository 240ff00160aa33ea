"""The time of each step of ``strokebench run`` (issue 19): the library call the command makes, with a
timestamp on every step line it prints, then a second call on the same folder (every step done).

Run: python benchmarks/run.py RUN_DIR [--phantoms 40] [--jobs 2]   (RUN_DIR new, or removed first)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from strokemodels.report import RunOptions, run_benchmark


def timed(options: RunOptions, label: str) -> float:
    """Run once, printing each step with the seconds since the start and since the step before;
    return the whole run's seconds."""
    start = time.perf_counter()
    last = start

    def say(text: str) -> None:
        nonlocal last
        now = time.perf_counter()
        print(f"{now - start:7.1f} (+{now - last:5.1f}) {text}", flush=True)
        last = now

    print(f"## {label}")
    run_benchmark(options, on_step=say)
    say("done")
    return time.perf_counter() - start


def main() -> None:
    """Time a new run and a rerun of it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--phantoms", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    arguments = parser.parse_args()
    if arguments.out.exists():
        parser.error(f"{arguments.out} exists: give a new run folder")
    options = RunOptions(out=arguments.out, phantoms=arguments.phantoms, jobs=arguments.jobs)
    first = timed(options, "a new run")
    again = timed(options, "the same run again (every step done)")
    print(f"new run {first:.1f} s, rerun {again:.1f} s")


if __name__ == "__main__":
    main()
