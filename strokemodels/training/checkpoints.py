"""Checkpoint files (``best.pt``, ``last.pt``): written as bytes for an atomic write, read on the CPU
with torch's weights-only loader, which runs no code from the file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from strokemodels.errors import RunError

CHECKPOINT_FORMAT = 1


def load_checkpoint(path: Path, model: str | None = None) -> dict[str, Any]:
    """Return a checkpoint's content, loaded on the CPU without running code from the file (torch's
    weights-only loading); RunError when it is unreadable, not a strokebench checkpoint, or (with
    ``model``) of another model."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunError(f"{path} cannot be read as a checkpoint ({first}); train the run again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "state_dict" not in state:
        raise RunError(f"{path} is not a strokebench checkpoint; train the run again")
    if model is not None and state.get("model") != model:
        raise RunError(f"{path} holds a checkpoint of {state.get('model')}, not {model}")
    return state


def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    """Return a checkpoint's bytes (torch's format), for an atomic write."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()
