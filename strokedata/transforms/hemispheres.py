"""Transforms across the midline: the occluded side from Tmax (000), maps relative to the contralateral
hemisphere (000), mirroring to a canonical side (000) and the mirrored copy as extra channels (002).

The midline is the middle of the voxel axis that runs closest to the world's left-right axis, found from
each image's own affine (``left_right_axis``). As in ``strokedata.labels.occluded_side_from_tmax``, a
volume of ``n`` voxels along that axis has the halves ``[0, n // 2)`` and ``[n - n // 2, n)``; for odd
``n`` the middle slice belongs to neither. A flip reverses that voxel axis and keeps the affine, so it
mirrors the content across the plane through the volume's centre; the midline is assumed to lie there
(register to a symmetric template first when it does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torchio as tio

from strokedata.labels import MIRRORED, TMAX_SIDE, left_right_axis, occluded_side_from_tmax
from strokedata.transforms.intensity import require_image

Side = Literal["L", "R"]


def _halves(size: int) -> tuple[slice, slice, slice]:
    """Return the lower half, the upper half and the middle slice (empty for even ``size``) of an axis."""
    return slice(0, size // 2), slice(size - size // 2, size), slice(size // 2, size - size // 2)


def _along(axis: int, part: slice) -> tuple[slice, ...]:
    """Return an index that takes ``part`` along ``axis`` and everything along the axes before it."""
    return (*(slice(None),) * axis, part)


def flip_left_right(image: tio.Image) -> None:
    """Reverse ``image``'s left-right voxel axis in place (data only, affine and dtype kept)."""
    axis = left_right_axis(image.affine) + 1  # torchio data are (channels, x, y, z)
    # copy(), not ascontiguousarray(): numpy calls a flipped size-1 axis contiguous, torch refuses its
    # stride; order "K": a NIfTI volume's Fortran order is kept (no transposing copy now or when written)
    image.set_data(np.flip(image.numpy(), axis=axis).copy(order="K"))


def _keys_tuple(keys: Sequence[str], owner: str) -> tuple[str, ...]:
    """Return ``keys`` as a non-empty tuple; a bare string is refused (it would be read letter by letter)."""
    if isinstance(keys, str) or not keys:
        raise ValueError(f"{owner}: keys must be a non-empty sequence of image names, not {keys!r}")
    return tuple(str(key) for key in keys)


