"""Whole-volume samples (occlusion, recanalization): one cached input per patient, classified (a softmax
over the classes, or one sigmoid), the loss weighted by the log-smoothed class weights and the sampler
drawing by them, the validation metrics those of the benchmark's scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from strokedata.executor import Progress
from strokedata.sampling import WeightedSampler, class_weights, sample_weights
from strokemodels.benchmark.files import Rows
from strokemodels.benchmark.scoring import score
from strokemodels.benchmark.tasks import TASKS
from strokemodels.training.cache import CacheSpec, build_cache, default_cache_root
from strokemodels.training.inputs import CachedInputs, EpochShuffle, ThreadedBatches, augment
from strokemodels.training.partitions import task_label
from strokemodels.training.run import TrainParameters, metric_values
from strokemodels.training.samples import BinaryLoss, EpochSampler

if TYPE_CHECKING:
    from strokemodels.training.networks import NetworkTraining


def class_probabilities(logits: torch.Tensor) -> np.ndarray:
    """Return per-sample probabilities from a network's logits: a softmax over classes, or for one output
    the sigmoid (the probability of the positive class)."""
    values = logits.float()
    probabilities = torch.sigmoid(values) if values.shape[1] == 1 else torch.softmax(values, dim=1)
    return np.asarray(probabilities.detach().cpu().numpy(), dtype=np.float64)


def validation_metrics(
    task: str, probabilities: dict[str, np.ndarray], truth: dict[str, int]
) -> dict[str, float]:
    """Return the task's metrics (the benchmark's scoring, no bootstrap) of class probabilities against
    labels, by patient id; an undefined metric is NaN."""
    card = TASKS[task]
    if task == "recanalization":
        predicted = Rows(
            {pid: int(p[0] >= 0.5) for pid, p in probabilities.items()},
            {pid: (float(p[0]),) for pid, p in probabilities.items()},
        )
        labels = Rows(dict(truth))
    else:
        predicted = Rows(
            {pid: card.classes[int(np.argmax(p))] for pid, p in probabilities.items()},
            {pid: tuple(float(v) for v in p) for pid, p in probabilities.items()},
        )
        labels = Rows({pid: card.classes[label] for pid, label in truth.items()})
    return metric_values(score(task, predicted, labels, bootstrap=0))


def predict_probabilities(
    model: Any, loader: Any, ids: Sequence[str], device: str, amp: bool
) -> dict[str, np.ndarray]:
    """Return each patient's class probabilities (the loader's items, in any order), by patient id."""
    found: dict[str, np.ndarray] = {}
    model.eval()
    with torch.no_grad():
        for batch, _, indices in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda"):
                logits = model(batch.to(device))
            for index, row in zip(indices.tolist(), class_probabilities(logits), strict=True):
                found[ids[index]] = row
    return found


def class_loss(parameters: TrainParameters, weights: np.ndarray, outputs: int) -> torch.nn.Module:
    """Return the recipe's loss for a network of ``outputs`` logits: cross-entropy over the classes, or
    binary cross-entropy for one logit; weighted by the class weights for the 'weighted-' losses (for one
    logit, the positive class by the ratio of the two weights)."""
    weighted = parameters.loss.startswith("weighted")
    if outputs == 1:
        positive = float(weights[1] / weights[0]) if weighted and weights[0] > 0 else 1.0
        return BinaryLoss(positive)
    if weighted:
        return torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    return torch.nn.CrossEntropyLoss()


def loaders(train_set: Any, val_set: Any, sampler: Any, parameters: TrainParameters) -> tuple[Any, Any]:
    """Return the training and validation loaders of a run.

    On CUDA with ``loader_workers`` N > 0: N threads read batches ahead into pinned memory
    (ThreadedBatches). Otherwise DataLoaders with N worker processes (pinned batches on CUDA), each
    loader drawing its workers' seeds from its own generator, never from torch's global state, which
    dropout uses: otherwise persistent workers (one draw per run instead of one per epoch) would change
    the weights. Workers live across epochs. An incomplete last training batch is left out (it could
    hold one sample: no batch statistics)."""
    workers, batch = parameters.loader_workers, parameters.batch_size
    drop = len(train_set) > batch
    if parameters.device == "cuda" and workers > 0:
        return (
            ThreadedBatches(train_set, batch, sampler=sampler, drop_last=drop, threads=workers, pin=True),
            ThreadedBatches(val_set, batch, threads=workers, pin=True),
        )
    keep, pin = workers > 0, parameters.device == "cuda"
    train = DataLoader(
        train_set, batch, sampler=sampler, num_workers=workers, persistent_workers=keep, pin_memory=pin,
        generator=torch.Generator().manual_seed(parameters.seed), drop_last=drop,
    )  # fmt: skip
    val = DataLoader(
        val_set, batch, num_workers=workers, persistent_workers=keep, pin_memory=pin,
        generator=torch.Generator().manual_seed(parameters.seed),
    )  # fmt: skip
    return train, val


class VolumeSamples:
    """A patient's whole cached volume per sample, its class label; validation scores every validation
    patient with the benchmark's metrics."""

    def __init__(self, training: NetworkTraining, progress: Progress | None) -> None:
        spec, parameters, data = training.spec, training.parameters, training.data
        self.task, self.parameters = spec.task, parameters
        train_labels = [task_label(spec.task, m) or 0 for m in data.train]
        self.val_labels = {m.patient_id: task_label(spec.task, m) or 0 for m in data.val}
        self.val_ids = [m.patient_id for m in data.val]
        classes = len(TASKS[spec.task].classes)
        weights = class_weights(train_labels, n_classes=classes, mu=parameters.class_weight_mu, empty="zero")
        self.sampler: EpochSampler = (
            WeightedSampler(sample_weights(train_labels, weights), seed=parameters.seed)
            if parameters.weighted_sampler
            else EpochShuffle(len(train_labels), parameters.seed)
        )
        outputs = 1 if spec.task == "recanalization" else classes
        self.loss = class_loss(parameters, weights, outputs).to(parameters.device)
        cache = build_cache(
            data.dataset.root,
            [*data.train, *data.val],
            CacheSpec(tuple(spec.inputs), training.size, spec.pipeline),
            cache_root=training.request.cache_root or default_cache_root(),
            jobs=training.request.jobs,
            progress=progress,
        )
        training.note_cache(cache.folder)
        train_set = CachedInputs([cache.arrays[m.patient_id] for m in data.train], train_labels)
        val_set = CachedInputs(
            [cache.arrays[pid] for pid in self.val_ids], [self.val_labels[p] for p in self.val_ids]
        )
        self.train_loader, self.val_loader = loaders(train_set, val_set, self.sampler, parameters)

    def augment(self, batch: torch.Tensor, indices: list[int], epoch: int) -> torch.Tensor:
        """Return the batch augmented by the recipe's kinds (strokemodels.training.inputs.augment)."""
        return augment(batch, indices, self.parameters.augment, self.parameters.seed, epoch)

    def validate(self, model: Any) -> dict[str, float]:
        """Return the task's metrics of ``model`` over the validation patients."""
        found = predict_probabilities(
            model, self.val_loader, self.val_ids, self.parameters.device, self.parameters.amp
        )
        return validation_metrics(self.task, found, self.val_labels)
