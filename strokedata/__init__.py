"""strokedata: the validated dataset layer of strokebench (manifests, validation, labels, splits)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("strokebench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from strokedata.dataset import Dataset, load_dataset
from strokedata.errors import DatasetInvalidError, DatasetNotFoundError, StrokedataError
from strokedata.manifest import DatasetCard, Labels, Modality, PatientManifest, Provenance
from strokedata.validation import Finding, ValidationConfig, ValidationReport, validate

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
