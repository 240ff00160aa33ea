"""One realistic phantom patient through every model of the zoo on one CPU thread: seconds to read its
images, to preprocess them (the model's pipeline in memory: registration, masks, windows, resampling,
then the loading steps and the resize to the model's input) and to run the model, and the peak resident
memory, each model in a fresh process pinned to one core (``taskset -c 0``, ``torch.set_num_threads(1)``).

Side by side for the slice networks: the plain path (the pipeline over the whole patient, full-size
slices stacked, eager PyTorch, every slice, batches of 32) and the fast one: each image read, windowed
and resized to the model's input on its own (``slice_stack``, as the training cache builds slices),
then what ``predict --skip-empty-slices`` does on a CPU (strokemodels.training.inference: the model
frozen with TorchScript, batch norm folded in, batches of 4, slices without tissue skipped); the other
networks run eager, as ``predict`` runs them. Weights are the seeded initial ones: the cost
does not depend on trained values. The CTP transformer's map at the paper's stride (2 pixels: one patch
per 2 x 2 pixels, 1.8 million patches for 512 x 512 x 27) is timed on 2048 patches and extrapolated; the
U-Net's time excludes the map it reads (a random one stands in). Rules run with their default
(unfitted) state; radiomics-logreg's cost is its feature extraction.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 python benchmarks/inference.py [--models M ...]

The patient is generated once into benchmarks/data/inference (about 45 s and 3 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PIPELINE_SETTINGS: dict[str, dict[str, Any]] = {"clot-regions": {"window": "angiography"}}
"""Pipeline parameters the models expect beyond the defaults (clot-regions: slices scaled to [0, 1])."""
TRANSFORMER_SAMPLE = 2048


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_memory(pipeline: Any, subject: Any) -> Any:
    """Return the subject after the pipeline's stored and loading steps (with the settings of
    ``PIPELINE_SETTINGS``), run in place: one copy of the patient in memory; a step's ``include`` cut
    to the images the subject holds (a CT window of three phases for a model reading one)."""
    params = pipeline.params.model_validate(PIPELINE_SETTINGS.get(pipeline.name, {}))
    for step in [*pipeline.transform(params).transforms, *pipeline.loading(params).transforms]:
        step.copy = False
        if getattr(step, "include", None):
            step.include = [key for key in step.include if key in subject]
        subject = step(subject)
    return subject


def _prepared(name: str, root: Path) -> tuple[Any, Any, dict[str, float]]:
    """Return (the zoo entry, the patient's subject after the pipeline and loading steps, timings)."""
    import torchio as tio

    from strokedata import load_dataset
    from strokedata.manifest import Modality
    from strokedata.preprocess import PIPELINES
    from strokedata.subjects import patient_subject
    from strokemodels.registry import get_model

    entry = get_model(name)
    spec = entry.spec
    dataset = load_dataset(root)
    manifest = next(iter(dataset))
    pipeline = PIPELINES.get(spec.pipeline)
    if pipeline is None:  # a model of the canonical dataset as it is
        began = time.perf_counter()
        subject = patient_subject(root, manifest, [m for m in spec.inputs if m in manifest.images])
        subject.load()
        return entry, subject, {"read_s": time.perf_counter() - began, "preprocess_s": 0.0}
    # a new patient: the model's inputs and what its pipeline registers them with, never the labels
    needed = set(spec.inputs) | (set(pipeline.requires) - {Modality.CLOT, Modality.ATLAS, Modality.CORE})
    began = time.perf_counter()
    subject = patient_subject(root, manifest, sorted(needed))
    subject.load()
    read = time.perf_counter() - began
    began = time.perf_counter()
    subject = _in_memory(pipeline, subject)
    assert all(isinstance(subject[m.value], tio.Image) for m in spec.inputs)
    return entry, subject, {"read_s": read, "preprocess_s": time.perf_counter() - began}


def _streamed_slices(name: str, root: Path) -> tuple[Any, Any, dict[str, float]]:
    """Return (the zoo entry, a slice network's (Z, C, *input size) float32 input, timings): each input
    image read, run through the pipeline (the clot-regions window: one image at a time) and resized on
    its own (``slice_stack``), so that one full-size volume is in memory at a time."""
    from strokedata import load_dataset
    from strokedata.preprocess import PIPELINES
    from strokedata.subjects import patient_subject
    from strokemodels.registry import get_model
    from strokemodels.training.cache import slice_stack

    entry = get_model(name)
    spec = entry.spec
    manifest = next(iter(load_dataset(root)))
    pipeline = PIPELINES[spec.pipeline]
    timings = {"read_s": 0.0, "preprocess_s": 0.0}

    def volumes() -> Any:
        for modality in spec.inputs:
            began = time.perf_counter()
            subject = patient_subject(root, manifest, [modality])
            subject.load()
            timings["read_s"] += time.perf_counter() - began
            began = time.perf_counter()
            subject = _in_memory(pipeline, subject)
            timings["preprocess_s"] += time.perf_counter() - began
            yield subject[modality.value].data
            del subject  # before the next image is read

    began = time.perf_counter()
    slices = slice_stack(volumes(), (spec.input_shape[1], spec.input_shape[2]))
    total = time.perf_counter() - began
    timings["preprocess_s"] = total - timings["read_s"]  # the window and the resize
    return entry, slices, timings


def _volume(subject: Any, spec: Any) -> Any:
    """Return the spec's inputs as one (C, X, Y, Z) float32 tensor on the first input's grid, as the
    training cache makes it (the CTP: its channels as they are)."""
    import torch

    from strokemodels.training.cache import on_one_grid

    subject = on_one_grid(subject, [m.value for m in spec.inputs])
    return torch.cat([torch.as_tensor(subject[m.value].data, dtype=torch.float32) for m in spec.inputs])


def _network_seconds(entry: Any, subject: Any) -> float:
    """Return the seconds of the network's forward pass over the patient (see the module docstring)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from strokemodels.training.core import stage2_inputs, unet_probabilities
    from strokemodels.training.inference import slice_outputs
    from strokemodels.zoo.nets_core import attention_map

    spec = entry.spec
    model = entry.build(spec, 0).eval()
    began = time.perf_counter()
    if spec.sample == "slice" and spec.stage_of is None:  # the plain path: full-size slices, eager
        slices = torch.stack([subject[m.value].data[0].permute(2, 0, 1) for m in spec.inputs], dim=1)
        for modality in spec.inputs:  # the images are stacked: let them go
            subject[modality.value].set_data(torch.zeros(1, 1, 1, 1))
        size = (spec.input_shape[1], spec.input_shape[2])
        slice_outputs(model, slices.float().numpy(), size, batch=32, skip_empty=False, freeze=False)
        return time.perf_counter() - began
    volume = _volume(subject, spec)
    began = time.perf_counter()
    with torch.inference_mode():
        if spec.sample == "slice":  # the U-Net over (TFA, first frame, MIP), the TFA here random
            series = volume.numpy().reshape(2, -1, *volume.shape[1:])
            inputs = stage2_inputs(
                np.random.default_rng(0).random(series.shape[2:], dtype=np.float32), series
            )
            began = time.perf_counter()
            unet_probabilities(model, inputs, 8, "cpu")  # one slice at a time on the CPU
        elif spec.sample == "patch":
            series = volume.reshape(2, -1, *volume.shape[1:])[..., volume.shape[-1] // 2]
            piece = series.permute(0, 2, 3, 1)[:, : 2 * 32, : 2 * 32]  # 32 x 32 centres at stride 2 = 1024
            began = time.perf_counter()
            for _ in range(TRANSFORMER_SAMPLE // 1024):
                attention_map(model, piece, stride=2, batch=256)
            per_patch = (time.perf_counter() - began) / TRANSFORMER_SAMPLE
            x, y, z = volume.shape[1:]
            return per_patch * (x // 2) * (y // 2) * z
        else:
            size = tuple(spec.input_shape[1:])
            batch = F.interpolate(volume[None], size=size, mode="trilinear", align_corners=False)
            began = time.perf_counter()
            model(batch)
    return time.perf_counter() - began


def _rule_seconds(entry: Any, subject: Any) -> float:
    """Return the seconds of a rule's prediction (radiomics-logreg: its feature extraction)."""
    import numpy as np

    from strokemodels.zoo.radiomics import radiomics_features
    from strokemodels.zoo.rules import PatientImages

    images = {
        m: (np.asarray(subject[m.value].data[0], dtype=np.float32), np.asarray(subject[m.value].affine))
        for m in entry.spec.inputs
    }
    patient = PatientImages("p", images, None, {"tmax_range": [0.0, 20.0]})
    began = time.perf_counter()
    if entry.spec.name == "radiomics-logreg":
        radiomics_features(patient)
    else:
        entry.build(entry.spec, 0).predict(patient)
    return time.perf_counter() - began


def child(name: str, root: Path, optimised: bool) -> dict[str, Any]:
    """Return one model's timings and peak memory on the patient (run in a fresh, pinned process)."""
    import torch

    torch.set_num_threads(1)
    from strokemodels.registry import get_model
    from strokemodels.training.inference import CPU_BATCH, SliceRunner

    spec = get_model(name).spec
    if optimised and spec.kind == "learned" and spec.sample == "slice" and spec.stage_of is None:
        entry, slices, found = _streamed_slices(name, root)
        runner = SliceRunner(entry.build(spec, 0))
        began = time.perf_counter()
        runner(slices[:CPU_BATCH])  # frozen at its first batch: once per run, as predict runs it
        found["start_s"] = time.perf_counter() - began
        began = time.perf_counter()
        runner(slices, skip_empty=True)
        found["model_s"] = time.perf_counter() - began
        found["peak_mb"] = _peak_mb()
        return found
    entry, subject, found = _prepared(name, root)
    learned = entry.spec.kind == "learned"
    found["model_s"] = _network_seconds(entry, subject) if learned else _rule_seconds(entry, subject)
    found["peak_mb"] = _peak_mb()
    return found


def _run(name: str, root: Path, optimised: bool) -> dict[str, Any]:
    command = ["taskset", "-c", "0", sys.executable, __file__, "--child", name, "--data", str(root)]
    command += ["--optimised"] if optimised else []
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="models to measure (default: every zoo model)")
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "inference")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--optimised", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(child(arguments.child, arguments.data, arguments.optimised)))
        return
    from common import cached_dataset

    from strokedata.phantoms import preset
    from strokemodels.registry import list_models

    root = cached_dataset(arguments.data, 1, preset("realistic"))
    names = arguments.models or [spec.name for spec in list_models()]
    print(
        "| model | read s | preprocess s | model s, eager | model s, fast path | start-up s, once a run "
        "| total s a patient | peak MB, eager | peak MB, fast path |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in names:
        from strokemodels.registry import get_model

        spec = get_model(name).spec
        # the clot-region slice networks' fast path: streamed, frozen, batches of 4, empty slices skipped
        faster = spec.kind == "learned" and spec.sample == "slice" and spec.stage_of is None
        fast = _run(name, root, optimised=True)
        plain = _run(name, root, optimised=False) if faster else fast
        if "error" in fast or "error" in plain:
            print(f"| {name} | failed: {fast.get('error') or plain.get('error')} ||||||||", flush=True)
            continue
        total = fast["read_s"] + fast["preprocess_s"] + fast["model_s"]
        start = f"{fast['start_s']:.2f}" if "start_s" in fast else ""
        print(
            f"| {name} | {fast['read_s']:.1f} | {fast['preprocess_s']:.1f} | {plain['model_s']:.2f} | "
            f"{fast['model_s']:.2f} | {start} | {total:.1f} | {plain['peak_mb']:.0f} | "
            f"{fast['peak_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
