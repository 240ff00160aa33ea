"""The papers' preprocessing as TorchIO transforms, recorded in ``subject.history``.

Intensity: ``ClipAndScale`` (000's ``PERFUSION_000`` ranges) and ``CTWindow`` (``CT_WINDOWS``).
Across the midline: ``OccludedSideFromTmax`` (000), ``RelativeToContralateral`` (000),
``MirrorToCanonicalSide`` (000, invertible) and ``AddMirroredChannel`` (002). Time: ``TemporalResample`` (002, 32 frames).

Example:
    >>> import torchio as tio
    >>> from strokedata.transforms import PERFUSION_000, ClipAndScale, MirrorToCanonicalSide
    >>> pipeline = tio.Compose([ClipAndScale(PERFUSION_000), MirrorToCanonicalSide(canonical="R")])
"""

from strokedata.transforms.hemispheres import (
    MIRRORED,
    TMAX_SIDE,
    AddMirroredChannel,
    MirrorToCanonicalSide,
    OccludedSideFromTmax,
    RelativeToContralateral,
)
from strokedata.transforms.intensity import CT_MODALITIES, CT_WINDOWS, PERFUSION_000, ClipAndScale, CTWindow
from strokedata.transforms.temporal import TemporalResample, resample_frames

__all__ = [
    "CT_MODALITIES",
    "CT_WINDOWS",
    "MIRRORED",
    "PERFUSION_000",
    "TMAX_SIDE",
    "AddMirroredChannel",
    "CTWindow",
    "ClipAndScale",
    "MirrorToCanonicalSide",
    "OccludedSideFromTmax",
    "RelativeToContralateral",
    "TemporalResample",
    "resample_frames",
]
