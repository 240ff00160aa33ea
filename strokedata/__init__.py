"""strokedata: the validated dataset layer of strokebench (manifests, validation, labels, splits).

The names below are imported on first use, so that ``import strokedata.x`` (and every command's
``--help``) costs nothing beyond the module asked for.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("strokebench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from strokedata.dataset import Dataset, load_dataset
    from strokedata.errors import DatasetInvalidError, DatasetNotFoundError, StrokedataError
    from strokedata.manifest import DatasetCard, Labels, Modality, PatientManifest, Provenance
    from strokedata.validation import Finding, ValidationConfig, ValidationReport, validate

_WHERE = {
    "Dataset": "strokedata.dataset",
    "load_dataset": "strokedata.dataset",
    "DatasetInvalidError": "strokedata.errors",
    "DatasetNotFoundError": "strokedata.errors",
    "StrokedataError": "strokedata.errors",
    "DatasetCard": "strokedata.manifest",
    "Labels": "strokedata.manifest",
    "Modality": "strokedata.manifest",
    "PatientManifest": "strokedata.manifest",
    "Provenance": "strokedata.manifest",
    "Finding": "strokedata.validation",
    "ValidationConfig": "strokedata.validation",
    "ValidationReport": "strokedata.validation",
    "validate": "strokedata.validation",
}
"""Public name -> the module that defines it."""

__all__ = [
    "Dataset",
    "DatasetCard",
    "DatasetInvalidError",
    "DatasetNotFoundError",
    "Finding",
    "Labels",
    "Modality",
    "PatientManifest",
    "Provenance",
    "StrokedataError",
    "ValidationConfig",
    "ValidationReport",
    "__version__",
    "load_dataset",
    "validate",
]


def __getattr__(name: str) -> Any:
    """Return a public name, importing its module on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'strokedata' has no attribute '{name}'")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
