"""Patch samples (the CTP transformer, de Vries et al. 2021): patches of 32 x 32 pixels x 32 frames of
the CTP series with its mirrored copy as a second channel, their centres drawn half core and half not
every epoch (strokedata.sampling.PatchDataset); the label is the core value of the centre (the top-left
pixel of the central 2 x 2 block, which PatchDataset balances on). Validation maps the validation
patients with the transformer over overlapping patches (every ``VALIDATION_STRIDE`` pixels, each patch
filling its central block) and scores the thresholded maps with the core task's metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torchio as tio
from torch.utils.data import DataLoader, Dataset

from strokedata.executor import Progress
from strokedata.manifest import Modality
from strokedata.preprocess import PIPELINES
from strokedata.sampling import PatchDataset
from strokedata.subjects import patient_subject
from strokemodels.training.samples import BinaryLoss

if TYPE_CHECKING:
    from strokemodels.training.networks import NetworkTraining

PATCH, FRAMES = 32, 32
VALIDATION_STRIDE = 8
"""Pixels between the centres of the validation maps' patches (prediction uses the run's stride)."""


class PatchInputs(Dataset[tuple[torch.Tensor, float, int]]):
    """A PatchDataset's items as (patch float32 (2, x, y, frames), centre label, index); ``set_epoch``
    draws the epoch's centres."""

    def __init__(self, patches: PatchDataset) -> None:
        self.patches = patches

    def set_epoch(self, epoch: int) -> None:
        """Draw the centres of ``epoch`` (from the run's seed and the epoch alone)."""
        self.patches.set_epoch(epoch)

    def __len__(self) -> int:
        """Return the patches per epoch."""
        return len(self.patches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, int]:
        """Return patch ``index`` of the epoch with the frames last, its label and its index."""
        item = self.patches[index]
        patch = torch.from_numpy(np.ascontiguousarray(np.moveaxis(item["patch"], 1, -1)))
        return patch, float(item["label"]), index


class PatchSamples:
    """Balanced patches of the training patients; validation maps of the validation patients."""

    def __init__(self, training: NetworkTraining, progress: Progress | None) -> None:
        from strokemodels.training.core import CoreValidation

        spec, parameters, data = training.spec, training.parameters, training.data
        self.parameters = parameters
        root = data.dataset.root
        subjects = [patient_subject(root, m, [Modality.CTP, Modality.CORE]) for m in data.train]
        patches = PatchDataset(
            subjects,
            patches_per_epoch=parameters.samples_per_epoch or 2048,
            seed=parameters.seed,
            frames=FRAMES,
            channels=2,
            size=PATCH,
            # the loading steps change a subject in place: copy it first, so that each read starts afresh
            transform=tio.Compose(list(PIPELINES[spec.pipeline].loading().transforms), copy=True),
        )
        self.sampler = PatchInputs(patches)
        self.train_loader: DataLoader[Any] = DataLoader(
            self.sampler, parameters.batch_size, shuffle=False, num_workers=0,
            drop_last=len(self.sampler) > parameters.batch_size,
        )  # fmt: skip
        self.loss = BinaryLoss(1.0).to(parameters.device)  # the centres are balanced: no class weight
        self.validation = CoreValidation(training, VALIDATION_STRIDE)

    def augment(self, batch: torch.Tensor, indices: list[int], epoch: int) -> torch.Tensor:
        """Return the batch as it is (002 describes no augmentation)."""
        return batch

    def validate(self, model: Any) -> dict[str, float]:
        """Return the core metrics of the thresholded attention maps of the validation patients."""
        return self.validation.transformer_metrics(model)
