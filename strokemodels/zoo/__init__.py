"""The model zoo: the papers' models and the rule baselines, registered by name (strokemodels.registry).

Each family module declares its models' specs and registers builders that import torch only when a
model is built: ``occlusion`` (Papakyriakou et al. 2025), ``recanalization`` (Zhang, Polson et al.
2022), ``core`` (de Vries et al. 2021), ``clot_regions`` (the AMI-Net report) and ``baselines`` (the
rules, with ``radiomics`` for recanalization).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def seeded(seed: int, make: Callable[[], Any]) -> Any:
    """Return ``make()`` with torch's random state seeded, without changing the caller's."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
