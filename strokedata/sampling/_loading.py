"""Reading a subject's arrays without keeping them in the subject, and a small LRU cache of them."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torchio as tio

from strokedata.io import read_header


def patient_name(subject: tio.Subject, index: int) -> str:
    """Return the subject's patient_id, or ``#index`` when it has none."""
    value = subject.get("patient_id")
    return str(value) if value is not None else f"#{index}"


def require(subject: tio.Subject, key: str, owner: str, index: int) -> tio.Image:
    """Return ``subject[key]``; ValueError naming the patient and the key when it is not an image."""
    value = subject.get(key)
    if not isinstance(value, tio.Image):
        present = ", ".join(subject.get_images_names()) or "none"
        raise ValueError(
            f"{owner}: patient {patient_name(subject, index)} has no image '{key}' (images: {present})"
        )
    return value


def image_shape(image: tio.Image) -> tuple[int, ...]:
    """Return an image's (channels, x, y, z) shape without loading it into the image: from the NIfTI
    header of an unloaded file (a 4D series' time points as channels, as ``strokedata.subjects`` reads
    them), else from the data, read into a copy when needed."""
    path = image.path
    if image.get(tio.DATA) is not None:
        return tuple(image.shape)
    if isinstance(path, Path) and path.is_file() and path.name.endswith((".nii", ".nii.gz")):
        shape = read_header(path).shape
        if len(shape) == 5 and shape[3] == 1:
            shape = (*shape[:3], shape[4])
        if len(shape) == 3:
            return (1, *shape)
        if len(shape) == 4:
            return (shape[3], *shape[:3])
    return tuple(copy.copy(image).shape)


def read_arrays(
    subject: tio.Subject, keys: Sequence[str], transform: tio.Transform | None, owner: str, index: int
) -> dict[str, np.ndarray]:
    """Return the (channels, x, y, z) data of ``keys``, read from a copy so that the subject itself
    stays unloaded (its memory is not kept between reads); ``transform`` is applied to a copy first."""
    if transform is not None:
        source = transform(subject)
        if not isinstance(source, tio.Subject):
            raise ValueError(f"{owner}: the transform returned a {type(source).__name__}, not a subject")
        return {key: require(source, key, owner, index).numpy() for key in keys}
    return {key: copy.copy(require(subject, key, owner, index)).numpy() for key in keys}


class LruCache:
    """The last ``size`` values computed by ``load(index)``, least recently used first out."""

    def __init__(self, load: Callable[[int], dict[str, np.ndarray]], size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"cache_size must be a positive integer, not {size!r}")
        self._load = load
        self._size = size
        self._items: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.loads = 0

    def get(self, index: int) -> dict[str, np.ndarray]:
        """Return ``load(index)``, from the cache when it holds it."""
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        value = self._load(index)
        self.loads += 1
        self._items[index] = value
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every cached value (e.g. in a loader worker after forking)."""
        self._items.clear()
