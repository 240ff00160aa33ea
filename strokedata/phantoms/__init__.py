"""Synthetic stroke phantoms: every modality generated coherently with its labels (docs/phantoms.md)."""

from strokedata.phantoms.config import DEFAULT_OCCLUSION_MIX, Grid, PhantomConfig, preset
from strokedata.phantoms.generate import PatientPhantom, generate_dataset, generate_patient, write_patient
from strokedata.phantoms.template import Template, healthy_head, phantom_template, template_image

__all__ = [
    "DEFAULT_OCCLUSION_MIX",
    "Grid",
    "PatientPhantom",
    "PhantomConfig",
    "Template",
    "generate_dataset",
    "generate_patient",
    "healthy_head",
    "phantom_template",
    "preset",
    "template_image",
    "write_patient",
]
