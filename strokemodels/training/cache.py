"""The training cache: each patient's model input, after the pipeline's loading steps and resized to the
model's input size, stored once as an uncompressed ``.npy`` that the loader reads through a memory map,
so that training never waits for gzip (docs/performance.md).

The cache lives outside the dataset (``$STROKEBENCH_CACHE``, else ``~/.cache/strokebench``), in a folder
named by the hash of what shapes an entry: the dataset's root, the input modalities, the input size, the
pipeline and its loading steps, and the cache format. Each patient's entry records the size, modification
time and sha256 of every file it was made from (manifest and images); an entry whose files changed is
made again (a changed size or time leads to a new hash, an unchanged hash keeps the entry). Entries are
written to a temporary file and renamed, the ``.npy`` before its record, so nothing half-written is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from strokedata import __version__
from strokedata.executor import Executor, Progress, executor_for, map_reporting
from strokedata.io import atomic_write_bytes, atomic_write_text
from strokedata.manifest import PATIENT_MANIFEST, Modality, PatientManifest

CACHE_FORMAT = 2


def default_cache_root() -> Path:
    """Return the cache root: ``$STROKEBENCH_CACHE`` when set, else ``~/.cache/strokebench``."""
    configured = os.environ.get("STROKEBENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "strokebench"


@dataclass(frozen=True)
class CacheSpec:
    """What shapes a cached input: the modalities (channel order), the spatial size, the pipeline whose
    loading steps run before caching, the layout and the labels kept beside it.

    ``layout`` "volume": one (C, X, Y, Z) array resized to ``size``; "slices": the axial slices as
    (Z, C, X, Y), resized in-plane to ``size[:2]``, every slice kept (the labels are per slice).
    ``labels`` "regions": the (Z, 15) regions of each slice from CLOT x ATLAS, read on the images' own
    grid; None: no label array (the label is in patient.json)."""

    inputs: tuple[Modality, ...]
    size: tuple[int, int, int]
    pipeline: str
    layout: Literal["volume", "slices"] = "volume"
    labels: Literal["regions"] | None = None

    def key(self, dataset_root: Path) -> str:
        """Return the hash naming this spec's cache folder for a dataset."""
        described = {
            "format": CACHE_FORMAT,
            "tool_version": __version__,  # how inputs are loaded and resized may change with it
            "dataset": str(dataset_root.resolve()),
            "inputs": [m.value for m in self.inputs],
            "size": list(self.size),
            "pipeline": self.pipeline,
            "layout": self.layout,
            "labels": self.labels,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Job:
    """What a worker needs to make (or keep) one patient's entry (picklable)."""

    root: Path
    folder: Path
    manifest_json: str
    spec: CacheSpec


def _sources(root: Path, manifest: PatientManifest, inputs: Sequence[Modality]) -> dict[str, Path]:
    """Return the files an entry is made from: the manifest and the input images, by relative path."""
    folder = root / manifest.patient_id
    files = {PATIENT_MANIFEST: folder / PATIENT_MANIFEST}
    files.update({manifest.images[m]: folder / manifest.images[m] for m in inputs})
    return files


def _label_modalities(spec: CacheSpec) -> tuple[Modality, ...]:
    """Return the images an entry's label array is read from."""
    return (Modality.CLOT, Modality.ATLAS) if spec.labels == "regions" else ()


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _fingerprints(files: dict[str, Path], previous: dict[str, Any]) -> dict[str, Any]:
    """Return {relative path: {size, mtime_ns, sha256}}, the hash reused where size and time are as before."""
    found = {}
    for name, path in sorted(files.items()):
        info = path.stat()
        known = previous.get(name, {})
        same_stat = known.get("size") == info.st_size and known.get("mtime_ns") == info.st_mtime_ns
        digest = known["sha256"] if same_stat and "sha256" in known else _sha256(path)
        found[name] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest}
    return found


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        return record
    except (OSError, ValueError):
        return {}


def _input_array(job: _Job, manifest: PatientManifest) -> np.ndarray:
    """Return one patient's input: the spec's modalities after the pipeline's loading steps, as channels,
    resized (trilinear) to the spec's size, float32 (C, X, Y, Z)."""
    import torch
    import torch.nn.functional as F
    import torchio as tio

    from strokedata.preprocess import PIPELINES
    from strokedata.subjects import patient_subject

    subject = patient_subject(job.root, manifest, list(job.spec.inputs))
    if job.spec.pipeline in PIPELINES:
        subject = PIPELINES[job.spec.pipeline].loading()(subject)
    subject = on_one_grid(subject, [m.value for m in job.spec.inputs])
    images = [subject[m.value] for m in job.spec.inputs]
    if job.spec.layout == "slices":  # one image at a time: memory beyond the inputs stays small
        size = (job.spec.size[0], job.spec.size[1])
        return slice_stack((image.data for image in images if isinstance(image, tio.Image)), size)
    channels = [
        torch.as_tensor(image.data, dtype=torch.float32) for image in images if isinstance(image, tio.Image)
    ]
    stacked = torch.cat(channels, dim=0)
    if tuple(stacked.shape[1:]) != job.spec.size:
        stacked = F.interpolate(stacked[None], size=job.spec.size, mode="trilinear", align_corners=False)[0]
    return np.ascontiguousarray(stacked.numpy(), dtype=np.float32)


