"""``strokedata validate``: checks with stable codes that produce a ValidationReport."""

from strokedata.validation.codes import CODES, Code
from strokedata.validation.report import Finding, ValidationConfig, ValidationReport
from strokedata.validation.runner import validate

__all__ = ["CODES", "Code", "Finding", "ValidationConfig", "ValidationReport", "validate"]
