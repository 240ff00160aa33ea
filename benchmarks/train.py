"""What the training loader delivers against what the occlusion models consume, at the paper's input size
(three 512x512x27 float32 maps per patient), side by side in one run:

  nii.gz     reading the three maps of a patient from the canonical dataset (strokedata.io, ISA-L)
  noisy      the same maps with Gaussian noise (2% of each map's range) added before compression:
             phantom maps are smooth and compress far better than scanner output, so this row is the
             closer stand-in for real data
  cache      the same patient from the training cache (.npy through a memory map), DataLoader of 0 and 2
             workers
  augment    the recipe's rotation of one patient's maps on this device (it runs where the batch is)
  step       one training step (forward, backward, Adam) of cbam3d and resnet18-cbam3d at the batch sizes
             asked for (--batches; 1 by default), each in a fresh process that reports its peak memory
             (resident set on the CPU, torch's peak allocation on CUDA), so a step that does not fit is
             reported as such instead of ending the run

and the share of an epoch spent on data when preparing and stepping alternate (no overlap, the worst
case): (read + augment) / (read + augment + step) per patient.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/train.py [--device cuda]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from common import cached_dataset, median_seconds

from strokedata import load_dataset
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.manifest import Modality
from strokedata.phantoms import preset
from strokemodels.registry import get_model
from strokemodels.training.cache import CacheSpec, build_cache
from strokemodels.training.inputs import CachedInputs, augment

MAPS = (Modality.CBF, Modality.CBV, Modality.TMAX)
SIZE = (512, 512, 27)


def _read_niigz(paths: list[Path]) -> None:
    for path in paths:
        np.asarray(read_volume(path, MAX_VOXELS).scaled(), dtype=np.float32)


def _rotate(sample: torch.Tensor) -> None:
    augment(sample, [0], ["rotate-z"], 0, 0)
    if sample.is_cuda:
        torch.cuda.synchronize()


def _noisy_copies(paths: list[Path], folder: Path) -> list[Path]:
    """Return copies of ``paths`` in ``folder`` with seeded Gaussian noise of 2% of each map's range."""
    rng = np.random.default_rng(0)
    copies = []
    for index, path in enumerate(paths):
        image = nib.load(path)
        data = np.asarray(image.get_fdata(), dtype=np.float32)
        noise = rng.normal(0.0, 0.02 * float(np.ptp(data)) or 1.0, data.shape).astype(np.float32)
        copy = folder / f"{index}.nii.gz"
        nib.save(nib.Nifti1Image(data + noise, image.affine), copy)
        copies.append(copy)
    return copies


def _read_cache(arrays: list[Path], workers: int) -> None:
    loader = torch.utils.data.DataLoader(
        CachedInputs(arrays, [0] * len(arrays)), batch_size=1, num_workers=workers
    )
    for _ in loader:
        pass


def _step_seconds(name: str, batch: int, device: str, repeats: int) -> tuple[float, float]:
    """Return the median seconds of one training step and the peak memory in GB (run in a child)."""
    entry = get_model(name)
    model = entry.build(entry.spec, 0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.rand(batch, 3, *SIZE, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    seconds = median_seconds(step, repeats)
    if device == "cuda":
        return seconds, torch.cuda.max_memory_allocated() / 1e9
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _step_in_child(name: str, batch: int, device: str, repeats: int) -> tuple[float, float] | None:
    """Return :func:`_step_seconds` measured in a fresh process, or None when that process died."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        try:
            return pool.submit(_step_seconds, name, batch, device, repeats).result()
        except BrokenProcessPool:  # killed (out of memory): a result to report
            return None


def _share(data: float, step: float) -> float:
    """Return the share of a patient's time spent on its data (read and augmented) when reading and
    stepping alternate."""
    return data / (data + step)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "train")
    arguments = parser.parse_args()
    root = cached_dataset(arguments.data, arguments.patients, preset("realistic", modalities=list(MAPS)))
    dataset = load_dataset(root)
    ids = dataset.ids
    with tempfile.TemporaryDirectory() as cache_root:
        started = time.perf_counter()
        cache = build_cache(
            dataset.root,
            list(dataset),
            CacheSpec(MAPS, SIZE, "occlusion"),
            cache_root=Path(cache_root),
            jobs=1,
        )
        built = (time.perf_counter() - started) / len(ids)
        arrays = [cache.arrays[pid] for pid in ids]
        paths = [dataset.image_path(pid, modality) for pid in ids for modality in MAPS]
        niigz = median_seconds(lambda: _read_niigz(paths), arguments.repeats) / len(ids)
        noisy_paths = _noisy_copies(paths, Path(cache_root))
        noisy = median_seconds(lambda: _read_niigz(noisy_paths), arguments.repeats) / len(ids)
        sample = torch.rand(1, len(MAPS), *SIZE, device=arguments.device)
        rotate = median_seconds(lambda: _rotate(sample), arguments.repeats)
        cached = {
            w: median_seconds(lambda w=w: _read_cache(arrays, w), arguments.repeats) / len(ids)
            for w in (0, 2)
        }
    size = "x".join(str(n) for n in SIZE)
    device, repeats = arguments.device, arguments.repeats
    print(
        f"{len(ids)} realistic patients, 3 maps of {size} float32 each; device {device}; median of {repeats}"
    )
    print(f"building the cache: {built:.2f} s per patient (once)")
    print(f"{'source':<28} {'s/patient':>10} {'patients/s':>11}")
    for name, seconds in (
        ("nii.gz (strokedata.io)", niigz),
        ("nii.gz, noisy maps", noisy),
        ("cache, 0 workers", cached[0]),
        ("cache, 2 workers", cached[2]),
        (f"rotate-z augmentation, {arguments.device}", rotate),
    ):
        print(f"{name:<28} {seconds:10.3f} {1 / seconds:11.1f}")
    header = f"{'model':<18} {'batch':>5} {'s/step':>8} {'peak GB':>8} {'patients/s':>11}"
    print(f"{header} {'waiting, noisy nii.gz':>22} {'waiting, cache':>15}", flush=True)
    for model in ("cbam3d", "resnet18-cbam3d"):
        for batch in arguments.batches:
            measured = _step_in_child(model, batch, device, repeats)
            if measured is None:
                print(f"{model:<18} {batch:5d} {'the step process died (out of memory?)':>40}", flush=True)
                continue
            step, peak = measured
            per_patient = step / batch
            print(
                f"{model:<18} {batch:5d} {step:8.2f} {peak:8.1f} {1 / per_patient:11.2f} "
                f"{_share(noisy + rotate, per_patient):22.1%} "
                f"{_share(cached[0] + rotate, per_patient):15.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
