"""Patches for the infarct-core task (002): "randomly select patches with H = W = T = 32 and C = 2,
evenly distributed across infarcted and non-infarcted areas"; the label is that of "the 4 central
voxels" of the patch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torchio as tio

from strokedata.sampling._loading import LruCache, image_shape, patient_name, read_arrays, require

Padding = Literal["constant", "edge"]
Order = Literal["grouped", "shuffled"]


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int; ValueError unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def extract_patch(
    data: np.ndarray, x: int, y: int, z: int, size: int, padding: Padding = "constant"
) -> np.ndarray:
    """Return the (channels, size, size) in-plane patch of (channels, X, Y, Z) ``data`` on slice ``z``
    whose voxel (x, y) sits at patch index ((size - 1) // 2, (size - 1) // 2): rows
    ``x - (size - 1) // 2 .. x + size // 2``, likewise columns. For an even size that voxel is the
    top-left one of the central 2 x 2 block. Beyond the array the patch is padded with 0
    ("constant") or the nearest edge value ("edge").

    >>> extract_patch(np.arange(9.0).reshape(1, 3, 3, 1), 0, 0, 0, 3)[0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 4.0]]
    >>> extract_patch(np.arange(9.0).reshape(1, 3, 3, 1), 1, 1, 0, 2)[0].tolist()
    [[4.0, 5.0], [7.0, 8.0]]
    """
    before = (size - 1) // 2
    lows = (x - before, y - before)
    highs = (lows[0] + size, lows[1] + size)
    shape = data.shape[1:3]
    cut = [(max(low, 0), min(high, extent)) for low, high, extent in zip(lows, highs, shape, strict=True)]
    piece = data[:, cut[0][0] : cut[0][1], cut[1][0] : cut[1][1], z]
    pads = [(0, 0)] + [
        (start - low, high - stop) for (start, stop), low, high in zip(cut, lows, highs, strict=True)
    ]
    if any(p != (0, 0) for p in pads):
        piece = np.pad(piece, pads, mode=padding)
    return np.ascontiguousarray(piece)


class PatchDataset:
    """In-plane patches of a 4D series on one slice, their centres balanced between core and non-core
    voxels; a map-style dataset (``__len__`` / ``__getitem__``, ``set_epoch``) usable as a
    ``torch.utils.data.Dataset`` without importing torch.

    Frames: the image ``key`` ((channels x frames, X, Y, Z) in torchio's layout) must hold
    ``channels * frames`` channels, else ValueError naming the patient: resample time first with
    ``strokedata.transforms.TemporalResample(frames)`` (series are not silently cut or stretched), and
    add the mirrored copy after it (``AddMirroredChannel``, ``channels=2``: 002's C = 2).

    Centres (per epoch, from ``numpy.random.default_rng(SeedSequence([seed, epoch]))``): the candidates
    of a subject are the voxels where some channel of ``key`` exceeds ``signal_threshold`` (None: every
    voxel) and, with ``within``, where that label map is non-zero; core candidates have ``label_key``
    > 0, non-core ones 0. Each epoch draws exactly ``patches_per_epoch // 2`` core centres and the rest
    non-core, uniformly over all subjects' candidate voxels pooled (with replacement; a patient with a
    larger core gives more core patches). A patient without core gives non-core centres only; when no
    subject has a core (or none a non-core candidate) every centre comes from the other kind.

    Item ``i`` of the current epoch is a dict: ``patch`` float32 (channels, frames, size, size); ``label``
    the int64 core value (0 / 1) of the centre voxel; ``central`` the uint8 2 x 2 core block at patch
    rows and columns ``(size - 1) // 2 .. size // 2`` (1 x 1 for an odd size; the centre is its top-left
    voxel); ``centre`` int64 (x, y, z); ``patient_id``, ``subject_index``. Beyond the volume the patch
    is padded (``padding``: 0 or the edge value) and the core with 0.

    Cost: the first epoch's centres read every subject once (key, label_key, within) and keep two
    packed bit masks per subject (1 bit per voxel each: 2 MB for 512 x 512 x 27). Items read their
    subject whole and keep ``cache_size`` of them: with ``order="grouped"`` (default) an epoch lists
    subjects in a random order and each one's centres together, in random order, so a loader without
    ``shuffle`` reads each subject once per epoch; ``"shuffled"`` mixes all centres (then raise
    ``cache_size`` to hold every subject, or expect about one subject read per item). With loader
    workers, call ``centres()`` in the main process first (workers forked later inherit the pools) and
    keep ``persistent_workers=False`` so that ``set_epoch`` reaches them.

    Args:
        subjects: the patients (lazily loaded ``tio.Subject``).
        patches_per_epoch: the number of patches (centres) per epoch.
        seed: a non-negative integer.
        key: the 4D image; label_key: the binary core label map on its grid.
        frames, channels: the expected time points and channels per time point of ``key``.
        size: the in-plane patch size (H = W).
        axis: the voxel axis across which slices are taken (2: axial as stored).
        within: None or a label map on the grid restricting the candidates (e.g. a brain mask).
        signal_threshold: candidates need some channel above it; None drops that condition. 0 keeps the
            head (air is -1024 HU, or 0 after a window).
        padding: "constant" (0) or "edge".
        order: "grouped" or "shuffled" (see Cost).
        transform: applied to a copy of each subject at every read (e.g. ``TemporalResample``); it must
            keep the spatial grid, and a random one draws anew at every read.
        cache_size: the number of subjects whose arrays are kept.
    """

    def __init__(
        self,
        subjects: Sequence[tio.Subject],
        *,
        patches_per_epoch: int,
        seed: int,
        key: str = "CTP",
        label_key: str = "CORE",
        frames: int = 32,
        channels: int = 1,
        size: int = 32,
        axis: int = 2,
        within: str | None = None,
        signal_threshold: float | None = 0.0,
        padding: Padding = "constant",
        order: Order = "grouped",
        transform: tio.Transform | None = None,
        cache_size: int = 1,
    ) -> None:
        self.subjects = list(subjects)
        if not self.subjects:
            raise ValueError("PatchDataset needs at least one subject")
        self.patches_per_epoch = _positive_int(patches_per_epoch, "patches_per_epoch")
        self.seed = _positive_int(seed, "seed", 0)
        self.frames = _positive_int(frames, "frames")
        self.channels = _positive_int(channels, "channels")
        self.size = _positive_int(size, "size")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, not {axis!r}")
        if padding not in ("constant", "edge"):
            raise ValueError(f"padding must be 'constant' or 'edge', not {padding!r}")
        if order not in ("grouped", "shuffled"):
            raise ValueError(f"order must be 'grouped' or 'shuffled', not {order!r}")
        self.key, self.label_key, self.within = key, label_key, within
        self.axis = axis
        self.signal_threshold = None if signal_threshold is None else float(signal_threshold)
        self.padding: Padding = padding
        self.order: Order = order
        self.transform = transform
        self.epoch = 0
        self.patient_ids = [patient_name(subject, index) for index, subject in enumerate(self.subjects)]
        self._needed = (key, label_key) if within is None else (key, label_key, within)
        if transform is None:  # the headers tell the frames; with a transform the first read does
            for index in range(len(self.subjects)):
                self._check_shapes(
                    {
                        k: image_shape(require(self.subjects[index], k, "PatchDataset", index))
                        for k in self._needed
                    },
                    index,
                )
        self._cache = LruCache(self._load, cache_size)
        self._pools: tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray] | None = None
        self._shapes: list[tuple[int, int, int]] = []
        self._centres: tuple[int, np.ndarray] | None = None

    def _check_shapes(self, shapes: dict[str, tuple[int, ...]], index: int) -> None:
        """Raise ValueError naming the patient unless ``key`` has channels x frames channels and the label
        maps share its grid with one channel."""
        expected = self.channels * self.frames
        found = shapes[self.key][0]
        if found != expected:
            raise ValueError(
                f"PatchDataset: patient {self.patient_ids[index]}'s '{self.key}' has {found} channels, not "
                f"{self.channels} x {self.frames} frames; resample time with TemporalResample({self.frames}) "
                "first (then AddMirroredChannel for channels=2)"
            )
        for other in self._needed[1:]:
            if tuple(shapes[other][1:]) != tuple(shapes[self.key][1:]) or shapes[other][0] != 1:
                raise ValueError(
                    f"PatchDataset: patient {self.patient_ids[index]}'s '{other}' {shapes[other]} is not one "
                    f"channel on the grid of '{self.key}' {shapes[self.key]}"
                )

    def _load(self, index: int) -> dict[str, np.ndarray]:
        """Return subject ``index``'s image (float32, channels x frames, a, b, slices) and core (uint8
        a, b, slices), the slice axis last, and its candidate mask when ``within`` is set."""
        arrays = read_arrays(self.subjects[index], self._needed, self.transform, "PatchDataset", index)
        self._check_shapes({k: v.shape for k, v in arrays.items()}, index)
        image = np.moveaxis(arrays[self.key], self.axis + 1, -1).astype(np.float32)
        result = {"image": image, "core": (np.moveaxis(arrays[self.label_key][0], self.axis, -1) > 0)}
        if self.within is not None:
            result["within"] = np.moveaxis(arrays[self.within][0], self.axis, -1) != 0
        return result

    def _candidates(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Return the bool (a, b, slices) mask of candidate centres of one subject."""
        image = arrays["image"]
        mask: np.ndarray = np.ones(image.shape[1:], dtype=bool)
        if self.signal_threshold is not None:
            mask = np.asarray((image > self.signal_threshold).any(axis=0))
        if "within" in arrays:
            mask &= arrays["within"]
        return mask

    def _build_pools(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """Return (packed core candidates, packed non-core candidates, core counts, non-core counts)."""
        if self._pools is None:
            core_bits, other_bits, core_counts, other_counts = [], [], [], []
            for index in range(len(self.subjects)):
                arrays = self._cache.get(index)
                candidates = self._candidates(arrays)
                core = candidates & arrays["core"]
                other = candidates & ~arrays["core"]
                self._shapes.append(core.shape)
                core_bits.append(np.packbits(core, axis=None))
                other_bits.append(np.packbits(other, axis=None))
                core_counts.append(int(core.sum()))
                other_counts.append(int(other.sum()))
            self._pools = (
                core_bits,
                other_bits,
                np.array(core_counts, dtype=np.int64),
                np.array(other_counts, dtype=np.int64),
            )
        return self._pools

    def _draw(
        self, rng: np.random.Generator, bits: list[np.ndarray], counts: np.ndarray, number: int, label: int
    ) -> np.ndarray:
        """Return ``number`` rows (subject, a, b, slice, label) drawn uniformly from the pooled voxels."""
        ranks = rng.integers(int(counts.sum()), size=number) if number else np.zeros(0, dtype=np.int64)
        ends = np.cumsum(counts)
        owners = np.searchsorted(ends, ranks, side="right")
        rows = np.zeros((number, 5), dtype=np.int64)
        rows[:, 0], rows[:, 4] = owners, label
        for subject in np.unique(owners):
            chosen = owners == subject
            start = int(ends[subject - 1]) if subject else 0
            shape = self._shapes[subject]
            flat = np.flatnonzero(np.unpackbits(bits[subject], count=int(np.prod(shape))))
            rows[chosen, 1:4] = np.stack(np.unravel_index(flat[ranks[chosen] - start], shape), axis=1)
        return rows

    def centres(self, epoch: int | None = None) -> np.ndarray:
        """Return the (patches_per_epoch, 5) int64 rows (subject index, x, y, z, label) of ``epoch``'s
        centres (default: the current epoch), in the order items are served; x, y, z are voxel indices."""
        chosen = self.epoch if epoch is None else _positive_int(epoch, "epoch", 0)
        if self._centres is not None and self._centres[0] == chosen:
            return self._centres[1]
        core_bits, other_bits, core_counts, other_counts = self._build_pools()
        total_core, total_other = int(core_counts.sum()), int(other_counts.sum())
        if total_core == 0 and total_other == 0:
            raise ValueError(
                "PatchDataset: no subject has a candidate voxel; check signal_threshold and within"
            )
        n_core = self.patches_per_epoch // 2
        if total_core == 0:
            n_core = 0
        elif total_other == 0:
            n_core = self.patches_per_epoch
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, chosen]))
        rows = np.concatenate(
            [
                self._draw(rng, core_bits, core_counts, n_core, 1),
                self._draw(rng, other_bits, other_counts, self.patches_per_epoch - n_core, 0),
            ]
        )
        rows = rows[rng.permutation(len(rows))]
        if self.order == "grouped":
            rank = np.argsort(rng.permutation(len(self.subjects)))  # a random order of the subjects
            rows = rows[np.argsort(rank[rows[:, 0]], kind="stable")]
        rows = self._to_voxels(rows)
        self._centres = (chosen, rows)
        return rows

    def _to_voxels(self, rows: np.ndarray) -> np.ndarray:
        """Return ``rows`` with (a, b, slice) turned back into voxel indices (x, y, z)."""
        result = rows.copy()
        in_plane = [a for a in range(3) if a != self.axis]
        result[:, 1 + in_plane[0]], result[:, 1 + in_plane[1]], result[:, 1 + self.axis] = (
            rows[:, 1],
            rows[:, 2],
            rows[:, 3],
        )
        return result

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose centres the items are (a non-negative integer)."""
        self.epoch = _positive_int(epoch, "epoch", 0)

    def __len__(self) -> int:
        """Return the number of patches per epoch."""
        return self.patches_per_epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return patch ``index`` of the current epoch (see the class docstring for its keys)."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"item indices are integers, not {type(index).__name__}")
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} is outside 0..{len(self) - 1}")
        subject, *voxel, label = (int(v) for v in self.centres()[index])
        in_plane = [a for a in range(3) if a != self.axis]
        a, b, z = voxel[in_plane[0]], voxel[in_plane[1]], voxel[self.axis]
        arrays = self._cache.get(subject)
        patch = extract_patch(arrays["image"], a, b, z, self.size, self.padding)
        core = extract_patch(arrays["core"][None].view(np.uint8), a, b, z, self.size, "constant")[0]
        middle = slice((self.size - 1) // 2, self.size // 2 + 1)
        return {
            "patch": patch.reshape(self.channels, self.frames, self.size, self.size),
            "label": np.int64(label),
            "central": np.ascontiguousarray(core[middle, middle]),
            "centre": np.array(voxel, dtype=np.int64),
            "patient_id": self.patient_ids[subject],
            "subject_index": subject,
        }
