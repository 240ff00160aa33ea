"""Training steps for the network tests: the losses of a few optimiser steps on one batch."""

from __future__ import annotations

from collections.abc import Callable

import torch


def adam_losses(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int = 3,
    learning_rate: float = 1e-3,
) -> list[float]:
    """Return the loss before each of ``steps`` Adam steps of ``model`` on one batch."""
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        value = loss(model(inputs), targets)
        value.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        losses.append(value.item())
    return losses
