"""A network run over one patient held in memory, as fast as one CPU thread allows: the model frozen
for inference (TorchScript: batch normalisation folded into the convolutions, the graph optimised;
eager when tracing fails), slices batched, and optionally slices without tissue skipped (their outputs
0). ``predict`` uses it for slice networks; benchmarks/inference.py measures it against the plain
eager path on a realistic patient."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from strokedata.manifest import N_REGIONS

EMPTY_SHARE = 0.01
"""A slice is empty when fewer than this share of its pixels rise above the volume's air level."""


def frozen(model: Any, example: torch.Tensor) -> tuple[Any, bool]:
    """Return (the model frozen for inference with TorchScript, True), or (the model in eval mode,
    False) when it cannot be traced; ``example`` is a batch of the shape it will see."""
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for the example
            traced = torch.jit.trace(model, example, check_trace=False)  # type: ignore[no-untyped-call]
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced)), True
    except Exception:  # any tracing failure (data-dependent control flow, unsupported ops): stay eager
        return model, False


def tissue_slices(volume: np.ndarray) -> np.ndarray:
    """Return a (Z,) bool array: the axial slices of (C, X, Y, Z) ``volume`` whose first channel has at
    least EMPTY_SHARE of its pixels above the volume's minimum by a thousandth of its range."""
    first = volume[0]
    low, high = float(first.min()), float(first.max())
    above = first > low + 1e-3 * (high - low)
    return np.asarray(above.mean(axis=(0, 1)) >= EMPTY_SHARE)


def slice_outputs(
    model: Any, volume: np.ndarray, size: tuple[int, int], *, batch: int = 32, skip_empty: bool = False,
    freeze: bool = True,
) -> np.ndarray:  # fmt: skip
    """Return the sigmoid outputs of a slice network on every axial slice of (C, X, Y, Z) ``volume``,
    each slice resized (bilinear) to ``size`` as in the training cache: (Z, outputs) float64. With
    ``skip_empty``, slices without tissue are not run and get 0; with ``freeze`` the model is frozen
    (``frozen``) for the run."""
    depth = volume.shape[3]
    chosen = np.flatnonzero(tissue_slices(volume)) if skip_empty else np.arange(depth)
    slices = torch.from_numpy(np.ascontiguousarray(volume.transpose(3, 0, 1, 2)))
    runner: Any = model.eval()
    outputs: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, chosen.size, batch):
            index = chosen[start : start + batch]
            piece = slices[torch.from_numpy(index)].float()
            if tuple(piece.shape[2:]) != size:
                piece = F.interpolate(piece, size=size, mode="bilinear", align_corners=False)
            if freeze and start == 0:
                runner, _ = frozen(model, piece)
            found = torch.sigmoid(runner(piece).float()).numpy().astype(np.float64)
            if outputs is None:
                outputs = np.zeros((depth, found.shape[1]))
            outputs[index] = found
    return outputs if outputs is not None else np.zeros((depth, N_REGIONS))
