"""The contract every zoo model passes, ours and plugins' alike, as scikit-learn's
``parametrize_with_checks``: each check takes a ``ModelEntry`` and raises AssertionError when the model
breaks the contract.

    import pytest
    from strokemodels.testing import model_checks

    @pytest.mark.parametrize(("name", "check"), model_checks(["my-model"]))
    def test_my_model_keeps_the_contract(name, check):
        check(name)

Networks: a forward pass on a batch of the spec's input shape gives the task's output shape (on the meta
device: shapes without arithmetic); the spec's parameter count is the network's; the same seed gives
the same weights and outputs (another seed other weights); a state dict round-trips. Rules: they fit and
predict through the same interface on synthetic patients, and their state round-trips through JSON.
Both (networks of the tasks that train): the model's own outputs, written by ``predict``'s writer, are
accepted by ``score``'s reader.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from strokedata.manifest import N_REGIONS, Modality
from strokedata.preprocess import PIPELINES
from strokemodels.benchmark.files import read_table
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import ModelEntry, get_model, list_models
from strokemodels.spec import MODEL_NAME_PATTERN
from strokemodels.training.outputs import Output, write_predictions
from strokemodels.zoo.rules import PatientImages

Check = Callable[[str], None]
GRID = (16, 16, 8)
"""The synthetic patients' grid (voxels of 2 x 2 x 5 mm)."""


def output_shape(task: str, grid: tuple[int, ...]) -> tuple[int, ...]:
    """Return the shape of one patient's output for ``task`` (strokemodels.training.outputs)."""
    if task == "occlusion":
        return (len(TASKS[task].classes),)
    if task == "recanalization":
        return (1,)
    if task == "clot-regions":
        return (grid[2], N_REGIONS)
    return tuple(grid[:3])


def _check_spec(name: str) -> None:
    import re

    spec = get_model(name).spec
    assert re.match(MODEL_NAME_PATTERN, spec.name), f"{spec.name} is not a valid model name"
    assert spec.task in TASKS, f"{spec.name}: unknown task {spec.task}"
    assert spec.pipeline == "none" or spec.pipeline in PIPELINES, (
        f"{spec.name}: unknown pipeline {spec.pipeline}"
    )
    assert spec.citation.strip(), f"{spec.name} cites nothing"


def _network(name: str, seed: int = 0) -> Any:
    entry = get_model(name)
    return entry, entry.build(entry.spec, seed).eval()


def _input(entry: ModelEntry, batch: int = 1, size: tuple[int, ...] | None = None) -> Any:
    import torch

    shape = entry.spec.input_shape if size is None else (entry.spec.input_shape[0], *size)
    return torch.from_numpy(np.random.default_rng(0).random((batch, *shape), dtype=np.float32))


def network_output_shape(task: str, input_shape: tuple[int, ...], sample: str = "volume") -> tuple[int, ...]:
    """Return the logits a network gives for one input of ``input_shape`` (channels first): one per class
    (occlusion), one (recanalization: favourable), one per atlas region (clot-regions, for the slice or
    volume given), for core one per pixel of a slice (1, X, Y) or one for a patch (its centre)."""
    if task == "occlusion":
        return (len(TASKS[task].classes),)
    if task == "recanalization" or sample == "patch":
        return (1,)
    if task == "clot-regions":
        return (N_REGIONS,)
    return (1, *input_shape[1:])


def _small_size(entry: ModelEntry) -> tuple[int, ...]:
    """Return a small input size for a model's quick checks: 32 x 32 x 8 volumes, 32 x 32 second-stage
    slices; the paper's size for slice and patch networks, which are built for one size."""
    spec = entry.spec
    if spec.sample == "volume":
        return (32, 32, 8)
    if spec.stage_of is not None:
        return (32, 32)
    return tuple(spec.input_shape[1:])


def _check_forward_shape(name: str) -> None:
    """A batch of two inputs of the spec's (paper's) shape gives (2, *network_output_shape).

    Run on torch's meta device: shapes and dtypes are propagated through every operation without
    computing a value, so the paper's full input size costs about a second instead of a minute.
    """
    import torch

    entry, model = _network(name)
    model.to("meta")
    with torch.inference_mode():
        logits = model(torch.empty(2, *entry.spec.input_shape, device="meta"))
    expected = (2, *network_output_shape(entry.spec.task, entry.spec.input_shape, entry.spec.sample))
    assert tuple(logits.shape) == expected, f"{name}: output {tuple(logits.shape)}, expected {expected}"


def _check_parameters(name: str) -> None:
    entry, model = _network(name)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count == entry.spec.parameters, (
        f"{name}: the spec says {entry.spec.parameters:,} parameters, the network has {count:,}"
    )


def _check_seeded(name: str) -> None:
    """The same seed gives the same weights and outputs; another seed other weights."""
    import torch

    (entry, first), (_, second), (_, other) = _network(name, 3), _network(name, 3), _network(name, 4)
    small = _input(entry, 2, _small_size(entry))
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name}: {key} differs between two builds with one seed"
    with torch.inference_mode():
        assert torch.equal(first(small), second(small)), f"{name}: one seed, two outputs"
    assert any(
        not torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), other.state_dict().values(), strict=True)
    ), f"{name}: another seed gives the same weights"


