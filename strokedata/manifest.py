"""Pydantic models of the canonical dataset files: ``dataset.json`` and ``<patient>/patient.json``.

Every model is strict and forbids unknown fields: a misspelt key is an error, never silently dropped.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Literal[1] = 1
N_REGIONS = 15
DATASET_CARD = "dataset.json"
PATIENT_MANIFEST = "patient.json"


class Modality(StrEnum):
    """The image kinds a patient folder may hold."""

    NCCT = "NCCT"
    CTA = "CTA"
    MCTA1 = "MCTA1"
    MCTA2 = "MCTA2"
    MCTA3 = "MCTA3"
    CTP = "CTP"
    CBF = "CBF"
    CBV = "CBV"
    MTT = "MTT"
    TMAX = "TMAX"
    SPIRAL = "SPIRAL"
    ATLAS = "ATLAS"
    CLOT = "CLOT"
    CORE = "CORE"
    BRAIN_MASK = "BRAIN_MASK"
    TTP = "TTP"


LABEL_MAPS: frozenset[Modality] = frozenset(
    {Modality.ATLAS, Modality.CLOT, Modality.CORE, Modality.BRAIN_MASK}
)
"""Modalities holding integer labels (nearest-neighbour interpolation, TorchIO ``LabelMap``)."""

CO_REGISTERED_GROUPS: tuple[tuple[Modality, ...], ...] = (
    (Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX, Modality.TTP, Modality.CORE, Modality.CTP),
    (
        Modality.CTA,
        Modality.MCTA1,
        Modality.MCTA2,
        Modality.MCTA3,
        Modality.SPIRAL,
        Modality.ATLAS,
        Modality.CLOT,
    ),
    (Modality.NCCT, Modality.BRAIN_MASK),
)
"""Modalities that must share their (spatial) shape and affine; CTP contributes its first three axes."""

OcclusionLocation = Literal["ICA-T", "M1", "M2"]
OcclusionSide = Literal["L", "R"]
MTICI = Literal["0", "1", "2a", "2b", "2c", "3"]

OCCLUSION_LOCATIONS: tuple[OcclusionLocation, ...] = ("ICA-T", "M1", "M2")
OCCLUSION_SIDES: tuple[OcclusionSide, ...] = ("L", "R")
MTICI_GRADES: tuple[MTICI, ...] = ("0", "1", "2a", "2b", "2c", "3")

DEFAULT_ATLAS_REGIONS: tuple[str, ...] = (
    "outside",
    "L_ACA",
    "L_MCA_deep",
    "L_MCA_superior",
    "L_MCA_inferior",
    "L_AChA_ICA",
    "L_PCA",
    "L_posterior_fossa",
    "R_ACA",
    "R_MCA_deep",
    "R_MCA_superior",
    "R_MCA_inferior",
    "R_AChA_ICA",
    "R_PCA",
    "R_posterior_fossa",
)
"""Region names of the phantom atlas: value 0 lies outside the territories, then 7 per hemisphere."""

PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_CLINICAL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_IMAGE_SUFFIXES = (".nii", ".nii.gz")
PATH_OUTSIDE = "path_outside"
"""Pydantic error type of an image path that is absolute or climbs out with '..'."""

PatientId = Annotated[str, StringConstraints(pattern=PATIENT_ID_PATTERN)]


def _check_printable(value: str) -> str:
    """Return ``value`` when it holds no control character (NUL, newline, escape...); raise otherwise."""
    control = next((char for char in value if ord(char) < 32 or ord(char) == 127), None)
    if control is not None:
        raise ValueError(
            f"{value!r} contains the control character {control!r}; paths hold printable characters only"
        )
    return value


def _check_linked_source(value: str) -> str:
    """Return ``value`` when it is a printable folder path other than the file-system root."""
    _check_printable(value)
    if PurePosixPath(value) == PurePosixPath("/"):
        raise ValueError("'/' is the file-system root; link to the folder that holds the source data")
    return value


def _check_relative_path(value: str) -> str:
    """Return ``value`` when it is a relative POSIX path that stays below its folder; raise otherwise."""
    if not value:
        raise ValueError("the path is empty; give the image's path relative to the patient folder")
    _check_printable(value)
    if "\\" in value:
        raise ValueError(f"'{value}' contains a backslash; write paths with forward slashes")
    path = PurePosixPath(value)
    if path.is_absolute():
        raise PydanticCustomError(
            PATH_OUTSIDE, "'{path}' is absolute; give it relative to the patient folder", {"path": value}
        )
    if ".." in path.parts:
        raise PydanticCustomError(
            PATH_OUTSIDE, "'{path}' contains '..'; images must lie inside the patient folder", {"path": value}
        )
    if not value.endswith(_IMAGE_SUFFIXES):
        raise ValueError(f"'{value}' is not a NIfTI file; images must end in .nii or .nii.gz")
    return value


RelativeImagePath = Annotated[str, AfterValidator(_check_relative_path)]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class LabelVocabularies(BaseModel):
    """The label values a dataset uses; each must be a subset of the toolkit's vocabulary."""

    model_config = _STRICT

    occlusion_location: list[OcclusionLocation] = Field(default_factory=lambda: list(OCCLUSION_LOCATIONS))
    occlusion_side: list[OcclusionSide] = Field(default_factory=lambda: list(OCCLUSION_SIDES))
    mtici: list[MTICI] = Field(default_factory=lambda: list(MTICI_GRADES))


