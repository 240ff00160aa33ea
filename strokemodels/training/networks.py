"""Training a network: inputs from the training cache (memory maps), the recipe's optimiser, schedule,
weighted loss and sampler, augmentation on the cached tensors, validation every epoch, the best and the
last checkpoint, and resumption that gives the same bytes as an uninterrupted run (on the CPU).

Randomness has three sources, each derived from the run's seed alone: the weights (the builder's seed),
the sampler and the augmentation ((seed, epoch), and the sample's index), and dropout (torch's generator,
saved in every checkpoint). Loader workers only read arrays, so their number changes nothing.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from strokedata.executor import Progress
from strokedata.io import atomic_write_bytes, atomic_write_text
from strokedata.sampling import WeightedSampler, class_weights, sample_weights
from strokemodels.benchmark.files import Rows
from strokemodels.benchmark.scoring import score
from strokemodels.benchmark.tasks import TASKS
from strokemodels.errors import RunError
from strokemodels.registry import ModelEntry
from strokemodels.training.cache import CacheSpec, build_cache, default_cache_root
from strokemodels.training.partitions import TrainingData, task_label
from strokemodels.training.run import (
    BEST,
    LAST,
    METRICS_FILE,
    TIMINGS_FILE,
    RunRecord,
    TrainParameters,
    metrics_csv,
    write_record,
)

if TYPE_CHECKING:
    from strokemodels.training.train import EpochReport, TrainRequest

CHECKPOINT_FORMAT = 1
ROTATION_DEGREES = 10.0


class CachedInputs(Dataset[tuple[torch.Tensor, int, int]]):
    """A map-style dataset of cached inputs: item i is (the array as a float32 tensor, label, i)."""

    def __init__(self, arrays: Sequence[Path], labels: Sequence[int]) -> None:
        self.arrays, self.labels = list(arrays), list(labels)

    def __len__(self) -> int:
        """Return the number of patients."""
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """Return patient ``index``'s input (read through a memory map), its label and its index."""
        return (
            torch.from_numpy(np.array(np.load(self.arrays[index], mmap_mode="r"))),
            self.labels[index],
            index,
        )


class EpochShuffle:
    """Every index once per epoch, in an order drawn from (seed, epoch): a sampler like WeightedSampler."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed, self.epoch = count, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Any:
        """Return an iterator over this epoch's order."""
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.count).tolist())

    def __len__(self) -> int:
        """Return the number of indices per epoch."""
        return self.count


def augment(
    batch: torch.Tensor, indices: Sequence[int], kinds: Sequence[str], seed: int, epoch: int
) -> torch.Tensor:
    """Return the batch (B, C, X, Y, Z) augmented per sample from (seed, epoch, index): 'rotate-z' turns
    every axial slice by up to 10 degrees (bilinear), 'flip-y' and 'flip-z' flip those axes by chance.
    The draws are made on the CPU; the arithmetic runs where the batch is (on the GPU when training there)."""
    if not kinds:
        return batch
    out = []
    for sample, index in zip(batch, indices, strict=True):
        rng = np.random.default_rng([seed, epoch, int(index)])
        if "rotate-z" in kinds:
            angle = np.deg2rad(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
            cos, sin = float(np.cos(angle)), float(np.sin(angle))
            # grid_sample's 3D grid is (x=W: the last axis, y=H, z=D); the volume axes (X, Y, Z) are (D, H, W)
            rows = [[1.0, 0, 0, 0], [0, cos, -sin, 0], [0, sin, cos, 0]]
            theta = torch.tensor(rows, dtype=sample.dtype, device=sample.device)
            grid = F.affine_grid(theta[None], [1, *sample.shape], align_corners=False)
            sample = F.grid_sample(
                sample[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )[0]
        for kind, axis in (("flip-y", 2), ("flip-z", 3)):
            if kind in kinds and rng.random() < 0.5:
                sample = torch.flip(sample, dims=[axis])
        out.append(sample)
    return torch.stack(out)


def _checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


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
    report = score(task, predicted, labels, bootstrap=0)
    return {
        name: float("nan") if metric.value is None else metric.value
        for name, metric in report.metrics.items()
    }


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


def _loss(parameters: TrainParameters, labels: Sequence[int], classes: int, device: str) -> Any:
    """Return the recipe's loss: cross-entropy, weighted by the log-smoothed inverse frequencies of the
    training labels for 'weighted-cross-entropy'."""
    if parameters.loss == "weighted-cross-entropy":
        weights = torch.tensor(class_weights(labels, n_classes=classes, empty="zero"), dtype=torch.float32)
        return torch.nn.CrossEntropyLoss(weight=weights.to(device))
    return torch.nn.CrossEntropyLoss()


def _optimizer(parameters: TrainParameters, model: Any) -> Any:
    """Return the recipe's optimiser over the model's parameters."""
    rate, decay = parameters.learning_rate, parameters.weight_decay
    if parameters.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=0.9, weight_decay=decay)
    kind = torch.optim.AdamW if parameters.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=rate, weight_decay=decay)