def slice_stack(images: Iterable[Any], size: tuple[int, int]) -> np.ndarray:
    """Return (C, X, Y, Z) volumes on one grid as the slice networks read them: (Z, C, *size) float32,
    every axial slice resized in-plane (bilinear) to ``size``. Each volume (a tensor or array, any dtype)
    is converted and resized on its own as the iterable yields it, so that a generator holds one
    full-size float32 volume at a time, whatever the number of channels."""
    import torch
    import torch.nn.functional as F

    planes = []
    for data in images:
        volume = torch.as_tensor(data, dtype=torch.float32).permute(3, 0, 1, 2)  # (Z, c, X, Y)
        if tuple(volume.shape[2:]) != size:
            volume = F.interpolate(volume, size=size, mode="bilinear", align_corners=False)
        planes.append(np.asarray(volume.numpy(), dtype=np.float32))
        del volume
    return np.ascontiguousarray(np.concatenate(planes, axis=1))


def on_one_grid(subject: Any, keys: list[str]) -> Any:
    """Return the subject with the images of ``keys`` on the first one's grid: the others resampled
    (trilinear, torchio) where their shape or affine differ (NCCT of 32 slices beside a CTA of 200, both
    registered to the template), unchanged where all share it."""
    import numpy as np
    import torchio as tio

    first = subject[keys[0]]

    def elsewhere(key: str) -> bool:
        image = subject[key]
        return bool(image.spatial_shape != first.spatial_shape or not np.allclose(image.affine, first.affine))

    others = [key for key in keys[1:] if elsewhere(key)]
    return tio.Resample(keys[0], include=others)(subject) if others else subject


def _label_array(job: _Job, manifest: PatientManifest) -> np.ndarray:
    """Return an entry's labels: the (Z, 15) uint8 regions of each slice (CLOT x ATLAS)."""
    from strokedata.io import MAX_VOXELS, read_volume
    from strokedata.labels import regions_by_slice

    folder = job.root / manifest.patient_id
    clot, atlas = (
        np.asarray(read_volume(folder / manifest.images[m], MAX_VOXELS).scaled())
        for m in (Modality.CLOT, Modality.ATLAS)
    )
    return regions_by_slice(clot > 0, np.rint(atlas).astype(np.int64))


def npy_bytes(array: np.ndarray) -> bytes:
    """Return the .npy file of ``array``."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def label_path(array_path: Path) -> Path:
    """Return the path of the label array beside a cached input (``<patient>.labels.npy``)."""
    return array_path.with_name(array_path.name.removesuffix(".npy") + ".labels.npy")


def _hashes(sources: dict[str, Any]) -> dict[str, str]:
    return {name: found["sha256"] for name, found in sources.items()}


def _entry(job: _Job) -> tuple[str, Path, bool]:
    """Make or keep one patient's entry; return (patient id, .npy path, whether it was made)."""
    manifest = PatientManifest.model_validate_json(job.manifest_json)
    array_path = job.folder / f"{manifest.patient_id}.npy"
    record_path = job.folder / f"{manifest.patient_id}.json"
    previous = _read_record(record_path).get("sources")
    modalities = (*job.spec.inputs, *_label_modalities(job.spec))
    sources = _fingerprints(_sources(job.root, manifest, modalities), previous or {})
    record = json.dumps({"sources": sources}, sort_keys=True)
    labelled = job.spec.labels is None or label_path(array_path).is_file()
    if previous is not None and array_path.is_file() and labelled and _hashes(previous) == _hashes(sources):
        if previous != sources:  # touched, not changed: keep the array, remember the new times
            atomic_write_text(record_path, record)
        return manifest.patient_id, array_path, False
    record_path.unlink(missing_ok=True)  # never an old record beside a new array, whatever is interrupted
    atomic_write_bytes(array_path, npy_bytes(_input_array(job, manifest)))
    if job.spec.labels is not None:
        atomic_write_bytes(label_path(array_path), npy_bytes(_label_array(job, manifest)))
    atomic_write_text(record_path, record)
    return manifest.patient_id, array_path, True


@dataclass(frozen=True)
class CacheResult:
    """The cache folder, each patient's array path (sorted by id) and how many entries were made."""

    folder: Path
    arrays: dict[str, Path]
    made: int


def build_cache(
    root: Path,
    manifests: Sequence[PatientManifest],
    spec: CacheSpec,
    *,
    cache_root: Path | None = None,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> CacheResult:
    """Return the cache entries of ``manifests`` (patients of the dataset at ``root``), making the missing
    and outdated ones in parallel; ``progress`` hears of each patient (phase 'cache')."""
    folder = (cache_root or default_cache_root()) / "inputs" / spec.key(root)
    folder.mkdir(parents=True, exist_ok=True)
    work = [_Job(root, folder, m.model_dump_json(), spec) for m in manifests]
    with executor_for(jobs, executor) as runner:
        done = list(map_reporting(runner, _entry, work, "cache", progress))
    return CacheResult(
        folder, dict(sorted((pid, path) for pid, path, _ in done)), sum(made for *_, made in done)
    )
