"""Intensity transforms: clip-and-scale to [0, 1] per named image (000) and CT window presets.

Both write float32 data in [0, 1] and leave label maps alone. They are ``tio.IntensityTransform``
subclasses whose constructor arguments are recorded in ``subject.history``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torchio as tio

PERFUSION_000: dict[str, tuple[float, float]] = {
    "TMAX": (0.0, 20.0),
    "CBF": (0.0, 400.0),
    "CBV": (0.0, 400.0),
}
"""The ranges of 000: Tmax [0, 20] s; CBF and CBV [0, 400] % of the contralateral hemisphere's mean
(express them with ``RelativeToContralateral`` first)."""

CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "stroke": (40.0, 40.0),
    "angiography": (300.0, 600.0),
}
"""CT window presets as (level, width) in HU; a window shows [level - width / 2, level + width / 2].

brain: L40 W80, HU 0..80 (grey and white matter). stroke: L40 W40, HU 20..60, the narrow window that
shows early ischaemic grey-white loss (some sites use L32 W8; pass ``(32, 8)``). angiography: L300 W600,
HU 0..600, contrast-filled vessels on CTA and multiphase CTA.
"""

CT_MODALITIES: tuple[str, ...] = ("NCCT", "CTA", "MCTA1", "MCTA2", "MCTA3", "CTP")
"""Images in HU that ``CTWindow`` windows when it is given no ``include``."""


def require_image(subject: tio.Subject, key: str, transform: str, *, scalar: bool = True) -> tio.Image:
    """Return ``subject[key]``; raise ValueError naming the key when it is missing, is not an image, or
    (``scalar``) is a label map."""
    value = subject.get(key)
    if value is None:
        present = ", ".join(subject.get_images_names()) or "none"
        raise ValueError(f"{transform}: the subject has no image '{key}' (images: {present})")
    if not isinstance(value, tio.Image):
        raise ValueError(f"{transform}: '{key}' is a {type(value).__name__}, not an image")
    if scalar and not isinstance(value, tio.ScalarImage):
        raise ValueError(f"{transform}: '{key}' is a label map; {transform} applies to scalar images only")
    return value


def clip_and_scale(data: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return ``data`` clipped to [low, high] and mapped linearly onto [0, 1], as float32.

    Computed in float64 one channel (first axis) at a time, so that a narrow range far from 0 keeps
    its precision and memory beyond the output stays one float64 channel. Integers of one or two bytes
    (CT in HU) go through a table of every value they can hold, computed the same way: the same bytes,
    ten times faster than converting the volume.

    >>> clip_and_scale(np.array([[-5.0, 0.0, 10.0, 20.0, 99.0]]), 0.0, 20.0).tolist()
    [[0.0, 0.0, 0.5, 1.0, 1.0]]
    """
    if data.dtype in (np.int16, np.uint16, np.int8, np.uint8):  # CT in HU: a table of every stored value
        codes = np.arange(np.iinfo(data.dtype).min, np.iinfo(data.dtype).max + 1, dtype=np.float64)
        table = ((np.clip(codes, low, high) - low) / (high - low)).astype(np.float32)
        if data.dtype.kind == "i":  # stored codes read as unsigned: two's complement order
            table = np.roll(table, table.size // 2)
        result: np.ndarray = table[data.view(np.dtype(data.dtype.str.replace("i", "u")))]
        return result  # in the data's memory order
    result = np.empty_like(data, dtype=np.float32)  # in the data's memory order
    for channel, values in enumerate(data):
        result[channel] = (np.clip(values.astype(np.float64), low, high) - low) / (high - low)
    return result


def _parse_range(key: str, bounds: Sequence[float]) -> tuple[float, float]:
    """Return (low, high) as floats; raise ValueError unless they are two finite numbers, low < high."""
    if len(bounds) != 2:
        raise ValueError(f"the range of '{key}' must be (low, high), not {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"the range of '{key}' must be finite with low < high, not {bounds!r}")
    return low, high


class ClipAndScale(tio.IntensityTransform):
    """Clip each named image to its range [low, high] and scale it linearly to [0, 1] (float32).

    Args:
        ranges: image key -> (low, high); e.g. ``PERFUSION_000``. Every key must name a scalar image of
            the subject: a missing one raises ValueError naming it (images are not silently skipped).
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``); ``include`` / ``exclude`` are accepted
            for torchio's history replay but the images are exactly those named in ``ranges``.

    Example:
        >>> transform = ClipAndScale(PERFUSION_000)
        >>> transform
        ClipAndScale(ranges={'TMAX': (0.0, 20.0), 'CBF': (0.0, 400.0), 'CBV': (0.0, 400.0)})
    """

    def __init__(self, ranges: Mapping[str, Sequence[float]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not ranges:
            raise ValueError("ClipAndScale needs at least one image key and range")
        self.ranges: dict[str, tuple[float, float]] = {
            str(key): _parse_range(str(key), bounds) for key, bounds in ranges.items()
        }
        self.args_names = ["ranges"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with each image of ``ranges`` clipped and scaled to [0, 1]."""
        images = {key: require_image(subject, key, self.name) for key in self.ranges}
        for key, image in images.items():
            image.set_data(clip_and_scale(image.numpy(), *self.ranges[key]))
        return subject


class CTWindow(tio.IntensityTransform):
    """Apply a CT window (level, width in HU): clip to [level - width / 2, level + width / 2] and scale
    to [0, 1] (float32).

    Args:
        window: a preset name of ``CT_WINDOWS`` ("brain", "stroke", "angiography") or (level, width).
        include: the images to window, each required (ValueError naming a missing one). None: every
            scalar image of ``CT_MODALITIES`` that the subject has (at least one), less ``exclude``.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``, ``exclude``).

    Example:
        >>> CTWindow("stroke").bounds
        (20.0, 60.0)
    """

    def __init__(
        self, window: str | Sequence[float], include: Sequence[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(include=include, **kwargs)
        if isinstance(window, str):
            if window not in CT_WINDOWS:
                raise ValueError(f"unknown CT window '{window}'; choose one of {', '.join(CT_WINDOWS)}")
            self.window: str | tuple[float, float] = window
            level, width = CT_WINDOWS[window]
        else:
            if len(window) != 2:
                raise ValueError(f"a CT window is (level, width) in HU, not {window!r}")
            level, width = float(window[0]), float(window[1])
            if not (math.isfinite(level) and math.isfinite(width) and width > 0):
                raise ValueError(f"a CT window needs a finite level and a positive width, not {window!r}")
            self.window = (level, width)
        self.bounds = (level - width / 2, level + width / 2)
        self.args_names = ["window"]

    def _keys(self, subject: tio.Subject) -> list[str]:
        """Return the keys of the images to window (see the class docstring)."""
        if self.include is not None:
            return list(self.include)
        excluded = set(self.exclude or ())
        keys = [
            key
            for key in CT_MODALITIES
            if key not in excluded and isinstance(subject.get(key), tio.ScalarImage)
        ]
        if not keys:
            raise ValueError(
                f"CTWindow: the subject has no CT image ({', '.join(CT_MODALITIES)}); name them with include="
            )
        return keys

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with its CT images windowed and scaled to [0, 1]."""
        images = [require_image(subject, key, self.name) for key in self._keys(subject)]
        for image in images:
            image.set_data(clip_and_scale(image.numpy(), *self.bounds))
        return subject
