"""Speed of the phantom generator: 20 tiny patients, and one realistic patient on one core.

Prints seconds for `generate_dataset` of 20 tiny patients with one and two jobs, then for one realistic
patient (generate, then write) in this process, with the peak resident memory and the size on disk.
Pin it to one core with `taskset -c 0` for the one-core figure (the two-job line is then meaningless).

Run: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/phantoms.py
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from strokedata.phantoms import generate_dataset, generate_patient, preset, write_patient


def main() -> None:
    """Time the tiny cohort (median of ``--repeats``) and one realistic patient, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phantom-bench-"))
    try:
        for jobs in (1, 2):
            times = []
            for repeat in range(arguments.repeats):
                start = time.perf_counter()
                generate_dataset(work / f"tiny-{jobs}-{repeat}", 20, preset("tiny"), seed=0, jobs=jobs)
                times.append(time.perf_counter() - start)
            print(
                f"20 tiny patients, --jobs {jobs}: {statistics.median(times):.2f} s (median of {len(times)})"
            )
        start = time.perf_counter()
        phantom = generate_patient(0, 0, preset("realistic"))
        generated = time.perf_counter()
        folder = write_patient(work / "realistic", phantom)
        written = time.perf_counter()
        size = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"1 realistic patient in this process: generate {generated - start:.1f} s, "
            f"write {written - generated:.1f} s, total {written - start:.1f} s; {size:.0f} MB on disk; "
            f"peak resident memory {peak:.0f} MB"
        )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
