"""Training a network: inputs from the training cache (memory maps), the recipe's optimiser, schedule,
weighted loss and sampler, augmentation on the cached tensors, validation every epoch, the best and the
last checkpoint, and resumption that gives the same bytes as an uninterrupted run (on the CPU).

Randomness has three sources, each derived from the run's seed alone: the weights (the builder's seed),
the sampler and the augmentation ((seed, epoch), and the sample's index), and dropout (torch's generator,
saved in every checkpoint). Loader workers only read arrays, so their number changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from strokedata.executor import Progress
from strokedata.io import atomic_write_bytes, atomic_write_text
from strokedata.sampling import WeightedSampler, class_weights, sample_weights
from strokemodels.benchmark.files import Rows
from strokemodels.benchmark.scoring import score
from strokemodels.benchmark.tasks import TASKS
from strokemodels.errors import RunError
from strokemodels.registry import ModelEntry
from strokemodels.training.cache import CacheSpec, build_cache, default_cache_root
from strokemodels.training.checkpoints import CHECKPOINT_FORMAT, checkpoint_bytes, load_checkpoint
from strokemodels.training.inputs import CachedInputs, EpochShuffle, augment
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


class BinaryLoss(torch.nn.Module):
    """Binary cross-entropy of one logit per sample against 0/1 labels, the positive class weighted."""

    def __init__(self, positive_weight: float) -> None:
        super().__init__()
        self.bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([positive_weight]))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the mean loss of (B, 1) logits against (B,) labels."""
        return self.bce(logits[:, 0], labels.to(logits.dtype))  # type: ignore[no-any-return]


def _loss(parameters: TrainParameters, weights: np.ndarray, outputs: int) -> torch.nn.Module:
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


def _optimizer(parameters: TrainParameters, model: Any) -> Any:
    """Return the recipe's optimiser over the model's parameters."""
    rate, decay = parameters.learning_rate, parameters.weight_decay
    if parameters.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=parameters.momentum, weight_decay=decay)
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
        mu = self.parameters.class_weight_mu
        weights = class_weights(self.train_labels, n_classes=classes, mu=mu, empty="zero")
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
        outputs = 1 if self.spec.task == "recanalization" else classes
        self.loss = _loss(self.parameters, weights, outputs).to(self.device)
        self.rows: list[dict[str, float | int]] = []
        self.best: tuple[float, int] | None = None
        self.first_epoch = 0
        self.timings: list[str] = []

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
        self.record = self.record.model_copy(update={"cache": str(cache.folder)})
        write_record(self.folder, self.record)
        train_set = CachedInputs([cache.arrays[m.patient_id] for m in self.data.train], self.train_labels)
        val_set = CachedInputs(
            [cache.arrays[pid] for pid in self.val_ids], [self.val_labels[p] for p in self.val_ids]
        )
        workers, batch = self.parameters.loader_workers, self.parameters.batch_size
        # Each loader draws its workers' seeds from its own generator, never from torch's global state,
        # which dropout uses: otherwise persistent workers (one draw per run instead of one per epoch)
        # would change the weights. Workers live across epochs; pinned batches copy to a GPU as it computes.
        keep, pin = workers > 0, self.device == "cuda"
        # an incomplete last batch is left out (it could hold one sample: no batch statistics)
        self.train_loader: DataLoader[tuple[torch.Tensor, int, int]] = DataLoader(
            train_set, batch, sampler=self.sampler, num_workers=workers, persistent_workers=keep,
            pin_memory=pin, generator=torch.Generator().manual_seed(self.parameters.seed),
            drop_last=len(train_set) > batch,
        )  # fmt: skip
        self.val_loader: DataLoader[tuple[torch.Tensor, int, int]] = DataLoader(
            val_set, batch, num_workers=workers, persistent_workers=keep, pin_memory=pin,
            generator=torch.Generator().manual_seed(self.parameters.seed),
        )  # fmt: skip

    def resume(self) -> None:
        """Continue from the run folder's last checkpoint: weights, optimiser, schedule, torch's random
        state, the metrics so far and the best epoch (best.pt remade from last.pt when an interruption
        fell between writing the two)."""
        state = load_checkpoint(self.folder / LAST, self.spec.name)
        try:
            self.model.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if self.device == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.rows, best, self.first_epoch = list(state["rows"]), state["best"], int(state["epoch"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RunError(
                f"{self.folder / LAST} does not fit this run ({reason}); train into a new --out"
            ) from None
        self.best = None if best is None else (float(best[0]), int(best[1]))
        if self.best is not None:
            best_payload = self._best_payload(state)
            if self.best[1] == self.first_epoch:  # last.pt is the best: best.pt may not have followed
                path = self.folder / BEST
                if (load_checkpoint(path, self.spec.name) if path.is_file() else {}).get(
                    "epoch"
                ) != self.first_epoch:
                    atomic_write_bytes(path, checkpoint_bytes(best_payload))
            found = {
                "best_epoch": self.best[1],
                "best_metric": best_payload["metric"][self.parameters.select_by],
            }
            self.record = self.record.model_copy(update=found)
            write_record(self.folder, self.record)
        timings = self.folder / TIMINGS_FILE
        lines = timings.read_text(encoding="utf-8").splitlines()[1:] if timings.is_file() else []
        done = {str(epoch) for epoch in range(1, self.first_epoch + 1)}
        self.timings = [line for line in lines if line.split(",")[0] in done]

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

    def _best_payload(self, last: dict[str, Any]) -> dict[str, Any]:
        """Return best.pt's content from last.pt's: the weights and what chose them."""
        keep = ("format", "model", "spec", "input_size", "epoch", "state_dict")
        chosen = self.parameters.select_by
        signed = float(last["best"][0])
        value = -signed if chosen in TASKS[self.spec.task].lower_is_better else signed
        return {**{key: last[key] for key in keep}, "metric": {chosen: value}}

    def save(self, epoch: int, metrics: dict[str, float]) -> None:
        """Write last.pt (and metrics.csv), then best.pt when the epoch (counted from 1) is the best so
        far; record the best epoch in run.json."""
        parameters = self.parameters
        chosen = metrics[parameters.select_by]
        signed = -chosen if parameters.select_by in TASKS[self.spec.task].lower_is_better else chosen
        improved = chosen == chosen and (self.best is None or signed > self.best[0])
        if improved:
            self.best = (signed, epoch)
        last = {
            "format": CHECKPOINT_FORMAT,
            "model": self.spec.name,
            "spec": self.spec.model_dump(mode="json"),
            "input_size": list(self.size),
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device == "cuda" else None,
            "rows": self.rows,
            "best": self.best,
        }
        atomic_write_bytes(self.folder / LAST, checkpoint_bytes(last))
        atomic_write_text(self.folder / METRICS_FILE, metrics_csv(self.rows))
        if improved:
            atomic_write_bytes(self.folder / BEST, checkpoint_bytes(self._best_payload(last)))
            self.record = self.record.model_copy(update={"best_epoch": epoch, "best_metric": chosen})
            write_record(self.folder, self.record)

    def run(self, progress: Progress | None, on_epoch: EpochReport | None) -> None:
        """Train from the first epoch not done to the last, validating and saving after each."""
        torch.use_deterministic_algorithms(True, warn_only=True)
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
            self.save(epoch + 1, metrics)
            self.timings.append(f"{epoch + 1},{time.perf_counter() - began:.3f}")
            atomic_write_text(self.folder / TIMINGS_FILE, "\n".join(["epoch,seconds", *self.timings]) + "\n")
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
