"""Synthetic stroke phantoms: every modality generated coherently with its labels (docs/phantoms.md)."""

from strokedata.phantoms.config import DEFAULT_OCCLUSION_MIX, Grid, PhantomConfig, preset
from strokedata.phantoms.generate import PatientPhantom, generate_dataset, generate_patient, write_patient

__all__ = [
    "DEFAULT_OCCLUSION_MIX",
    "Grid",
    "PatientPhantom",
    "PhantomConfig",
    "generate_dataset",
    "generate_patient",
    "preset",
    "write_patient",
]
