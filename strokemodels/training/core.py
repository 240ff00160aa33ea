"""The infarct-core networks' two stages (de Vries et al. 2021): the CTP transformer maps a slice by
classifying overlapping patches (the spatial attention map, TFA); the U-Net segments each slice from the
TFA, the first CTP frame and the maximum-intensity frame. Here: the series as the networks read it, the
maps, the second stage's cached inputs, its samples, validation of either stage with the core task's
metrics, and the outputs ``predict`` writes as masks on the CTP's grid."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from strokedata.dataset import Dataset
from strokedata.executor import Progress
from strokedata.io import MAX_VOXELS, atomic_write_bytes, read_header, read_volume
from strokedata.manifest import Modality, PatientManifest
from strokedata.preprocess import PIPELINES
from strokedata.subjects import patient_subject
from strokemodels.benchmark.segmentation import segmentation_metrics
from strokemodels.errors import RunError
from strokemodels.training.cache import default_cache_root, label_path, npy_bytes
from strokemodels.training.checkpoints import load_checkpoint
from strokemodels.training.inputs import EpochShuffle
from strokemodels.training.outputs import Output
from strokemodels.training.run import BEST, RunRecord, read_record
from strokemodels.training.samples import mean_metrics
from strokemodels.training.slices import SliceInputs
from strokemodels.training.volumes import loaders

if TYPE_CHECKING:
    from strokemodels.training.networks import NetworkTraining

STAGE1 = "stage1.pt"
"""The first stage's checkpoint, copied into a second-stage run so that ``predict`` needs nothing else."""
PatientMap = Callable[[PatientManifest], np.ndarray]
"""A validation patient's probability map of core, (X, Y, Z) on its CORE grid."""


