"""Inference on a patient in memory: the frozen model gives the eager model's outputs whatever the batch
(a partial last batch included), skipped slices are exactly the ones without tissue, and their outputs
are 0 while the others are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from strokemodels.registry import get_model
from strokemodels.training.inference import SliceRunner, slice_outputs, tissue_slices

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _volume(channels: int, depth: int = 7) -> np.ndarray:
    """Return (depth, C, 40, 40) slices of air (-1000) with a disc of tissue on every slice but 0 and 5."""
    rng = np.random.default_rng(3)
    slices = np.full((depth, channels, 40, 40), -1000.0, dtype=np.float32)
    x, y = np.mgrid[:40, :40]
    disc = (x - 20) ** 2 + (y - 20) ** 2 < 150
    for z in range(depth):
        if z not in (0, 5):
            slices[z][:, disc] = rng.normal(40, 10, (channels, int(disc.sum())))
    return slices


def test_tissue_slices_are_the_slices_holding_tissue() -> None:
    assert tissue_slices(_volume(1)).tolist() == [False, True, True, True, True, False, True]


@pytest.mark.parametrize("name", ["cnn4", "mobilenetv2", "efficientformerv2"])
def test_the_frozen_model_gives_the_eager_outputs_and_skipping_changes_only_empty_slices(name: str) -> None:
    entry = get_model(name)
    model = entry.build(entry.spec, 0).eval()
    size = (entry.spec.input_shape[1], entry.spec.input_shape[2])
    volume = _volume(entry.spec.input_shape[0])
    eager = slice_outputs(model, volume, size, batch=7, freeze=False)
    frozen_batches = slice_outputs(model, volume, size, batch=3)  # 3 + 3 + a partial 1
    assert eager.shape == (7, 15)
    np.testing.assert_allclose(frozen_batches, eager, rtol=1e-4, atol=1e-5)
    skipped = slice_outputs(model, volume, size, batch=3, skip_empty=True)
    assert np.all(skipped[[0, 5]] == 0)
    np.testing.assert_allclose(skipped[[1, 2, 3, 4, 6]], eager[[1, 2, 3, 4, 6]], rtol=1e-4, atol=1e-5)


def test_a_runner_freezes_once_and_gives_each_patient_its_own_outputs() -> None:
    """predict runs one SliceRunner over every patient: frozen at the first batch only, and the outputs
    of a patient do not depend on the patients before it."""
    entry = get_model("cnn4")
    model = entry.build(entry.spec, 0).eval()
    size = (entry.spec.input_shape[1], entry.spec.input_shape[2])
    first, second = _volume(1), _volume(1, depth=5)[::-1].copy()
    runner = SliceRunner(model, batch=3)
    found_first = runner(first, size)
    script = runner.runner
    found_second = runner(second, size, skip_empty=True)
    assert runner.runner is script and script is not model  # frozen, and only once
    np.testing.assert_array_equal(found_first, slice_outputs(model, first, size, batch=3))
    np.testing.assert_array_equal(found_second, slice_outputs(model, second, size, batch=3, skip_empty=True))
