"""``PerfusionMaps``: the CTP source of a subject -> CBF, CBV, MTT, TMAX and TTP images on its grid
(``strokedata.perfusion``), the AIF, VOF and every parameter recorded in the subject's history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torchio as tio

from strokedata.io import MAX_VOXELS, read_header, read_volume
from strokedata.perfusion import MAP_NAMES, PerfusionError, PerfusionSettings, perfusion_maps
from strokedata.transforms.intensity import require_image


def frame_interval(image: tio.Image) -> float:
    """Return the seconds between a series' time points from its file's header (the fourth pixdim);
    PerfusionError when the image has no file or the header gives none."""
    path = getattr(image, "path", None)
    if path is None:
        raise PerfusionError("the CTP has no file to read its frame interval from; pass interval=")
    header = read_header(Path(path))
    axis = 4 if len(header.shape) == 5 and header.shape[3] == 1 else 3  # (x, y, z, 1, t) exports
    if len(header.pixdim) <= axis or not header.pixdim[axis] > 0:
        raise PerfusionError(
            f"{Path(path).name} gives no frame interval (pixdim[{axis + 1}] is not positive); write the "
            "seconds between time points into its header"
        )
    return float(header.pixdim[axis])


def _aif_mask(image: tio.Image, name: str) -> np.ndarray:
    """Return the AIF mask named ``name`` in the folder of the CTP's file (voxels > 0 are arterial)."""
    path = getattr(image, "path", None)
    if path is None:
        raise PerfusionError("an AIF mask by file name needs the CTP read from a file")
    mask_path = Path(path).parent / name
    if not mask_path.is_file():
        raise PerfusionError(f"the AIF mask {name} is not in the patient's folder; add it or use aif='auto'")
    return np.asarray(read_volume(mask_path, MAX_VOXELS).scaled())


class PerfusionMaps(tio.Transform):
    """Add CBF, CBV, MTT, TMAX and TTP (float32, on the CTP's grid) computed from the subject's CTP
    series by ``strokedata.perfusion.perfusion_maps``; existing images of those names are replaced.

    The history records the settings and this subject's AIF and VOF (where, and their curves).

    Args:
        settings: a ``PerfusionSettings`` or its fields as a dict (JSON in a pipeline).
        key: the 4D series (time points as channels).
        interval: seconds between time points; None reads it from the series' file.
        **kwargs: passed to ``tio.Transform``.
    """

    def __init__(
        self,
        settings: PerfusionSettings | dict[str, Any] | None = None,
        key: str = "CTP",
        interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = (
            settings if isinstance(settings, PerfusionSettings) else PerfusionSettings(**(settings or {}))
        )
        self.key = key
        self.interval = interval
        self.args_names = ["settings", "key", "interval"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with the maps added; PerfusionError naming what makes its CTP unusable."""
        image = require_image(subject, self.key, self.name)
        interval = self.interval if self.interval is not None else frame_interval(image)
        aif = None if self.settings.aif == "auto" else _aif_mask(image, self.settings.aif)
        series = image.numpy()
        spacing = tuple(float(value) for value in image.spacing)
        result = perfusion_maps(series, interval, (spacing[0], spacing[1], spacing[2]), self.settings, aif)
        for name in MAP_NAMES:
            volume = result.maps[name][np.newaxis]
            subject[name] = tio.ScalarImage(tensor=volume, affine=image.affine)  # type: ignore[no-untyped-call]
        subject.update_attributes()
        if self.parse_input:  # recorded here, with this subject's AIF and VOF
            arguments = {
                "settings": self.settings.model_dump(mode="json"),
                "key": self.key,
                "interval": interval,
                "found": result.record,
            }
            subject.add_transform(self, arguments)
        return subject

    def _add_transform_to_subject_history(self, subject: tio.Subject) -> None:
        """Do nothing: ``apply_transform`` has recorded this transform with what it found."""
