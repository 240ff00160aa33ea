"""What a network reads in training: cached inputs through memory maps, the epoch orders, and the
augmentation of a batch, each drawn from (seed, epoch, sample) alone."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

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
        # a copy-on-write map: no copy here; the loader's collation copies the pages once, straight into
        # the batch (shared memory in a loader worker), and nothing ever writes to the file
        mapped = np.load(self.arrays[index], mmap_mode="c")
        return torch.from_numpy(mapped), self.labels[index], index


class ThreadedBatches:
    """Batches of a map-style dataset of (tensor, label, index) items read ahead by threads, for a GPU:
    each sample is copied from its memory map straight into a batch buffer (pinned with ``pin``), which a
    non-blocking copy then moves to the GPU; ``ahead`` batches are read in advance. Copies release
    Python's lock, so threads read in parallel without the processes, shared memory and pinning thread
    of DataLoader workers, which measured slower than the main process alone for these 85 MB samples
    (docs/performance.md). Yields (batch, labels, indices) in the sampler's order, like a DataLoader."""

    def __init__(
        self, dataset: Dataset[tuple[torch.Tensor, int, int]], batch_size: int, *, sampler: Any = None,
        drop_last: bool = False, threads: int = 4, pin: bool = False, ahead: int = 2,
    ) -> None:  # fmt: skip
        self.dataset, self.batch_size, self.sampler = dataset, batch_size, sampler
        self.drop_last, self.threads, self.pin, self.ahead = drop_last, threads, pin, max(1, ahead)

    def _order(self) -> list[list[int]]:
        indices = list(iter(self.sampler)) if self.sampler is not None else list(range(len(self)))
        batches = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __len__(self) -> int:
        """Return the number of samples of the dataset."""
        return len(self.dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield the batches of this epoch's order, read ahead."""
        batches = self._order()
        if not batches:
            return
        first = self.dataset[batches[0][0]][0]
        pending: deque[tuple[torch.Tensor, list[Future[Any]], list[int]]] = deque()

        def copy(buffer: torch.Tensor, position: int, index: int) -> Any:
            sample, label, _ = self.dataset[index]
            buffer[position].copy_(sample)
            return label

        with ThreadPoolExecutor(self.threads) as pool:

            def submit(batch: list[int]) -> None:
                buffer = torch.empty((len(batch), *first.shape), dtype=first.dtype, pin_memory=self.pin)
                pending.append(
                    (buffer, [pool.submit(copy, buffer, k, i) for k, i in enumerate(batch)], batch)
                )

            waiting = deque(batches)
            while waiting and len(pending) < self.ahead:
                submit(waiting.popleft())
            while pending:
                buffer, labels, batch = pending.popleft()
                read = [future.result() for future in labels]  # class indices, or label tensors (slices)
                found = torch.stack(read) if isinstance(read[0], torch.Tensor) else torch.tensor(read)
                if waiting:
                    submit(waiting.popleft())
                yield buffer, found, torch.tensor(batch)


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
