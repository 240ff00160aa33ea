"""The benchmarks' datasets: phantoms generated once into benchmarks/data/ and reused."""

from __future__ import annotations

from pathlib import Path

from strokedata.phantoms import PhantomConfig, generate_dataset


def cached_dataset(root: Path, patients: int, config: PhantomConfig) -> Path:
    """Return the phantom dataset at ``root``, generating it first unless it is already complete."""
    if (root / "dataset.json").is_file() and len(list(root.glob("*/patient.json"))) == patients:
        return root
    if root.exists():
        raise SystemExit(f"{root} exists but is not a complete {patients}-patient dataset; remove it")
    return generate_dataset(root, patients, config, seed=0)
