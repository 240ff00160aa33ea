"""Axial-slice samples (the clot-region networks, 003): every slice of every patient is a sample, read
from the training cache as (C, X, Y) with its 15 region labels (CLOT x ATLAS on that slice); the loss is
the binary cross-entropy of each region, a positive label weighted by the recipe's ``positive_weight``
(003 weights clot regions 10-90 times more); validation predicts every slice of the validation patients,
takes their union per patient and scores it with the benchmark's clot-regions metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from strokedata.executor import Progress
from strokedata.manifest import N_REGIONS
from strokemodels.benchmark.files import Rows
from strokemodels.benchmark.scoring import score
from strokemodels.training.cache import CacheSpec, build_cache, default_cache_root, label_path
from strokemodels.training.inference import slice_outputs
from strokemodels.training.inputs import EpochShuffle
from strokemodels.training.run import metric_values
from strokemodels.training.volumes import loaders

if TYPE_CHECKING:
    from strokemodels.training.networks import NetworkTraining


class SliceInputs(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Every slice of the cached (Z, C, X, Y) arrays: item i is (slice as float32 (C, X, Y), its region
    labels as float32 (15,), i), patients in the given order, slices in order."""

    def __init__(self, arrays: Sequence[Path]) -> None:
        self.arrays = list(arrays)
        counts = [int(np.load(path, mmap_mode="r").shape[0]) for path in self.arrays]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        """Return the number of slices."""
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Return (patient position, slice) of sample ``index``."""
        patient = int(np.searchsorted(self.starts, index, side="right")) - 1
        return patient, index - int(self.starts[patient])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Return slice ``index`` (read through a memory map), its region labels and its index."""
        patient, z = self.locate(index)
        path = self.arrays[patient]
        image = np.array(np.load(path, mmap_mode="r")[z])
        labels = np.array(np.load(label_path(path), mmap_mode="r")[z], dtype=np.float32)
        return torch.from_numpy(image), torch.from_numpy(labels), index


def region_metrics(probabilities: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the clot-regions metrics (patient level, no bootstrap) of per-slice probabilities against
    per-slice labels, each patient's regions the union over its slices; undefined ones NaN."""

    def union(values: np.ndarray) -> tuple[int, ...]:
        rows = np.asarray(values, dtype=np.float64).reshape(-1, N_REGIONS)
        return tuple(int(v) for v in np.max(rows, axis=0, initial=0.0) >= 0.5)

    predicted = Rows({pid: union(p) for pid, p in probabilities.items()})
    labels = Rows({pid: union(t) for pid, t in truth.items()})
    report = score("clot-regions", predicted, labels, bootstrap=0)
    return metric_values(report)


def slice_cache_spec(spec_inputs: Sequence[Any], size: tuple[int, int, int], pipeline: str) -> CacheSpec:
    """Return the cache spec of a slice model: slices resized in-plane, region labels beside them."""
    return CacheSpec(tuple(spec_inputs), size, pipeline, layout="slices", labels="regions")


class SliceSamples:
    """Every slice of the training patients per epoch, shuffled from (seed, epoch); region labels."""

    def __init__(self, training: NetworkTraining, progress: Progress | None) -> None:
        spec, parameters, data = training.spec, training.parameters, training.data
        self.parameters = parameters
        cache = build_cache(
            data.dataset.root,
            [*data.train, *data.val],
            slice_cache_spec(spec.inputs, training.size, spec.pipeline),
            cache_root=training.request.cache_root or default_cache_root(),
            jobs=training.request.jobs,
            progress=progress,
        )
        training.note_cache(cache.folder)
        train_set = SliceInputs([cache.arrays[m.patient_id] for m in data.train])
        self.val_arrays = {m.patient_id: cache.arrays[m.patient_id] for m in data.val}
        self.sampler = EpochShuffle(len(train_set), parameters.seed)
        self.train_loader: DataLoader[Any]
        self.train_loader, _ = loaders(train_set, train_set, self.sampler, parameters)
        weight = parameters.positive_weight if parameters.loss == "weighted-bce" else None
        positive = None if weight is None else torch.full((N_REGIONS,), float(weight))
        self.loss = torch.nn.BCEWithLogitsLoss(pos_weight=positive).to(parameters.device)

    def augment(self, batch: torch.Tensor, indices: list[int], epoch: int) -> torch.Tensor:
        """Return the batch as it is (003 describes no augmentation)."""
        return batch

    def validate(self, model: Any) -> dict[str, float]:
        """Return the clot-regions metrics of ``model`` over the validation patients (slice unions)."""
        parameters = self.parameters
        found = {
            pid: slice_outputs(
                model, np.load(path, mmap_mode="r"), batch=parameters.batch_size, freeze=False,
                device=parameters.device, amp=parameters.amp,
            )
            for pid, path in self.val_arrays.items()
        }  # fmt: skip
        truth = {pid: np.load(label_path(path)) for pid, path in self.val_arrays.items()}
        return region_metrics(found, truth)
