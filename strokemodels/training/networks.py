"""Training a network: the samples of its kind (strokemodels.training.samples: volumes, slices or
patches, read from the training cache), the recipe's optimiser, schedule and loss, validation every
epoch, the best and the last checkpoint, and resumption that gives the same bytes as an uninterrupted
run (on the CPU).

Randomness has three sources, each derived from the run's seed alone: the weights (the builder's seed),
the sampler and the augmentation ((seed, epoch), and the sample's index), and dropout (torch's generator,
saved in every checkpoint). Loader workers only read arrays, so their number changes nothing.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from strokedata.executor import Progress
from strokedata.io import atomic_write_bytes, atomic_write_text
from strokemodels.benchmark.tasks import TASKS
from strokemodels.errors import RunError
from strokemodels.registry import ModelEntry
from strokemodels.training.checkpoints import CHECKPOINT_FORMAT, checkpoint_bytes, load_checkpoint
from strokemodels.training.partitions import TrainingData
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
from strokemodels.training.samples import Samples, samples_for

if TYPE_CHECKING:
    from strokemodels.training.train import EpochReport, TrainRequest


def _optimizer(parameters: TrainParameters, model: Any) -> Any:
    """Return the recipe's optimiser over the model's parameters."""
    rate, decay = parameters.learning_rate, parameters.weight_decay
    if parameters.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=parameters.momentum, weight_decay=decay)
    kind = torch.optim.AdamW if parameters.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=rate, weight_decay=decay)


def initial_weights(model: Any, path: Path) -> list[str]:
    """Load into ``model`` every tensor of the state dict at ``path`` whose name and shape match (a
    torchvision or timm state dict of the same architecture: all but the new head), read with torch's
    weights-only loader; return the model's names left as built. RunError when nothing matches."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file: pickle, zip or torch errors alike
        raise RunError(f"--init-weights {path} is not a readable state dict: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    own = model.state_dict()
    matching = {
        name: value
        for name, value in (state.items() if isinstance(state, dict) else [])
        if name in own and isinstance(value, torch.Tensor) and value.shape == own[name].shape
    }
    if not matching:
        raise RunError(
            f"--init-weights {path}: no tensor matches the network by name and shape; give a state dict of "
            "the same architecture"
        )
    model.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching))


def _head_parameters(model: Any, head_epochs: int) -> set[str]:
    """Return the names of the head's parameters, trained alone for ``head_epochs`` epochs (none: an
    empty set); RunError when the network does not name its head (``head_prefixes``)."""
    if not head_epochs:
        return set()
    prefixes = tuple(getattr(model, "head_prefixes", ()))
    if not prefixes:
        raise RunError(
            f"--head-epochs {head_epochs}: this network does not name its output head (head_prefixes); "
            "train it with --head-epochs 0"
        )
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


def _schedule(optimizer: Any, parameters: TrainParameters) -> Any:
    """Return the learning-rate schedule: cosine annealing over the epochs or constant, the rate times
    fine_tune_factor from the first epoch after the head epochs."""
    epochs, head = parameters.epochs, parameters.head_epochs
    if not head:
        if parameters.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    cosine = parameters.schedule == "cosine"

    def factor(epoch: int) -> float:
        shape = 0.5 * (1 + math.cos(math.pi * epoch / epochs)) if cosine else 1.0
        return shape * (1.0 if epoch < head else parameters.fine_tune_factor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class NetworkTraining:
    """One network's training run: its data, model, optimiser and schedule, epoch by epoch."""

    def __init__(
        self, entry: ModelEntry, record: RunRecord, data: TrainingData, request: TrainRequest
    ) -> None:
        self.folder, self.parameters, self.spec = request.out, record.parameters, entry.spec
        self.size = self.parameters.input_size or (1, 1, 1)
        self.record, self.data, self.request = record, data, request
        self.device = self.parameters.device
        self.model = entry.build(self.spec.at_size(self.parameters.input_size), self.parameters.seed)
        if self.parameters.init_weights is not None:
            initial_weights(self.model, Path(self.parameters.init_weights))
        self.model.to(self.device)
        self.optimizer = _optimizer(self.parameters, self.model)
        self.head = _head_parameters(self.model, self.parameters.head_epochs)
        self.scheduler = _schedule(self.optimizer, self.parameters)
        self.rows: list[dict[str, float | int]] = []
        self.best: tuple[float, int] | None = None
        self.first_epoch = 0
        self.timings: list[str] = []
        self.samples: Samples | None = None

    def load_data(self, progress: Progress | None) -> Samples:
        """Build (or reuse) the training cache and the loaders of the model's kind of sample."""
        self.samples = samples_for(self, progress)
        return self.samples

    def note_cache(self, folder: Path) -> None:
        """Record the training cache's folder in run.json."""
        self.record = self.record.model_copy(update={"cache": str(folder)})
        write_record(self.folder, self.record)

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
        samples = self._samples()
        parameters = self.parameters
        samples.sampler.set_epoch(epoch)
        self.model.train()
        if self.head:  # the head alone during the head epochs, every weight after them
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(epoch >= self.parameters.head_epochs or name in self.head)
        total, seen = 0.0, 0
        for batch, labels, indices in samples.train_loader:
            inputs = samples.augment(batch.to(self.device, non_blocking=True), indices.tolist(), epoch)
            with torch.autocast(
                "cuda", dtype=torch.bfloat16, enabled=parameters.amp and self.device == "cuda"
            ):
                loss = samples.loss(self.model(inputs).float(), labels.to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        return total / max(seen, 1)

    def _samples(self) -> Samples:
        if self.samples is None:
            raise RuntimeError("load_data() must come before training")
        return self.samples

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
            patience = self.parameters.patience
            if patience is not None and self.best is not None and epoch - self.best[1] >= patience:
                break  # early stopping: no better epoch for `patience` epochs (resumes stop here too)
            began = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            learning_rate = float(self.optimizer.param_groups[0]["lr"])
            self.scheduler.step()
            metrics = self._samples().validate(self.model)
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