class OccludedSideFromTmax(tio.Transform):
    """Store the occluded side found by 000's Tmax rule (``strokedata.labels.occluded_side_from_tmax``)
    as the subject attribute ``attribute`` ("tmax_side"), for ``MirrorToCanonicalSide(side_key=...)``.

    Images are not changed. The labelled side (``occlusion_side``) is kept beside it, so that a pipeline
    can report where the rule and the label disagree.

    Args:
        key: the Tmax map, required (ValueError naming it when missing).
        attribute: the subject key to write.
        **kwargs: passed to ``tio.Transform``.
    """

    def __init__(self, key: str = "TMAX", attribute: str = TMAX_SIDE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.attribute = attribute
        self.args_names = ["key", "attribute"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with ``attribute`` set to the side of the larger mean non-zero Tmax."""
        image = require_image(subject, self.key, self.name)
        subject[self.attribute] = occluded_side_from_tmax(image.numpy()[0], image.affine)
        subject.update_attributes()
        return subject


class RelativeToContralateral(tio.IntensityTransform):
    """Express maps as % of the contralateral hemisphere's mean (000's relative CBF and CBV).

    For each image in ``keys`` and each of its channels, the reference of a hemisphere is the mean of
    the non-zero values on it (inside ``mask_key`` when given). Every voxel of one half becomes
    ``value / reference(other half) * 100``; a voxel of the middle slice (odd sizes) is divided by the
    mean of the two references. With a mask, voxels outside it become 0. The output is float32; a
    healthy, symmetric brain maps to about 100 on both sides.

    Args:
        keys: the scalar images to convert, each required (ValueError naming a missing one).
        mask_key: a label map on the same grid (shape and affine) as each image, or None. BRAIN_MASK
            lies on the NCCT grid, which differs from the perfusion grid unless registered, hence None
            by default.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``).

    Raises ValueError (from the call) when a hemisphere has no non-zero voxel or a non-positive mean.
    """

    def __init__(
        self, keys: Sequence[str] = ("CBF", "CBV"), mask_key: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.keys = _keys_tuple(keys, "RelativeToContralateral")
        self.mask_key = mask_key
        self.args_names = ["keys", "mask_key"]

    def _mask(self, subject: tio.Subject, image: tio.Image, key: str) -> np.ndarray | None:
        """Return the mask as a (1, x, y, z) bool array on ``image``'s grid, or None without mask_key."""
        if self.mask_key is None:
            return None
        mask = require_image(subject, self.mask_key, self.name, scalar=False)
        if mask.spatial_shape != image.spatial_shape or not np.allclose(mask.affine, image.affine, atol=1e-4):
            raise ValueError(
                f"{self.name}: mask '{self.mask_key}' is not on the grid of '{key}' (shape "
                f"{mask.spatial_shape} vs {image.spatial_shape}); resample or register it first"
            )
        inside: np.ndarray = mask.numpy()[:1] != 0
        return inside

    def _relative(self, data: np.ndarray, axis: int, inside: np.ndarray | None, key: str) -> np.ndarray:
        """Return one image's (channels, x, y, z) data relative to the contralateral mean, float32."""
        lower, upper, middle = (_along(axis, part) for part in _halves(data.shape[axis + 1]))
        result = np.empty_like(data, dtype=np.float32)  # every channel is written; the layout is kept
        for channel in range(data.shape[0]):
            values = data[channel].astype(np.float64)
            valid = values != 0 if inside is None else (values != 0) & inside[0]
            references = []
            for half, name in ((lower, "lower"), (upper, "upper")):
                chosen = values[half][valid[half]]
                mean = float(chosen.mean()) if chosen.size else 0.0
                if mean <= 0:
                    raise ValueError(
                        f"{self.name}: '{key}' channel {channel} has no positive mean on the {name} half of "
                        f"voxel axis {axis}; cannot express it relative to the contralateral side"
                    )
                references.append(mean)
            low_reference, high_reference = references
            out = np.empty_like(values)
            out[lower] = values[lower] / high_reference * 100
            out[upper] = values[upper] / low_reference * 100
            out[middle] = values[middle] / ((low_reference + high_reference) / 2) * 100
            if inside is not None:
                out[~inside[0]] = 0
            result[channel] = out
        return result

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with each image of ``keys`` in % of its contralateral mean."""
        images = {key: require_image(subject, key, self.name) for key in self.keys}
        for key, image in images.items():
            inside = self._mask(subject, image, key)
            image.set_data(self._relative(image.numpy(), left_right_axis(image.affine), inside, key))
        return subject


class MirrorToCanonicalSide(tio.SpatialTransform):
    """Flip every image (scalar images and label maps) across the midline when the subject's side
    differs from ``canonical``, so that every lesion ends up on one side (000: left occlusions flipped to
    the right).

    The subject's ``MIRRORED`` key ("mirrored") says whether its images are flipped relative to the
    input (every flip toggles it; absent counts as False); the side attribute keeps the labelled side.
    The history records the decision as ``flip=True/False``, so ``subject.apply_inverse_transform()``
    (or ``get_composed_history()``) undoes (or replays) exactly what was done, whatever the side
    attribute says by then. Inverted with ``flip=None`` (not from the history), it flips back when
    "mirrored" is True.
    Flipping is its own inverse: applying ``flip=True`` twice gives back the same bytes.

    Args:
        side_key: the subject attribute holding "L" or "R"; another value (None: unknown) is a ValueError.
        canonical: the side lesions are moved to.
        flip: None decides per subject from ``side_key``; True / False flip always / never (and do not
            read ``side_key``). The history stores the decision made here.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``, ``include``, ``exclude``).

    Example:
        >>> MirrorToCanonicalSide().inverse().is_invertible()
        True
    """

    def __init__(
        self,
        side_key: str = "occlusion_side",
        canonical: Side = "R",
        flip: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if canonical not in ("L", "R"):
            raise ValueError(f"canonical must be 'L' or 'R', not {canonical!r}")
        self.side_key = side_key
        self.canonical: Side = canonical
        self.flip = flip
        self.args_names = ["side_key", "canonical", "flip"]
        self.invert_transform = False

    def _decide(self, subject: tio.Subject) -> bool:
        """Return whether to flip this subject."""
        if self.flip is not None:
            return self.flip
        if self.invert_transform:
            mirrored = subject.get(MIRRORED)
            if not isinstance(mirrored, bool):
                raise ValueError(
                    f"{self.name}: cannot invert, the subject has no '{MIRRORED}' record; use the subject "
                    "returned by the forward transform or its history (apply_inverse_transform)"
                )
            return mirrored
        side = subject.get(self.side_key)
        if side not in ("L", "R"):
            raise ValueError(
                f"{self.name}: the subject's '{self.side_key}' is {side!r}, not 'L' or 'R'; derive it (e.g. "
                "strokedata.labels.occluded_side_from_tmax) or pass flip="
            )
        return side != self.canonical

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject flipped across the midline if its side is not canonical; record the flip."""
        flip = self._decide(subject)
        if flip:
            for image in self.get_images(subject):
                flip_left_right(image)
        subject[MIRRORED] = bool(subject.get(MIRRORED, False)) != flip  # a flip toggles, forward or back
        subject.update_attributes()
        if self.parse_input:  # where torchio's __call__ records a transform; ours records its decision
            arguments: dict[str, object] = {
                "include": self.include,
                "exclude": self.exclude,
                "copy": self.copy,
            }
            arguments.update(side_key=self.side_key, canonical=self.canonical, flip=flip)
            subject.add_transform(self, arguments)
        return subject

    def _add_transform_to_subject_history(self, subject: tio.Subject) -> None:
        """Do nothing: ``apply_transform`` has recorded this transform with its per-subject decision."""


class AddMirroredChannel(tio.IntensityTransform):
    """Append the left-right flipped copy of each named image as extra channels (002's contralateral
    input): (C, x, y, z) becomes (2C, x, y, z), channels C..2C-1 being channels 0..C-1 mirrored.

    Invertible: the inverse keeps the first half of the channels. Register to a symmetric template first
    so that the mirrored copy lines up with the contralateral hemisphere.

    Args:
        keys: the scalar images to extend, each required (ValueError naming a missing one).
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``).
    """

    def __init__(self, keys: Sequence[str] = ("CTP",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = _keys_tuple(keys, "AddMirroredChannel")
        self.args_names = ["keys"]
        self.invert_transform = False

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with the mirrored channels appended (or, inverted, removed)."""
        images = {key: require_image(subject, key, self.name) for key in self.keys}
        for key, image in images.items():
            data = image.numpy()
            if self.invert_transform:
                if data.shape[0] % 2:
                    raise ValueError(f"{self.name}: '{key}' has an odd number of channels, nothing to remove")
                image.set_data(data[: data.shape[0] // 2].copy())
            else:
                mirrored = np.flip(data, axis=left_right_axis(image.affine) + 1)
                image.set_data(np.concatenate([data, mirrored], axis=0))
        return subject
