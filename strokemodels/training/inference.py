"""A network run over one patient held in memory, as fast as one CPU thread allows: the model frozen
for inference (TorchScript: batch normalisation folded into the convolutions, the graph optimised;
eager when tracing fails), slices batched, and optionally slices without tissue skipped (their outputs
0). Training validates and ``predict`` predicts slice networks with it; benchmarks/inference.py measures it
against the plain eager path on a realistic patient."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from strokedata.manifest import N_REGIONS

CPU_BATCH = 4
"""Slices per forward pass on the CPU: on one thread, 4 slices of 224 x 224 ran MobileNetV2 at 8 ms a
slice against 14 ms in batches of 32 (the activations stay in cache; docs/performance.md)."""
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


def tissue_slices(slices: np.ndarray) -> np.ndarray:
    """Return a (Z,) bool array: the slices of (Z, C, X, Y) ``slices`` whose first channel has at least
    EMPTY_SHARE of its pixels above the volume's minimum by a thousandth of its range."""
    first = slices[:, 0]
    low, high = float(first.min()), float(first.max())
    above = first > low + 1e-3 * (high - low)
    return np.asarray(above.mean(axis=(1, 2)) >= EMPTY_SHARE)


class SliceRunner:
    """A slice network ready to run patient after patient: on the CPU (with ``freeze``) frozen once, at
    its first batch (about 0.9 s for EfficientFormerV2: a cost per run, not per patient), batches of
    ``batch`` slices, bf16 autocast on CUDA with ``amp``."""

    def __init__(
        self, model: Any, *, batch: int = CPU_BATCH, freeze: bool = True, device: str = "cpu",
        amp: bool = False,
    ) -> None:  # fmt: skip
        self.model, self.batch, self.device = model.eval(), batch, device
        self.amp = amp and device == "cuda"
        self.runner: Any = None if freeze and device == "cpu" else self.model  # None: freeze at batch 1

    def __call__(
        self, slices: np.ndarray, size: tuple[int, int] | None = None, *, skip_empty: bool = False
    ) -> np.ndarray:
        """Return the sigmoid outputs on every slice of (Z, C, X, Y) ``slices`` (in memory, or the
        training cache's memory map), each resized (bilinear) to ``size`` when given, as the training
        cache resizes: (Z, outputs) float64. With ``skip_empty``, slices without tissue are not run and
        get 0."""
        depth = slices.shape[0]
        chosen = np.flatnonzero(tissue_slices(slices)) if skip_empty else np.arange(depth)
        outputs = np.zeros((depth, N_REGIONS))
        with torch.inference_mode():
            for start in range(0, chosen.size, self.batch):
                index = chosen[start : start + self.batch]
                piece = torch.from_numpy(np.asarray(slices[index], dtype=np.float32)).to(self.device)
                if size is not None and tuple(piece.shape[2:]) != size:
                    piece = F.interpolate(piece, size=size, mode="bilinear", align_corners=False)
                if self.runner is None:
                    self.runner, _ = frozen(self.model, piece)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                    logits = self.runner(piece)
                outputs[index] = torch.sigmoid(logits.float()).cpu().numpy()
        return outputs


def slice_outputs(
    model: Any, slices: np.ndarray, size: tuple[int, int] | None = None, *, batch: int = CPU_BATCH,
    skip_empty: bool = False, freeze: bool = True, device: str = "cpu", amp: bool = False,
) -> np.ndarray:  # fmt: skip
    """Return a ``SliceRunner``'s outputs on one patient's (Z, C, X, Y) ``slices``: (Z, outputs) float64,
    the model frozen for this call alone (``freeze``, on the CPU); see ``SliceRunner`` for the rest."""
    runner = SliceRunner(model, batch=batch, freeze=freeze, device=device, amp=amp)
    return runner(slices, size, skip_empty=skip_empty)
