"""The papers' preprocessing as TorchIO transforms, recorded in ``subject.history``.

Intensity: ``ClipAndScale`` (000's ``PERFUSION_000`` ranges) and ``CTWindow`` (``CT_WINDOWS``).
Across the midline: ``OccludedSideFromTmax`` (000), ``RelativeToContralateral`` (000),
``MirrorToCanonicalSide`` (000, invertible) and ``AddMirroredChannel`` (002).
Time: ``TemporalResample`` (002, 32 frames); ``PerfusionMaps`` (CBF, CBV, MTT, TMAX, TTP by deconvolution).
Masks: ``BrainMaskFromLargestComponent`` (000, artefacts outside the brain) and ``SkullStrip`` (CT in HU).
Space: ``RegisterToTemplate`` (000, affine registration to the phantom template with itk-elastix).

Example:
    >>> import torchio as tio
    >>> from strokedata.transforms import PERFUSION_000, ClipAndScale, MirrorToCanonicalSide
    >>> pipeline = tio.Compose([ClipAndScale(PERFUSION_000), MirrorToCanonicalSide(canonical="R")])
"""

from strokedata.labels import MIRRORED, TMAX_SIDE
from strokedata.transforms.hemispheres import (
    AddMirroredChannel,
    MirrorToCanonicalSide,
    OccludedSideFromTmax,
    RelativeToContralateral,
)
from strokedata.transforms.intensity import CT_MODALITIES, CT_WINDOWS, PERFUSION_000, ClipAndScale, CTWindow
from strokedata.transforms.masks import (
    AIR_HU,
    PERFUSION_MASK,
    SOFT_TISSUE_HU,
    BrainMaskFromLargestComponent,
    SkullStrip,
    skull_strip_mask,
)
from strokedata.transforms.morphology import largest_component
from strokedata.transforms.perfusion import PerfusionMaps
from strokedata.transforms.registration import REGISTRATION, RegisterToTemplate
from strokedata.transforms.temporal import TemporalResample, resample_frames

__all__ = [
    "AIR_HU",
    "CT_MODALITIES",
    "CT_WINDOWS",
    "MIRRORED",
    "PERFUSION_000",
    "PERFUSION_MASK",
    "REGISTRATION",
    "SOFT_TISSUE_HU",
    "TMAX_SIDE",
    "AddMirroredChannel",
    "BrainMaskFromLargestComponent",
    "CTWindow",
    "ClipAndScale",
    "MirrorToCanonicalSide",
    "OccludedSideFromTmax",
    "PerfusionMaps",
    "RegisterToTemplate",
    "RelativeToContralateral",
    "SkullStrip",
    "TemporalResample",
    "largest_component",
    "resample_frames",
    "skull_strip_mask",
]
