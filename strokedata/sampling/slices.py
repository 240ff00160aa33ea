"""Every slice of every patient as a sample (002: "every slice (2D + time) is a sample"; 003: 2D axial
slices, each labelled with the 15 atlas regions under the clot voxels of that slice)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torchio as tio

from strokedata.labels import regions_by_slice
from strokedata.manifest import N_REGIONS
from strokedata.sampling._loading import LruCache, image_shape, patient_name, read_arrays, require

RESERVED = ("regions", "patient_id", "subject_index", "slice")
"""Item keys ``SliceDataset`` sets itself; no image key may take these names."""


class SliceDataset:
    """Every slice across ``axis`` of every subject as one item: a map-style dataset
    (``__len__`` / ``__getitem__``) usable as a ``torch.utils.data.Dataset`` without importing torch.

    Items are ordered by subject, then slice. Item ``i`` is a dict:

    - one float32 array (channels, a, b) per key of ``keys``: the slice of that image, its two
      remaining voxel axes in order (axial slices (channels, x, y) for ``axis=2``);
    - ``regions``: the uint8 15-vector of atlas regions holding clot in that slice
      (``strokedata.labels.regions_by_slice`` of CLOT x ATLAS; with ``regions=False`` absent);
    - ``patient_id`` (str), ``subject_index`` and ``slice`` (int).

    Slices keep their patient's id (``groups``), so that splits and folds stay grouped by patient.

    Cost: the index (slices per subject) comes from the image headers, nothing else is read at
    construction. An item reads its subject whole (every key, and CLOT and ATLAS), then keeps the last
    ``cache_size`` subjects' arrays, so reading items in order costs one read per subject; a shuffled
    order with ``cache_size=1`` costs about one whole-subject read per item. Shuffle patients, then
    slices within a patient, or raise ``cache_size`` (memory: that many subjects' float32 arrays); each
    loader worker holds its own cache.

    Args:
        subjects: the patients (lazily loaded ``tio.Subject``, e.g. ``strokedata.subjects.subjects``).
        keys: the scalar images to slice, each required and on one grid per subject.
        axis: the voxel axis across which slices are taken (2: axial as stored, as ``regions_by_slice``).
        regions: add the per-slice region vector; needs CLOT and ATLAS on the grid of ``keys``.
        clot_key, atlas_key: the label maps the regions come from.
        transform: applied to a copy of each subject before slicing (e.g. ``CTWindow``); it must keep
            the number of slices, and a random one draws anew at every read.
        cache_size: the number of subjects whose arrays are kept.

    Example:
        >>> dataset = SliceDataset([], keys=["SPIRAL"])
        >>> len(dataset)
        0
    """

    def __init__(
        self,
        subjects: Sequence[tio.Subject],
        keys: Sequence[str],
        *,
        axis: int = 2,
        regions: bool = True,
        clot_key: str = "CLOT",
        atlas_key: str = "ATLAS",
        transform: tio.Transform | None = None,
        cache_size: int = 1,
    ) -> None:
        if isinstance(keys, str) or not keys:
            raise ValueError(f"keys must be a non-empty sequence of image names, not {keys!r}")
        self.keys = tuple(str(key) for key in keys)
        clash = sorted(set(self.keys) & set(RESERVED))
        if clash:
            raise ValueError(f"image keys may not be named {', '.join(clash)}: these item keys are taken")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, not {axis!r}")
        self.subjects = list(subjects)
        self.axis = axis
        self.regions = bool(regions)
        self.clot_key, self.atlas_key = clot_key, atlas_key
        self.transform = transform
        self._needed = (*self.keys, clot_key, atlas_key) if self.regions else self.keys
        self.patient_ids = [patient_name(subject, index) for index, subject in enumerate(self.subjects)]
        self.slices_per_subject = np.array(
            [self._slice_count(index) for index in range(len(self.subjects))], dtype=np.int64
        )
        self._ends = np.cumsum(self.slices_per_subject)
        self._cache = LruCache(self._load, cache_size)

    def _slice_count(self, index: int) -> int:
        """Return the number of slices of subject ``index`` from its headers; ValueError when its images
        are missing or differ in shape."""
        subject = self.subjects[index]
        shapes = {key: image_shape(require(subject, key, "SliceDataset", index))[1:] for key in self._needed}
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{key} {shape}" for key, shape in shapes.items())
            raise ValueError(
                f"SliceDataset: patient {self.patient_ids[index]}'s images are not on one grid ({listed}); "
                "choose keys of one co-registered group or resample them first"
            )
        return int(next(iter(shapes.values()))[self.axis])

    def _load(self, index: int) -> dict[str, np.ndarray]:
        """Return subject ``index``'s arrays with the slice axis last: each key float32 (C, a, b, slices)
        and ``regions`` (slices, 15)."""
        arrays = read_arrays(self.subjects[index], self._needed, self.transform, "SliceDataset", index)
        count = int(self.slices_per_subject[index])
        result: dict[str, np.ndarray] = {}
        for key in self.keys:
            data = np.moveaxis(arrays[key], self.axis + 1, -1)
            if data.shape[-1] != count:
                raise ValueError(
                    f"SliceDataset: patient {self.patient_ids[index]}'s '{key}' has {data.shape[-1]} slices "
                    f"after the transform, its header {count}; the transform must keep the slices"
                )
            result[key] = data.astype(np.float32)
        if self.regions:
            clot = np.moveaxis(arrays[self.clot_key][0], self.axis, 2)
            atlas = np.moveaxis(np.rint(arrays[self.atlas_key][0]), self.axis, 2)
            if clot.shape[2] != count or atlas.shape != clot.shape:
                raise ValueError(
                    f"SliceDataset: patient {self.patient_ids[index]}'s CLOT and ATLAS do not match the "
                    f"{count} slices of its images after the transform"
                )
            result["regions"] = regions_by_slice(clot, atlas)
        return result

    @property
    def groups(self) -> np.ndarray:
        """Return the patient id of every item (for grouped splits and folds)."""
        return np.repeat(np.array(self.patient_ids, dtype=object), self.slices_per_subject)

    def locate(self, index: int) -> tuple[int, int]:
        """Return (subject index, slice index) of item ``index``; IndexError outside 0..len-1."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"item indices are integers, not {type(index).__name__}")
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} is outside 0..{len(self) - 1}")
        subject = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[subject - 1]) if subject else 0
        return subject, int(index) - start

    def region_labels(self) -> np.ndarray:
        """Return the (items, 15) uint8 region vectors of every item, reading each subject's CLOT and
        ATLAS once (not the images); for ``positive_weights`` and samplers."""
        if not self.regions:
            raise ValueError("SliceDataset: built with regions=False; there are no region labels")
        rows = [np.zeros((0, N_REGIONS), dtype=np.uint8)]
        for index in range(len(self.subjects)):
            arrays = read_arrays(
                self.subjects[index], (self.clot_key, self.atlas_key), self.transform, "SliceDataset", index
            )
            clot = np.moveaxis(arrays[self.clot_key][0], self.axis, 2)
            atlas = np.moveaxis(np.rint(arrays[self.atlas_key][0]), self.axis, 2)
            rows.append(regions_by_slice(clot, atlas))
        return np.concatenate(rows)

    def __len__(self) -> int:
        """Return the number of slices of all subjects together."""
        return int(self._ends[-1]) if self._ends.size else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return item ``index``: the slice's arrays, its regions, patient_id, subject_index and slice."""
        subject, position = self.locate(index)
        arrays = self._cache.get(subject)
        item: dict[str, Any] = {key: np.ascontiguousarray(arrays[key][..., position]) for key in self.keys}
        if self.regions:
            item["regions"] = arrays["regions"][position].copy()
        item.update(patient_id=self.patient_ids[subject], subject_index=subject, slice=position)
        return item