class NetworkTraining:
    """One network's training run: its data, model, optimiser and schedule, epoch by epoch."""

    def __init__(
        self, entry: ModelEntry, record: RunRecord, data: TrainingData, request: TrainRequest
    ) -> None:
        self.folder, self.parameters, self.spec = request.out, record.parameters, entry.spec
        self.size = self.parameters.input_size or (1, 1, 1)
        self.record, self.data, self.request = record, data, request
        self.train_labels = [task_label(self.spec.task, m) or 0 for m in data.train]
        self.val_labels = {m.patient_id: task_label(self.spec.task, m) or 0 for m in data.val}
        self.val_ids = [m.patient_id for m in data.val]
        classes = len(TASKS[self.spec.task].classes)
        weights = class_weights(self.train_labels, n_classes=classes, empty="zero")
        self.sampler: WeightedSampler | EpochShuffle = (
            WeightedSampler(sample_weights(self.train_labels, weights), seed=self.parameters.seed)
            if self.parameters.weighted_sampler
            else EpochShuffle(len(self.train_labels), self.parameters.seed)
        )
        self.device = self.parameters.device
        self.model = entry.build(self.spec, self.parameters.seed).to(self.device)
        self.optimizer = _optimizer(self.parameters, self.model)
        epochs = self.parameters.epochs
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs)
            if self.parameters.schedule == "cosine"
            else torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        )
        self.loss = _loss(self.parameters, self.train_labels, classes, self.device)
        self.rows: list[dict[str, float | int]] = []
        self.best: tuple[float, int] | None = None
        self.first_epoch = 0

    def load_data(self, progress: Progress | None) -> None:
        """Build (or reuse) the training cache and the loaders; record the cache folder in run.json."""
        spec = CacheSpec(tuple(self.spec.inputs), self.size, self.spec.pipeline)
        cache = build_cache(
            self.data.dataset.root,
            [*self.data.train, *self.data.val],
            spec,
            cache_root=self.request.cache_root or default_cache_root(),
            jobs=self.request.jobs,
            progress=progress,
        )
        write_record(self.folder, self.record.model_copy(update={"cache": str(cache.folder)}))
        train_set = CachedInputs([cache.arrays[m.patient_id] for m in self.data.train], self.train_labels)
        val_set = CachedInputs(
            [cache.arrays[pid] for pid in self.val_ids], [self.val_labels[p] for p in self.val_ids]
        )
        workers, batch = self.parameters.loader_workers, self.parameters.batch_size
        # Each loader draws its workers' seeds from its own generator, never from torch's global state,
        # which dropout uses: otherwise persistent workers (one draw per run instead of one per epoch)
        # would change the weights. Workers live across epochs; pinned batches copy to a GPU as it computes.
        keep, pin = workers > 0, self.device == "cuda"
        self.train_loader: DataLoader[tuple[torch.Tensor, int, int]] = DataLoader(
            train_set, batch, sampler=self.sampler, num_workers=workers, persistent_workers=keep,
            pin_memory=pin, generator=torch.Generator().manual_seed(self.parameters.seed),
        )  # fmt: skip
        self.val_loader: DataLoader[tuple[torch.Tensor, int, int]] = DataLoader(
            val_set, batch, num_workers=workers, persistent_workers=keep, pin_memory=pin,
            generator=torch.Generator().manual_seed(self.parameters.seed),
        )  # fmt: skip

    def resume(self) -> None:
        """Continue from the run folder's last checkpoint: weights, optimiser, schedule, torch's random
        state, the metrics so far and the best epoch."""
        state = torch.load(self.folder / LAST, map_location=self.device, weights_only=False)
        if state.get("model") != self.spec.name:
            raise RunError(
                f"{self.folder / LAST} holds a checkpoint of {state.get('model')}, not {self.spec.name}"
            )
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.rows, self.best, self.first_epoch = state["rows"], state["best"], state["epoch"] + 1

    def train_epoch(self, epoch: int) -> float:
        """Train one epoch and return its mean loss."""
        parameters = self.parameters
        self.sampler.set_epoch(epoch)
        self.model.train()
        total, seen = 0.0, 0
        for batch, labels, indices in self.train_loader:
            on_device = batch.to(self.device, non_blocking=True)
            inputs = augment(on_device, indices.tolist(), parameters.augment, parameters.seed, epoch)
            with torch.autocast(
                "cuda", dtype=torch.bfloat16, enabled=parameters.amp and self.device == "cuda"
            ):
                loss = self.loss(self.model(inputs).float(), labels.to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        return total / max(seen, 1)

    def save(self, epoch: int, metrics: dict[str, float]) -> None:
        """Write best.pt when the epoch is the best so far, then last.pt and metrics.csv."""
        parameters = self.parameters
        chosen = metrics[parameters.select_by]
        signed = -chosen if parameters.select_by in TASKS[self.spec.task].lower_is_better else chosen
        payload: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model": self.spec.name,
            "spec": self.spec.model_dump(mode="json"),
            "input_size": list(self.size),
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
        }
        if chosen == chosen and (self.best is None or signed > self.best[0]):
            self.best = (signed, epoch + 1)
            atomic_write_bytes(
                self.folder / BEST, _checkpoint_bytes({**payload, "metric": {parameters.select_by: chosen}})
            )
        resumable = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device == "cuda" else None,
            "rows": self.rows,
            "best": self.best,
        }
        atomic_write_bytes(self.folder / LAST, _checkpoint_bytes({**payload, **resumable}))
        atomic_write_text(self.folder / METRICS_FILE, metrics_csv(self.rows))

    def run(self, progress: Progress | None, on_epoch: EpochReport | None) -> None:
        """Train from the first epoch not done to the last, validating and saving after each."""
        torch.use_deterministic_algorithms(True, warn_only=True)
        timings = ["epoch,seconds"]
        for epoch in range(self.first_epoch, self.parameters.epochs):
            began = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            learning_rate = float(self.optimizer.param_groups[0]["lr"])
            self.scheduler.step()
            found = predict_probabilities(
                self.model, self.val_loader, self.val_ids, self.device, self.parameters.amp
            )
            metrics = validation_metrics(self.spec.task, found, self.val_labels)
            row: dict[str, float | int] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": learning_rate}
            row.update({f"val_{name}": value for name, value in metrics.items()})
            self.rows.append(row)
            self.save(epoch, metrics)
            timings.append(f"{epoch + 1},{time.perf_counter() - began:.3f}")
            atomic_write_text(self.folder / TIMINGS_FILE, "\n".join(timings) + "\n")
            if progress is not None:
                progress("epochs", epoch + 1, self.parameters.epochs)
            if on_epoch is not None:
                on_epoch(row)
        if self.best is None:
            raise RunError(
                f"no epoch gave a {self.parameters.select_by}: the validation metric stayed undefined"
            )


def fit_network(
    entry: ModelEntry,
    record: RunRecord,
    data: TrainingData,
    request: TrainRequest,
    progress: Progress | None,
    on_epoch: EpochReport | None,
) -> None:
    """Train a network over its epochs (from the last checkpoint when resuming), writing metrics.csv,
    last.pt and best.pt into the run folder."""
    training = NetworkTraining(entry, record, data, request)
    training.load_data(progress)
    devices = list(range(torch.cuda.device_count())) if training.device == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout draws from the run's seed, not the caller's state
        torch.manual_seed(record.parameters.seed)
        if request.resume and (request.out / LAST).is_file():
            training.resume()
        training.run(progress, on_epoch)
