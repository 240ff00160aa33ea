"""The exceptions the library raises for problems a user can fix; the CLI turns them into messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strokedata.validation.report import Finding


class StrokedataError(Exception):
    """Base class: a problem with the user's input, with a message that says what to do."""


class DatasetNotFoundError(StrokedataError):
    """The dataset root does not exist or is not a folder."""


class DatasetInvalidError(StrokedataError):
    """The dataset's card or manifests are invalid; ``findings`` lists every error found."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = list(findings)