def _check_state_dict(name: str) -> None:
    """A state dict saved and loaded into a fresh network gives the same outputs."""
    import io

    import torch

    (entry, model), (_, fresh) = _network(name, 1), _network(name, 2)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    small = _input(entry, 2, _small_size(entry))
    with torch.inference_mode():
        assert torch.equal(model(small), fresh(small)), f"{name}: the state dict did not round-trip"


def synthetic_patients(task: str, inputs: Iterable[Modality], count: int = 6) -> list[PatientImages]:
    """Return ``count`` patients on a small grid with the given images (random, plausible ranges) and
    labels of ``task`` covering every class, for the rule checks."""
    rng = np.random.default_rng(7)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(GRID, (2.0, 2.0, 5.0), strict=True)]
    patients = []
    for index in range(count):
        images = {}
        for modality in inputs:
            if modality is Modality.ATLAS:
                data = rng.integers(0, N_REGIONS, GRID).astype(np.float32)
            elif modality in (Modality.SPIRAL, Modality.TMAX):
                data = rng.random(GRID, dtype=np.float32)
            else:
                data = (rng.random(GRID, dtype=np.float32) * 60).astype(np.float32)
            images[modality] = (data, affine)
        label: Any = index % 3 if task == "occlusion" else index % 2
        if task == "core":
            label = rng.random(GRID) > 0.8
        elif task == "clot-regions":
            label = (rng.random((GRID[2], N_REGIONS)) > 0.8).astype(np.uint8)
        patients.append(PatientImages(f"s{index:02d}", images, label, {"tmax_range": [0.0, 20.0]}))
    return patients


def _check_rule(name: str) -> None:
    """A rule fits and predicts on synthetic patients; its state round-trips through JSON."""
    entry = get_model(name)
    patients = synthetic_patients(entry.spec.task, entry.spec.inputs)
    rule = entry.build(entry.spec, 0)
    rule.fit(patients)
    outputs = [rule.predict(patient) for patient in patients]
    expected = output_shape(entry.spec.task, GRID)
    assert all(np.shape(o) == expected for o in outputs), (
        f"{name}: outputs {np.shape(outputs[0])}, expected {expected}"
    )
    restored = entry.build(entry.spec, 0)
    restored.load_state(json.loads(json.dumps(rule.state())))
    for patient, output in zip(patients, outputs, strict=True):
        assert np.array_equal(restored.predict(patient), output), f"{name}: the state did not round-trip"


def _own_outputs(name: str) -> dict[str, Output]:
    """Return a model's outputs for four synthetic patients: a network's class probabilities (on small
    random inputs), a rule's predictions after fitting on synthetic patients."""
    entry = get_model(name)
    if entry.spec.kind == "rule":
        patients = synthetic_patients(entry.spec.task, entry.spec.inputs)
        rule = entry.build(entry.spec, 0)
        rule.fit(patients)
        return {p.patient_id: Output(rule.predict(p), np.eye(4)) for p in patients[:4]}
    import torch

    from strokemodels.training.volumes import class_probabilities

    _, model = _network(name)
    spec = entry.spec
    if spec.task == "clot-regions":  # a patient: its slices, each a batch item
        with torch.inference_mode():
            slices = torch.sigmoid(model(_input(entry, 3, _small_size(entry)))).numpy()
        return {f"p{index}": Output(slices.astype(np.float64)) for index in range(4)}
    if spec.task == "core":  # a probability map on a (small) grid
        with torch.inference_mode():
            logits = model(_input(entry, 4, _small_size(entry)))
        found = torch.sigmoid(logits).numpy().astype(np.float64)
        # a slice network's (1, X, Y) map as a one-slice volume; a patch network's value over 2 x 2 x 2
        maps = [row[0][..., None] if row.ndim == 3 else np.full((2, 2, 2), row[0]) for row in found]
        return {f"p{index}": Output(grid, np.eye(4)) for index, grid in enumerate(maps)}
    with torch.inference_mode():
        rows = class_probabilities(model(_input(entry, 4, _small_size(entry))))
    return {f"p{index}": Output(row) for index, row in enumerate(rows)}


def _check_predictions_scored(name: str) -> None:
    """The model's own outputs, written by predict's writer, are read by score's reader."""
    task = get_model(name).spec.task
    outputs = _own_outputs(name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions.csv"
        write_predictions(task, outputs, path, slice_level=task == "clot-regions")
        read = read_table(path, TASKS[task], "prediction")[None]
        assert set(read.values) == set(outputs), f"{name}: score read other patients than were written"


def model_checks(names: Iterable[str] | None = None) -> list[tuple[str, Check]]:
    """Return (model name, check) pairs for ``pytest.mark.parametrize``: every check of every named model
    (default: every registered model)."""
    chosen = list(names) if names is not None else [spec.name for spec in list_models()]
    pairs: list[tuple[str, Check]] = []
    for name in chosen:
        spec = get_model(name).spec
        checks: list[Check] = [_check_spec]
        if spec.kind == "rule":
            checks += [_check_rule, _check_predictions_scored]
        else:
            checks += [_check_forward_shape, _check_parameters, _check_seeded, _check_state_dict]
            checks.append(_check_predictions_scored)
        pairs += [(name, check) for check in checks]
    return pairs
