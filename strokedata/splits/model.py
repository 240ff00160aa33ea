"""The split file (JSON, schemas/split.schema.json) and the balance report of a split."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strokedata.errors import StrokedataError
from strokedata.manifest import PatientManifest

SPLIT_SCHEMA_VERSION: Literal[1] = 1


class SplitError(StrokedataError):
    """The split cannot be made as asked; the message lists the patients or parameters at fault."""


def dataset_hash(manifests: Iterable[PatientManifest]) -> str:
    """Return the sha256 of the manifests' content: canonical JSON, in patient-id order."""
    digest = hashlib.sha256()
    for manifest in sorted(manifests, key=lambda m: m.patient_id):
        canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        digest.update(canonical.encode())
        digest.update(b"\n")
    return digest.hexdigest()


Missing = Literal["error", "exclude", "own-stratum"]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class SplitParameters(BaseModel):
    """How a split was made; enough to make it again."""

    model_config = _STRICT

    stratify: list[str] = Field(
        description="stratify keys; several combine into one stratum (e.g. occlusion x site)"
    )
    test_size: Annotated[float, Field(ge=0, lt=1)]
    folds: Annotated[int, Field(ge=2)] | None = Field(description="k of k-fold cross-validation, or null")
    val_size: Annotated[float, Field(gt=0, lt=1)] | None = Field(description="hold-out validation fraction")
    group_by: str | None = Field(description="'site' or a clinical field: a group never straddles partitions")
    seed: Annotated[int, Field(ge=0)]
    missing: Missing = "error"

    @model_validator(mode="after")
    def _one_protocol(self) -> SplitParameters:
        if (self.folds is None) == (self.val_size is None):
            raise ValueError("give exactly one of folds (k-fold) and val_size (hold-out)")
        if self.folds is not None and self.test_size == 0 and self.folds < 2:
            raise ValueError("folds-only splits need at least 2 folds")
        return self


class Fold(BaseModel):
    """One cross-validation fold: the patients trained on and the patients validated on."""

    model_config = _STRICT

    train: list[str]
    val: list[str]


class SplitFile(BaseModel):
    """A reproducible split of a dataset's patients; every id list sorted."""

    model_config = _STRICT

    schema_version: Literal[1] = SPLIT_SCHEMA_VERSION
    tool_version: str
    dataset_hash: str = Field(
        description="sha256 of the dataset's manifests (strokedata.splits.dataset_hash)"
    )
    membership_hash: str = Field(
        description="sha256 of the partitions below: compare it to check two splits agree"
    )
    parameters: SplitParameters
    test: list[str]
    folds: list[Fold] | None = None
    train: list[str] | None = None
    val: list[str] | None = None
    excluded: list[str] = Field(default_factory=list, description="patients left out (--missing exclude)")

    @model_validator(mode="after")
    def _form_matches_protocol(self) -> SplitFile:
        k_fold = self.parameters.folds is not None
        if k_fold != (self.folds is not None) or k_fold == (self.train is not None and self.val is not None):
            raise ValueError("a k-fold split has 'folds'; a hold-out split has 'train' and 'val'")
        if self.membership_hash != membership_hash(self.partitions()):
            raise ValueError("membership_hash does not match the partitions; the file was edited")
        return self

    def partitions(self) -> dict[str, list[str]]:
        """Return {partition name: ids}: test, excluded and either fold0..fold{k-1} (val) or train and val."""
        named = {"test": self.test, "excluded": self.excluded}
        if self.folds is not None:
            named.update({f"fold{index}": fold.val for index, fold in enumerate(self.folds)})
        else:
            named.update({"train": self.train or [], "val": self.val or []})
        return named


def membership_hash(partitions: dict[str, list[str]]) -> str:
    """Return the sha256 of partitions (name -> ids), independent of list and key order."""
    canonical = json.dumps({name: sorted(ids) for name, ids in partitions.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ClassBalance(BaseModel):
    """How many patients of one class each partition holds, against the ideal."""

    model_config = _STRICT

    label: str
    total: int
    counts: dict[str, int]
    ideal: dict[str, float]
    largest_deviation: float


class SplitReport(BaseModel):
    """The balance of a split: per-partition class counts, the largest deviation, warnings."""

    model_config = _STRICT

    partition_sizes: dict[str, int]
    classes: list[ClassBalance]
    largest_deviation: float = Field(
        description="largest |count - ideal| over classes and partitions, patients"
    )
    warnings: list[str]


def read_split(path: str | Path) -> SplitFile:
    """Return the split file at ``path``; raise SplitError when it is missing or invalid."""
    try:
        return SplitFile.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SplitError(f"cannot read split file {path}: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SplitError(f"{path} is not a valid split file: {where}: {first['msg']}") from None


def partition_members(path: str | Path, partition: str) -> list[str]:
    """Return the patient ids of one partition of the split file at ``path`` (names as
    ``SplitFile.partitions``); raise SplitError listing the partitions when it has no such one."""
    partitions = read_split(path).partitions()
    if partition not in partitions:
        raise SplitError(
            f"--partition '{partition}' is not in {path}; choose one of {', '.join(sorted(partitions))}"
        )
    return partitions[partition]


def select_partition(
    manifests: Iterable[PatientManifest], path: str | Path, partition: str
) -> list[PatientManifest]:
    """Return the manifests of one partition of the split file at ``path``, in their order.

    Raises SplitError when the partition does not exist, or names patients the manifests lack (the
    split was made for another dataset).
    """
    members = partition_members(path, partition)
    chosen = [m for m in manifests if m.patient_id in set(members)]
    absent = sorted(set(members) - {m.patient_id for m in chosen})
    if absent:
        raise SplitError(
            f"{len(absent)} patient(s) of partition '{partition}' in {path} are not in the dataset: "
            f"{', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}; the split was made for another "
            "dataset (check with strokedata validate --split)"
        )
    return chosen
