"""Temporal resampling of the CTP source to a fixed number of frames (002: 32)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torchio as tio

from strokedata.transforms.intensity import require_image


def resample_frames(data: np.ndarray, frames: int) -> np.ndarray:
    """Return ``data`` (time first) resampled to ``frames`` time points, float32, by linear interpolation
    over normalised time: input frame i sits at i / (n - 1), output frame j at j / (frames - 1).

    The first and last frames are kept, a curve linear in time stays linear and a constant one stays
    exactly constant. Works frame by frame, so memory beyond the output stays two input frames.

    >>> resample_frames(np.array([0.0, 10.0, 40.0]), 5).tolist()
    [0.0, 5.0, 10.0, 25.0, 40.0]
    """
    count = data.shape[0]
    if count < 2 or frames < 2:
        raise ValueError(f"resampling in time needs at least 2 frames in and out, not {count} -> {frames}")
    if data.ndim > 1 and data[0].flags.f_contiguous and not data[0].flags.c_contiguous:
        # frames in Fortran order (a NIfTI series read as it is stored): the result stored the same way,
        # (x, y, z, t) in Fortran order seen time first, so that no frame is transposed on the way
        result = np.moveaxis(np.empty((*data.shape[1:], frames), dtype=np.float32, order="F"), -1, 0)
    else:
        result = np.empty((frames, *data.shape[1:]), dtype=np.float32)
    for j in range(frames):
        # exact rational position j * (count - 1) / (frames - 1): integer part and remainder
        left, remainder = divmod(j * (count - 1), frames - 1)
        first = data[left].astype(np.float64)
        if remainder == 0:
            result[j] = first
        else:
            weight = remainder / (frames - 1)
            result[j] = first + weight * (data[left + 1].astype(np.float64) - first)
    return result


class TemporalResample(tio.IntensityTransform):
    """Resample the time axis of a 4D series (torchio's channels) to ``frames`` frames by linear
    interpolation over normalised time (``resample_frames``); the output frames span the same duration
    as the input ones, so the frame interval becomes ``interval * (n - 1) / (frames - 1)``.

    The output is float32; an image that already has ``frames`` frames is left untouched (identity,
    dtype included). Areas under the curves (trapezoid, in the series' time units) change only by the
    interpolation error: on the phantoms (16 or 30 frames to 32 or 64) by under 1% of the area under
    each voxel's |curve|. Downsampling far below the input rate drops samples rather than averaging
    them, so a bolus peak between output frames is lost.

    Args:
        frames: the number of output frames (at least 2).
        key: the scalar 4D image to resample, required (ValueError naming it when missing).
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``).
    """

    def __init__(self, frames: int = 32, key: str = "CTP", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 2:
            raise ValueError(f"frames must be an integer of at least 2, not {frames!r}")
        self.frames = int(frames)
        self.key = key
        self.args_names = ["frames", "key"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with its ``key`` series resampled to ``frames`` frames."""
        image = require_image(subject, self.key, self.name)
        count = image.shape[0]
        if count < 2:
            raise ValueError(f"{self.name}: '{self.key}' has {count} frame; it is not a time series")
        if count != self.frames:
            image.set_data(resample_frames(image.numpy(), self.frames))
        return subject