def load_series(root: Path, manifest: PatientManifest, pipeline: str) -> tuple[np.ndarray, np.ndarray]:
    """Return a patient's CTP as the networks read it, (2, T, X, Y, Z) float32 (the series and its
    mirrored copy, after the pipeline's loading steps), and its spatial affine."""
    subject = PIPELINES[pipeline].loading()(patient_subject(root, manifest, [Modality.CTP]))
    image: Any = subject[Modality.CTP.value]
    data = np.asarray(image.numpy(), dtype=np.float32)
    return data.reshape(2, data.shape[0] // 2, *data.shape[1:]), np.asarray(image.affine)


def transformer_map(model: Any, series: np.ndarray, stride: int, device: str) -> np.ndarray:
    """Return the transformer's probability map of a whole series (2, T, X, Y, Z): (X, Y, Z) float32,
    slice by slice over patches every ``stride`` pixels (strokemodels.zoo.nets_core.attention_map)."""
    from strokemodels.zoo.nets_core import attention_map

    model.eval()
    planes = []
    for z in range(series.shape[-1]):
        piece = torch.from_numpy(np.ascontiguousarray(np.moveaxis(series[..., z], 1, -1))).to(device)
        planes.append(attention_map(model, piece, stride=stride).float().cpu().numpy())
    return np.stack(planes, axis=-1).astype(np.float32)


def stage2_inputs(attention: np.ndarray, series: np.ndarray) -> np.ndarray:
    """Return the U-Net's input of every slice, (Z, 3, X, Y) float32: the attention map, the first frame
    and the maximum-intensity frame of the series (not its mirrored copy)."""
    first, peak = series[0, 0], series[0].max(axis=0)
    return np.ascontiguousarray(np.stack([attention, first, peak]).transpose(3, 0, 1, 2), dtype=np.float32)


def pad_to(tensor: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Return (..., X, Y) zero-padded at the far ends to multiples of ``multiple`` (the U-Net halves the
    grid three times)."""
    x, y = tensor.shape[-2:]
    return F.pad(tensor, (0, -y % multiple, 0, -x % multiple))


def unet_probabilities(model: Any, inputs: np.ndarray, batch: int, device: str) -> np.ndarray:
    """Return the U-Net's probability of core for (Z, 3, X, Y) inputs as an (X, Y, Z) float32 map, in
    batches of ``batch`` slices (on the CPU one at a time: a batch of 512 x 512 slices holds gigabytes
    of activations)."""
    model.eval()
    step = 1 if device == "cpu" else batch
    planes = []
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], step):
            chunk = pad_to(torch.from_numpy(np.array(inputs[start : start + step])).to(device))
            logits = model(chunk)[:, 0, : inputs.shape[2], : inputs.shape[3]]
            planes.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(planes).transpose(1, 2, 0).astype(np.float32)


def _core_truth(root: Path, manifest: PatientManifest) -> tuple[np.ndarray, tuple[float, float, float]]:
    volume = read_volume(root / manifest.patient_id / manifest.images[Modality.CORE], MAX_VOXELS)
    spacing = tuple(float(v) for v in np.linalg.norm(volume.header.affine[:3, :3], axis=0))
    return np.asarray(volume.scaled()) > 0, (spacing[0], spacing[1], spacing[2])


class CoreValidation:
    """The validation patients of a core run, scored from a map of each one's series."""

    def __init__(self, training: NetworkTraining, stride: int) -> None:
        self.root, self.pipeline = training.data.dataset.root, training.spec.pipeline
        self.patients, self.stride, self.device = training.data.val, stride, training.parameters.device

    def transformer_metrics(self, model: Any) -> dict[str, float]:
        """Return the core metrics of the transformer's maps of the validation patients at this
        validation's stride."""
        return self.metrics(
            lambda m: transformer_map(
                model, load_series(self.root, m, self.pipeline)[0], self.stride, self.device
            )
        )

    def metrics(self, mapped: PatientMap) -> dict[str, float]:
        """Return the core metrics, averaged over the validation patients, of their maps at 0.5."""
        rows = []
        for manifest in self.patients:
            truth, spacing = _core_truth(self.root, manifest)
            rows.append(segmentation_metrics(truth, mapped(manifest) >= 0.5, spacing))
        return mean_metrics(rows)


def load_stage1(path: Path, record: RunRecord) -> Any:
    """Return the first stage's transformer from its checkpoint, built from the spec it holds."""
    from strokemodels.registry import get_model
    from strokemodels.spec import ModelSpec

    checkpoint = load_checkpoint(path, str(record.spec.stage_of))
    spec = ModelSpec.model_validate(checkpoint["spec"])
    model = get_model(spec.name).build(spec, 0)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def adopt_stage1(run: Path, stage1: Path | None, record: RunRecord) -> str:
    """Check that ``stage1`` is a finished run of the model this one follows, on the same split, fold and
    dataset, copy its best checkpoint into ``run`` and return the checkpoint's sha256; RunError otherwise
    (a resumed run keeps the copy it has)."""
    if (run / STAGE1).is_file() and stage1 is None:
        return hashlib.sha256((run / STAGE1).read_bytes()).hexdigest()
    if stage1 is None:
        raise RunError(
            f"{record.model} is the second stage of {record.spec.stage_of}: give --stage1 RUN, a "
            f"{record.spec.stage_of} run of the same split and fold"
        )
    first = read_record(stage1)
    same = (first.split_hash, first.fold, first.dataset_hash) == (
        record.split_hash, record.fold, record.dataset_hash,
    )  # fmt: skip
    if first.model != record.spec.stage_of or not same:
        raise RunError(
            f"--stage1 {stage1} is a {first.model} run of fold {first.fold}; {record.model} needs a "
            f"{record.spec.stage_of} run of the same dataset, split and fold ({record.fold})"
        )
    if not (stage1 / BEST).is_file():
        raise RunError(f"--stage1 {stage1} has no {BEST}: train it to the end first")
    data = (stage1 / BEST).read_bytes()
    atomic_write_bytes(run / STAGE1, data)
    return hashlib.sha256(data).hexdigest()


def stage2_cache(
    root: Path, manifests: Sequence[PatientManifest], pipeline: str, transformer: Any, stride: int,
    key: str, cache_root: Path, device: str, labels: bool, progress: Progress | None = None,
) -> dict[str, Path]:  # fmt: skip
    """Return each patient's cached second-stage input (Z, 3, X, Y), made where missing, under a folder
    named by ``key`` (the first stage's checkpoint, the dataset, the stride); with ``labels``, the CORE
    mask of each slice (Z, 1, X, Y) beside it. Entries are written atomically, the label first."""
    folder = cache_root / "stage2" / key
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for done, manifest in enumerate(manifests, start=1):
        path = folder / f"{manifest.patient_id}.npy"
        if labels and not label_path(path).is_file():
            truth, _ = _core_truth(root, manifest)
            atomic_write_bytes(
                label_path(path), npy_bytes(truth.transpose(2, 0, 1)[:, None].astype(np.float32))
            )
        if not path.is_file():
            series, _ = load_series(root, manifest, pipeline)
            attention = transformer_map(transformer, series, stride, device)
            atomic_write_bytes(path, npy_bytes(stage2_inputs(attention, series)))
        found[manifest.patient_id] = path
        if progress is not None:
            progress("stage 1 maps", done, len(manifests))
    return found


def stage2_key(stage1_sha: str, root: Path, manifests: Sequence[PatientManifest], stride: int) -> str:
    """Return the name of a second-stage cache: the first stage's checkpoint, the dataset's folder, the
    patients' manifests and the size and time of each image a map is made from, the stride."""
    images = [
        (path.stat().st_size, path.stat().st_mtime_ns)
        for m in manifests
        for modality in (Modality.CTP, Modality.CORE)
        if modality in m.images and (path := root / m.patient_id / m.images[modality]).is_file()
    ]
    described = [stage1_sha, str(root.resolve()), stride, images, *(m.model_dump_json() for m in manifests)]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:32]


class GeneralizedDice(torch.nn.Module):
    """The generalised Dice loss of (B, 1, X, Y) logits against 0/1 masks (strokemodels.zoo.nets_core)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the loss over the batch, the grid padded as the network saw it."""
        from strokemodels.zoo.nets_core import generalized_dice_loss

        loss: torch.Tensor = generalized_dice_loss(logits, pad_to(target.to(logits.dtype)))
        return loss


class UNetSamples:
    """Every slice of the second stage's inputs (the first stage's maps), its CORE slice as the label."""

    def __init__(self, training: NetworkTraining, progress: Progress | None) -> None:
        parameters, data, spec = training.parameters, training.data, training.spec
        self.parameters, self.stride = parameters, parameters.attention_stride or 2
        sha = adopt_stage1(training.folder, training.request.stage1, training.record)
        transformer = load_stage1(training.folder / STAGE1, training.record).to(parameters.device)
        manifests = [*data.train, *data.val]
        cache_root = training.request.cache_root or default_cache_root()
        key = stage2_key(sha, data.dataset.root, manifests, self.stride)
        arrays = stage2_cache(
            data.dataset.root, manifests, spec.pipeline, transformer, self.stride, key, cache_root,
            parameters.device, True, progress,
        )  # fmt: skip
        training.note_cache(cache_root / "stage2" / key)
        train_set = SliceInputs([arrays[m.patient_id] for m in data.train])
        self.val_arrays = {m.patient_id: arrays[m.patient_id] for m in data.val}
        self.validation = CoreValidation(training, self.stride)
        self.sampler = EpochShuffle(len(train_set), parameters.seed)
        self.train_loader: DataLoader[Any]
        self.train_loader, _ = loaders(train_set, train_set, self.sampler, parameters)
        self.loss = GeneralizedDice()

    def augment(self, batch: torch.Tensor, indices: list[int], epoch: int) -> torch.Tensor:
        """Return the batch padded to the U-Net's multiple of 8 (002 describes no augmentation)."""
        return pad_to(batch)

    def validate(self, model: Any) -> dict[str, float]:
        """Return the core metrics of the U-Net's masks of the validation patients."""
        batch, device = self.parameters.batch_size, self.parameters.device
        return self.validation.metrics(
            lambda m: unet_probabilities(model, np.load(self.val_arrays[m.patient_id]), batch, device)
        )


def core_outputs(
    run: Path, record: RunRecord, model: Any, dataset: Dataset, manifests: Sequence[PatientManifest],
    device: str, cache_root: Path | None,
) -> dict[str, Output]:  # fmt: skip
    """Return each patient's core probability map on its CTP grid with the grid's affine: the
    transformer's map (a first-stage run: 002's "threshold" row), or the two stages chained."""
    stride = record.parameters.attention_stride or 2
    root, pipeline = dataset.root, record.spec.pipeline
    if record.spec.stage_of is None:
        found = {}
        for manifest in manifests:
            series, affine = load_series(root, manifest, pipeline)
            found[manifest.patient_id] = Output(transformer_map(model, series, stride, device), affine)
        return found
    if not (run / STAGE1).is_file():
        raise RunError(f"{run} lacks {STAGE1}, its first stage: train it again")
    transformer = load_stage1(run / STAGE1, record).to(device)
    sha = hashlib.sha256((run / STAGE1).read_bytes()).hexdigest()
    key = stage2_key(sha, root, manifests, stride)
    where = cache_root or default_cache_root()
    arrays = stage2_cache(root, manifests, pipeline, transformer, stride, key, where, device, False)
    outputs = {}
    for manifest in manifests:
        affine = read_header(root / manifest.patient_id / manifest.images[Modality.CTP]).affine
        inputs = np.load(arrays[manifest.patient_id])
        mapped = unet_probabilities(model, inputs, record.parameters.batch_size, device)
        outputs[manifest.patient_id] = Output(mapped, np.asarray(affine))
    return outputs
