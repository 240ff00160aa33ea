"""Speed of splitting: 100,000 synthetic manifest rows, stratified, a 15% test set and 5 folds.

Times `strokedata.splits.make.split_rows` (seeded order keys, exact per-class allocation, the split
file's lists and hashes) and the JSON serialisation, median of ``--repeats``; the grouped and the
multi-label greedy on 10,000 rows for comparison.

Run: python benchmarks/splits.py
"""

from __future__ import annotations

import argparse

import numpy as np
from common import median_seconds

from strokedata.splits import SplitParameters
from strokedata.splits.make import Table, split_rows


def _table(rows: int, groups: bool, regions: bool) -> Table:
    rng = np.random.default_rng(0)
    strata = rng.choice(["ICA-T", "M1", "M2"], size=rows, p=[0.148, 0.588, 0.264]).tolist()
    return Table(
        ids=[f"p{i:06d}" for i in range(rows)],
        strata=strata,
        regions=(rng.uniform(size=(rows, 15)) < 0.08).astype(np.int64) if regions else None,
        groups=[f"site{k}" for k in rng.integers(0, rows // 50, rows)] if groups else None,
    )


def main() -> None:
    """Print the seconds each split takes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    cases = [
        ("stratified, 100,000 rows", 100_000, None, False, False),
        ("grouped by 200 sites, 10,000 rows", 10_000, "site", True, False),
        ("multi-label regions, 10,000 rows", 10_000, None, False, True),
    ]
    for name, rows, group_by, groups, regions in cases:
        table = _table(rows, groups, regions)
        parameters = SplitParameters(
            stratify=["occlusion"] + (["regions"] if regions else []),
            test_size=0.15,
            folds=5,
            val_size=None,
            group_by=group_by,
            seed=0,
        )

        def run(table: Table = table, parameters: SplitParameters = parameters) -> None:
            split_rows(table, parameters, "0" * 64, []).model_dump_json()

        seconds = median_seconds(run, arguments.repeats)
        print(f"{name}: {seconds:.3f} s (median of {arguments.repeats})")


if __name__ == "__main__":
    main()
