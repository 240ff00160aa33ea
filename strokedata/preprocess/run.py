"""``preprocess_dataset``: a named pipeline run over every patient of a dataset, written as a new dataset.

Each output patient folder is complete or absent: it is written into a hidden folder beside its final
place and renamed into place when every file is on disk. Its manifest records the pipeline, the
parameters, the tool version and the sha256 of every input file; together they form the cache key, and a
patient whose key is unchanged is skipped. A patient that fails is reported with the reason; the others go
on. The input dataset is only read.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torchio as tio
from pydantic import JsonValue, ValidationError

from strokedata import __version__
from strokedata.dataset import load_dataset
from strokedata.errors import StrokedataError
from strokedata.executor import Executor, Progress, executor_for, map_reporting
from strokedata.io import atomic_write_text, read_header, write_nifti
from strokedata.manifest import (
    DATASET_CARD,
    LABEL_MAPS,
    PATIENT_MANIFEST,
    DatasetCard,
    Modality,
    PatientManifest,
    Preprocessing,
    Provenance,
)
from strokedata.outputs import check_output_folder
from strokedata.preprocess.pipelines import Pipeline, PipelineParams, get_pipeline
from strokedata.splits.model import dataset_hash
from strokedata.staging import remove_leftovers, staged_folder
from strokedata.subjects import patient_subject


class PreprocessError(StrokedataError):
    """The run cannot start: bad parameters, or an output folder that holds something else."""


@dataclass(frozen=True)
class PatientOutcome:
    """What happened to one patient: written, skipped (up to date) or failed, with the reason."""

    patient_id: str
    status: Literal["written", "skipped", "failed"]
    reason: str = ""
    seconds: float = 0.0


@dataclass
class PreprocessReport:
    """The result of a run: one outcome per input patient (sorted by id) and output patients that no
    longer have an input ("stale": left in place, listed)."""

    pipeline: str
    out: Path
    outcomes: list[PatientOutcome] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    def ids(self, status: str) -> list[str]:
        """Return the ids of the patients with ``status``, sorted."""
        return [outcome.patient_id for outcome in self.outcomes if outcome.status == status]

    @property
    def failed(self) -> list[PatientOutcome]:
        """Return the outcomes of the patients that failed."""
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    @property
    def ok(self) -> bool:
        """Return True when no patient failed."""
        return not self.failed


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for one patient (picklable)."""

    root: Path
    out: Path
    manifest_json: str
    pipeline: str
    parameters: dict[str, Any]
    compress: bool
    atlas_regions: tuple[str, ...]
    label: str  # the patient id: the name of this job on a cluster


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file's bytes, read in 1 MiB blocks."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def cache_key(pipeline: str, parameters: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Return the sha256 that identifies an output: pipeline, parameters, tool version and input hashes."""
    payload = {"pipeline": pipeline, "parameters": parameters, "tool_version": __version__, "inputs": inputs}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def input_hashes(root: Path, manifest: PatientManifest, pipeline: Pipeline) -> dict[str, str]:
    """Return the sha256 of every file the pipeline reads for a patient (its manifest and the images it
    uses), keyed by the path relative to the dataset root, sorted."""
    folder = root / manifest.patient_id
    files = {PATIENT_MANIFEST: folder / PATIENT_MANIFEST}
    for modality, relative in manifest.images.items():
        if modality in pipeline.reads:
            files[relative] = folder / relative
    return {f"{manifest.patient_id}/{name}": file_sha256(path) for name, path in sorted(files.items())}


