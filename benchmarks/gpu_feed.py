"""Does the training cache keep a GPU fed? The occlusion networks trained at the paper's input size
(three 512 x 512 x 27 float32 maps per patient, batch 4, the recipe's rotation on the GPU) from cached
arrays read through memory maps by 0, 4 and 8 DataLoader workers (pinned memory, persistent workers)
or by 4 and 8 threads of strokebench's ThreadedBatches (straight into pinned buffers),
in fp32 and with bf16 autocast; side by side, the same steps on a batch already on the GPU (what the
network consumes when data cost nothing). Reports patients/s and the share of the wall time spent
waiting for the next batch.

The cached arrays are synthetic (the cache's layout and size; values do not change the cost) and were
just written, so they are in the page cache: the case of a cache that fits in memory.

    python benchmarks/gpu_feed.py --out gpu_feed.md        # needs CUDA
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from strokemodels.training.inputs import CachedInputs, EpochShuffle, ThreadedBatches, augment
from strokemodels.zoo.nets3d import CBAM3dCNN, ResNet18CBAM3d

SHAPE = (3, 512, 512, 27)
NETWORKS = {"cbam3d": CBAM3dCNN, "resnet18-cbam3d": ResNet18CBAM3d}


def _arrays(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"p{index:03d}.npy"
        np.save(path, rng.random(SHAPE, dtype=np.float32))
        paths.append(path)
    return paths


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
          labels: torch.Tensor, indices: list[int], amp: bool, epoch: int) -> None:  # fmt: skip
    inputs = augment(batch, indices, ["rotate-z"], 0, epoch)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(model(inputs).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(
    name: str, paths: list[Path], workers: int | None, amp: bool, epochs: int, batch: int, threads: int = 0
) -> dict[str, Any]:
    """Train ``epochs`` epochs; ``workers`` None: the batch stays on the GPU (no loading at all);
    ``threads``: read by strokebench's ThreadedBatches instead of a DataLoader."""
    torch.manual_seed(0)
    model = NETWORKS[name](3, 3).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    labels = [index % 3 for index in range(len(paths))]
    dataset = CachedInputs(paths, labels)
    resident = torch.stack([dataset[i][0] for i in range(batch)]).cuda() if workers is None else None
    loader: Any = None
    if threads:
        loader = ThreadedBatches(
            dataset, batch, sampler=EpochShuffle(len(paths), 0), drop_last=True, threads=threads, pin=True
        )
    elif workers is not None:
        loader = DataLoader(
            dataset, batch, shuffle=True, num_workers=workers, pin_memory=True,
            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0), drop_last=True,
        )  # fmt: skip
    steps_per_epoch = len(paths) // batch
    waited = 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up (cuDNN choices, workers starting)
        if epoch == 1:
            torch.cuda.synchronize()
            began, waited = time.perf_counter(), 0.0
        if loader is None:
            for _ in range(steps_per_epoch):
                target = torch.tensor(labels[:batch], device="cuda")
                _step(model, optimizer, resident, target, list(range(batch)), amp, epoch)  # type: ignore[arg-type]
            continue
        iterator = iter(loader)
        for _ in range(steps_per_epoch):
            torch.cuda.synchronize()  # the step before is done: time from here is waiting for data
            start = time.perf_counter()
            cpu_batch, target, indices = next(iterator)
            on_gpu = cpu_batch.cuda(non_blocking=True)
            target = target.cuda(non_blocking=True)
            torch.cuda.synchronize()
            waited += time.perf_counter() - start
            _step(model, optimizer, on_gpu, target, indices.tolist(), amp, epoch)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    patients = epochs * steps_per_epoch * batch
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    del model, optimizer, loader
    torch.cuda.empty_cache()
    return {"model": name, "precision": "bf16" if amp else "fp32",
            "loader": f"{threads} threads" if threads else "on GPU (no loading)" if workers is None
            else f"{workers} workers",
            "patients_per_s": patients / seconds, "waiting": waited / seconds, "peak_gib": peak}  # fmt: skip


def _row(
    name: str, paths: list[Path], workers: int | None, amp: bool, epochs: int, batch: int, threads: int = 0
) -> str:
    """Return one table row, or a row saying the configuration did not fit in GPU memory."""
    try:
        found = measure(name, paths, workers, amp, epochs, batch, threads)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        loader = "on GPU" if workers is None else f"{workers} workers"
        return f"| {name} | {'bf16' if amp else 'fp32'} | {loader} | out of GPU memory | - | - |"
    return (
        f"| {found['model']} | {found['precision']} | {found['loader']} | {found['patients_per_s']:.1f} | "
        f"{found['waiting']:.0%} | {found['peak_gib']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("gpu_feed.md"))
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    arguments = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    lines = [
        f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"{arguments.patients} patients x {arguments.epochs} epochs, batch {arguments.batch}",
        "",
        "| model | precision | loader | patients/s | waiting for data | peak GPU memory (GiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        paths = _arrays(Path(folder), arguments.patients)
        for name in arguments.models:
            for amp in (False, True):
                for workers, threads in ((None, 0), (0, 0), (4, 0), (8, 0), (0, 4), (0, 8)):
                    line = _row(name, paths, workers, amp, arguments.epochs, arguments.batch, threads)
                    lines.append(line)
                    print(line, flush=True)
    arguments.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