class DatasetCard(BaseModel):
    """``<root>/dataset.json``: what the dataset is and what every patient folder is expected to hold."""

    model_config = _STRICT

    name: Annotated[str, StringConstraints(min_length=1)]
    version: Annotated[str, StringConstraints(min_length=1)]
    description: str = ""
    license: Annotated[str, StringConstraints(min_length=1)]
    schema_version: Literal[1] = SCHEMA_VERSION
    modalities: list[Modality] = Field(description="modalities every patient is expected to hold")
    atlas_regions: Annotated[
        list[Annotated[str, StringConstraints(min_length=1)]],
        Field(min_length=N_REGIONS, max_length=N_REGIONS, description="region name per atlas value 0..14"),
    ] = Field(default_factory=lambda: list(DEFAULT_ATLAS_REGIONS))
    labels: LabelVocabularies = Field(default_factory=LabelVocabularies)
    linked_sources: list[
        Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_linked_source)]
    ] = Field(
        default_factory=list,
        description="folders, relative to the dataset root or absolute, whose files imported images may "
        "link to (set by `strokedata import`)",
    )
    derived_from: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list,
        description="dataset hashes (as `strokedata split` records them) of the dataset this one was "
        "preprocessed from, then of that one's own sources (set by a complete `strokedata preprocess` "
        "run): a split of a source fits this dataset",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> DatasetCard:
        if len(set(self.atlas_regions)) != N_REGIONS:
            raise ValueError("atlas_regions must hold 15 distinct names")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities lists a modality twice")
        return self

    @model_serializer(mode="wrap")
    def _omit_empty_lists(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Return the card's fields, leaving out an empty linked_sources or derived_from (cards written
        before they existed keep their bytes)."""
        data: dict[str, Any] = handler(self)
        for name in ("linked_sources", "derived_from"):
            if not getattr(self, name):
                data.pop(name, None)
        return data


class Labels(BaseModel):
    """A patient's labels; ``None`` means unknown, never 'absent'."""

    model_config = _STRICT

    occlusion_location: OcclusionLocation | None = None
    occlusion_side: OcclusionSide | None = None
    mtici: MTICI | None = None
    regions: Annotated[list[Literal[0, 1]], Field(min_length=N_REGIONS, max_length=N_REGIONS)] | None = None


ClinicalValue = Annotated[int, Field(strict=True)] | float | str | bool | None


def _check_clinical(values: dict[str, ClinicalValue]) -> dict[str, ClinicalValue]:
    """Return the clinical dict when its keys are snake_case and its known fields are plausible."""
    for key, value in values.items():
        if not _CLINICAL_KEY.match(key):
            raise ValueError(f"clinical key '{key}' must be snake_case (a-z, 0-9, _), starting with a letter")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"clinical '{key}' is {value}, not a finite number; use null for unknown")
    bounds = {"age": (0, 120), "nihss": (0, 42), "onset_to_imaging_min": (0, 60 * 24 * 30)}
    for key, (low, high) in bounds.items():
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"clinical '{key}' must be a number")
        if not low <= value <= high:
            raise ValueError(f"clinical '{key}' = {value} lies outside {low}..{high}")
    sex = values.get("sex")
    if sex is not None and sex not in ("F", "M", "other"):
        raise ValueError(f"clinical 'sex' = {sex!r} must be one of 'F', 'M', 'other' or null")
    return values


class Preprocessing(BaseModel):
    """How ``strokedata preprocess`` made a patient folder from another dataset's patient."""

    model_config = _STRICT

    pipeline: Annotated[str, StringConstraints(min_length=1)] = Field(description="the named pipeline")
    parameters: dict[str, JsonValue] = Field(description="the pipeline's parameters, defaults included")
    tool_version: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="version of strokebench that ran the pipeline"
    )
    inputs: dict[str, str] = Field(
        description="sha256 of each input file's bytes, keyed by its path relative to the input root"
    )
    cache_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="sha256 of pipeline, parameters, tool version and inputs: unchanged means up to date"
    )
    steps: list[dict[str, JsonValue]] = Field(
        default_factory=list,
        description="the transforms applied, in order, with their arguments and per-patient decisions",
    )


class Provenance(BaseModel):
    """Where a patient's data came from."""

    model_config = _STRICT

    source: str | None = Field(default=None, description="source dataset or site archive")
    original_ids: dict[str, str] = Field(default_factory=dict, description="identifiers in the source")
    tool_version: str | None = Field(default=None, description="tool that wrote this folder")
    preprocessing: Preprocessing | None = Field(
        default=None, description="set by `strokedata preprocess`: how this folder was derived"
    )


class PatientManifest(BaseModel):
    """``<root>/<patient_id>/patient.json``: one patient's images, labels and clinical scalars."""

    model_config = _STRICT

    patient_id: PatientId
    site: Annotated[str, StringConstraints(min_length=1)] | None = None
    images: dict[Modality, RelativeImagePath]
    labels: Labels = Field(default_factory=Labels)
    clinical: Annotated[dict[str, ClinicalValue], AfterValidator(_check_clinical)] = Field(
        default_factory=dict
    )
    provenance: Provenance = Field(default_factory=Provenance)
