"""4D CT perfusion -> CBF, CBV, MTT, TMAX and TTP by deconvolution (docs/perfusion.md).

``perfusion_maps`` works on arrays; ``perfusion_dataset`` runs it over a dataset into a new one
(``strokedata perfusion``). Names are imported on first use, so that reading the settings (as the
pipelines' listing does) loads no scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "MAP_NAMES": "strokedata.perfusion.maps",
    "PerfusionResult": "strokedata.perfusion.maps",
    "perfusion_maps": "strokedata.perfusion.maps",
    "PerfusionSettings": "strokedata.perfusion.settings",
    "PerfusionError": "strokedata.perfusion.signal",
    "perfusion_dataset": "strokedata.perfusion.dataset",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Return one of ``__all__``, imported from its module."""
    if name not in _HOMES:
        raise AttributeError(f"module 'strokedata.perfusion' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
