"""What a network trains on, by the kind of sample its spec names (``ModelSpec.sample``): whole volumes
(strokemodels.training.volumes), axial slices (slices) or patches of a 4D series (patches). Each kind
builds its loaders, its loss and its validation; ``NetworkTraining`` (networks) runs the epochs, the
checkpoints and the resumption the same way for all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from strokedata.executor import Progress
    from strokemodels.training.networks import NetworkTraining


class EpochSampler(Protocol):
    """A sampler whose order is drawn from (seed, epoch): ``set_epoch`` chooses the epoch."""

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""


class Samples(Protocol):
    """One kind of sample: the training loader and its epoch sampler, the loss, the augmentation of a
    training batch, and the validation metrics of a model."""

    train_loader: Any
    sampler: Any  # an EpochSampler
    loss: Any  # a torch.nn.Module: loss(outputs, labels)

    def augment(self, batch: torch.Tensor, indices: list[int], epoch: int) -> torch.Tensor:
        """Return a training batch augmented per sample from (seed, epoch, index)."""

    def validate(self, model: Any) -> dict[str, float]:
        """Return the task's metrics of ``model`` on the validation patients (NaN where undefined)."""


class BinaryLoss(torch.nn.Module):
    """Binary cross-entropy of one logit per sample against 0/1 labels, the positive class weighted."""

    def __init__(self, positive_weight: float) -> None:
        super().__init__()
        self.bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([positive_weight]))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the mean loss of (B, 1) logits against (B,) labels."""
        return self.bce(logits[:, 0], labels.to(logits.dtype))  # type: ignore[no-any-return]


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Return the mean of each metric over patients, NaN values left aside (NaN when all are)."""
    names = list(rows[0]) if rows else []
    found = {}
    for name in names:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        found[name] = float(finite.mean()) if finite.size else float("nan")
    return found


def samples_for(training: NetworkTraining, progress: Progress | None) -> Samples:
    """Return the samples of a run's model kind, their cache built (or reused) and recorded."""
    kind = training.spec.sample
    if training.spec.stage_of is not None:
        from strokemodels.training.core import UNetSamples

        return UNetSamples(training, progress)
    if kind == "slice":
        from strokemodels.training.slices import SliceSamples

        return SliceSamples(training, progress)
    if kind == "patch":
        from strokemodels.training.patches import PatchSamples

        return PatchSamples(training, progress)
    from strokemodels.training.volumes import VolumeSamples

    return VolumeSamples(training, progress)