def _jsonable(value: Any) -> JsonValue:
    """Return ``value`` as JSON data: tuples become lists, numpy values Python ones, others their str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)


def _steps(subject: tio.Subject) -> list[dict[str, JsonValue]]:
    """Return the transforms applied to a subject, in order, as {"transform": name, "arguments": {...}}
    (TorchIO's bookkeeping arguments copy, include and exclude left out)."""
    steps: list[dict[str, JsonValue]] = []
    for name, arguments in subject.applied_transforms:
        kept = {key: value for key, value in arguments.items() if key not in ("copy", "include", "exclude")}
        steps.append({"transform": name, "arguments": _jsonable(kept)})
    return steps


def _image_array(image: tio.Image, modality: Modality) -> np.ndarray:
    """Return an image's voxels as stored on disk: (x, y, z) or (x, y, z, t); label maps as uint8. In
    the memory order they have (Fortran order as read from NIfTI): ``write_nifti`` writes either, and
    reordering a 512 x 512 x 200 volume there and back cost a second an image."""
    data = image.numpy()
    array = data[0] if data.shape[0] == 1 and modality is not Modality.CTP else np.moveaxis(data, 0, -1)
    if modality in LABEL_MAPS:
        if array.size and (array.min() < 0 or array.max() > 255 or not np.all(np.mod(array, 1) == 0)):
            raise ValueError(f"{modality.value} holds values that are not integers 0..255")
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return array
    return array.astype(np.float32, copy=False)


def _time_step(source: Path, frames_out: int) -> float | None:
    """Return the output frame interval of a series read from ``source``: the input's interval, stretched
    so that ``frames_out`` frames span the input's duration."""
    header = read_header(source)
    if len(header.pixdim) < 4 or not header.pixdim[3] > 0:
        return None
    step, frames_in = float(header.pixdim[3]), header.shape[-1]
    return step if frames_in == frames_out or frames_out < 2 else step * (frames_in - 1) / (frames_out - 1)


def _write_patient(
    job: _Job,
    manifest: PatientManifest,
    subject: tio.Subject,
    pipeline: Pipeline,
    params: PipelineParams,
    inputs: dict[str, str],
) -> None:
    """Write a transformed subject and its manifest into a hidden folder, then rename it into place."""
    with staged_folder(job.out, manifest.patient_id) as partial:
        suffix = ".nii.gz" if job.compress else ".nii"
        images: dict[Modality, str] = {}
        for modality in pipeline.writes:
            image = subject.get(modality.value)
            if not isinstance(image, tio.Image):
                continue
            array = _image_array(image, modality)
            step = None
            if array.ndim == 4 and modality in manifest.images:
                source = job.root / manifest.patient_id / manifest.images[modality]
                step = _time_step(source, array.shape[-1])
            name = f"{modality.value.lower()}{suffix}"
            write_nifti(partial / name, array, np.asarray(image.affine, dtype=np.float64), step)
            images[modality] = name
        parameters = job.parameters
        output = PatientManifest(
            patient_id=manifest.patient_id,
            site=manifest.site,
            images=images,
            labels=pipeline.output_labels(manifest.labels, subject, job.atlas_regions, params),
            clinical=manifest.clinical,
            provenance=Provenance(
                source=manifest.provenance.source,
                original_ids=manifest.provenance.original_ids,
                tool_version=__version__,
                preprocessing=Preprocessing(
                    pipeline=job.pipeline,
                    parameters={key: _jsonable(value) for key, value in parameters.items()},
                    tool_version=__version__,
                    inputs=inputs,
                    cache_key=cache_key(job.pipeline, parameters, inputs),
                    steps=_steps(subject),
                ),
            ),
        )
        atomic_write_text(partial / PATIENT_MANIFEST, output.model_dump_json(indent=2) + "\n")


def _up_to_date(folder: Path, key: str) -> bool:
    """Return True when ``folder`` holds a complete output whose cache key is ``key``."""
    try:
        manifest = PatientManifest.model_validate_json((folder / PATIENT_MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    done = manifest.provenance.preprocessing
    return (
        done is not None
        and done.cache_key == key
        and all((folder / p).is_file() for p in manifest.images.values())
    )


def _lost_patient(job: _Job, reason: str) -> PatientOutcome:
    """Return the failed outcome of a patient whose worker kept dying (on a cluster)."""
    return PatientOutcome(job.label, "failed", reason)


def preprocess_patient(job: _Job) -> PatientOutcome:
    """Return the outcome of preprocessing one patient (runs in a worker; never raises for bad data)."""
    start = time.perf_counter()
    manifest = PatientManifest.model_validate_json(job.manifest_json)
    pipeline = get_pipeline(job.pipeline)
    try:
        missing = [m.value for m in pipeline.requires if m not in manifest.images]
        if missing:
            return PatientOutcome(
                manifest.patient_id, "failed", f"lacks {', '.join(missing)}, required by '{job.pipeline}'"
            )
        inputs = input_hashes(job.root, manifest, pipeline)
        if _up_to_date(job.out / manifest.patient_id, cache_key(job.pipeline, job.parameters, inputs)):
            return PatientOutcome(manifest.patient_id, "skipped", "up to date", time.perf_counter() - start)
        params = pipeline.params.model_validate(job.parameters)
        modalities = [m for m in manifest.images if m in pipeline.reads]
        subject = patient_subject(job.root, manifest, modalities)
        transformed = pipeline.transform(params)(subject)
        _write_patient(job, manifest, transformed, pipeline, params, inputs)
    except Exception as error:  # one patient's failure must not stop the others; reported with its reason
        reason = str(error).strip() or type(error).__name__
        return PatientOutcome(manifest.patient_id, "failed", f"{type(error).__name__}: {reason}")
    return PatientOutcome(manifest.patient_id, "written", "", time.perf_counter() - start)


def _output_card(card: DatasetCard, pipeline: Pipeline) -> DatasetCard:
    """Return the output dataset's card: the input's, renamed, listing the modalities every patient gets."""
    expected = [
        m for m in pipeline.writes if m in pipeline.requires or m in card.modalities or m in pipeline.adds
    ]
    return card.model_copy(
        update={
            "name": f"{card.name}-{pipeline.name}",
            "description": f"{card.name} {card.version} preprocessed by strokebench, pipeline "
            f"'{pipeline.name}' ({pipeline.task} task): {pipeline.description}",
            "modalities": expected,
        }
    )


def _prepare_output(root: Path, out: Path, card: DatasetCard) -> None:
    """Create ``out`` (or reuse it when it holds this same run's dataset), remove leftovers of interrupted
    runs and write the output card; raise PreprocessError when ``out`` holds anything else."""
    if out.resolve() == root.resolve() or out.resolve().is_relative_to(root.resolve()):
        raise PreprocessError(f"--out {out} lies inside the input dataset {root}; choose a folder outside it")
    if root.resolve().is_relative_to(out.resolve()):
        raise PreprocessError(f"the input dataset {root} lies inside --out {out}; choose another folder")
    if out.exists():
        if not out.is_dir():
            raise PreprocessError(f"--out {out} is a file; give a folder")
        existing = out / DATASET_CARD
        if existing.is_file():
            found = _read_card(existing)
            if found is None or found.model_dump(exclude={"derived_from"}) != card.model_dump(
                exclude={"derived_from"}
            ):
                raise PreprocessError(
                    f"{out} holds another dataset ({DATASET_CARD} differs: another input or pipeline); "
                    "choose an empty folder"
                )
            card = found  # its sources are recorded again when this run completes
        elif any(out.iterdir()):
            raise PreprocessError(f"{out} is not empty and holds no {DATASET_CARD}; choose an empty folder")
        remove_leftovers(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / DATASET_CARD, card.model_dump_json(indent=2) + "\n")


def _read_card(path: Path) -> DatasetCard | None:
    """Return the dataset card at ``path``, or None when it is not a valid card."""
    try:
        return DatasetCard.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def resolve_parameters(pipeline: Pipeline, overrides: Mapping[str, Any] | None) -> PipelineParams:
    """Return the pipeline's parameters with ``overrides`` applied; raise PreprocessError naming a bad one."""
    try:
        return pipeline.params.model_validate(
            {**pipeline.params().model_dump(mode="json"), **(overrides or {})}
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'parameters'}: {item['msg']}"
            for item in error.errors()
        )
        names = ", ".join(pipeline.params.model_fields)
        raise PreprocessError(
            f"bad parameters for pipeline '{pipeline.name}': {problems} (parameters: {names})"
        ) from None


def preprocess_dataset(
    root: str | Path,
    pipeline: str,
    out: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    compress: bool = True,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> PreprocessReport:
    """Return the report of running ``pipeline`` over every patient of the dataset at ``root`` into ``out``.

    ``parameters`` override the pipeline's defaults (``PIPELINES[name].params``). Images are written as
    .nii.gz unless ``compress`` is False (.nii: larger, faster to read again). Raises PreprocessError
    when the run cannot start and DatasetInvalidError when the input's manifests are invalid.
    """
    try:
        chosen = get_pipeline(pipeline)
    except ValueError as error:
        raise PreprocessError(str(error)) from None
    params = resolve_parameters(chosen, parameters)
    out_path = Path(out)
    check_output_folder(out_path)
    dataset = load_dataset(root)
    _prepare_output(dataset.root, out_path, _output_card(dataset.card, chosen))
    values = params.model_dump(mode="json")
    job_list = [
        _Job(
            dataset.root,
            out_path,
            manifest.model_dump_json(),
            chosen.name,
            values,
            compress,
            tuple(dataset.card.atlas_regions),
            manifest.patient_id,
        )
        for manifest in dataset
    ]
    report = PreprocessReport(chosen.name, out_path)
    try:
        with executor_for(jobs, executor) as runner:
            report.outcomes.extend(
                map_reporting(runner, preprocess_patient, job_list, "preprocess", progress, _lost_patient)
            )
    except KeyboardInterrupt:  # the workers are stopped: remove what they were half-way through writing
        remove_leftovers(out_path)
        raise
    report.outcomes.sort(key=lambda outcome: outcome.patient_id)
    if report.ok:  # every patient is up to date: a split of the input (or of its sources) fits the output
        card = _output_card(dataset.card, chosen)
        sources = [dataset_hash(dataset), *dataset.card.derived_from]
        atomic_write_text(
            out_path / DATASET_CARD,
            card.model_copy(update={"derived_from": sources}).model_dump_json(indent=2) + "\n",
        )
    inputs = set(dataset.ids)
    report.stale = sorted(
        entry.name
        for entry in out_path.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in inputs
    )
    return report
