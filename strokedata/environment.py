"""The versions of the toolkit and of the stack it runs on, for bug reports and result provenance."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

STACK = (
    "strokebench",
    "torch",
    "torchio",
    "numpy",
    "scipy",
    "pandas",
    "nibabel",
    "isal",
    "simpleitk",
    "itk-elastix",
    "connected-components-3d",
    "pydantic",
    "typer",
    "rich",
    "matplotlib",
    "pyarrow",
    "scikit-learn",
    "dask",
    "distributed",
)
"""Distributions whose versions are reported: every dependency, then the optional ones (Parquet, tests,
clusters)."""


def versions() -> dict[str, str]:
    """Return {name: version} for Python and each distribution of the stack ('not installed' if absent)."""
    found = {"python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
