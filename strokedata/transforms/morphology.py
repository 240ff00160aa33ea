"""Binary morphology on numpy masks: the largest connected component, hole filling, and erosion and
dilation by a Euclidean ball in mm. Connected components and hole filling come from cc3d (the fastest
labelling measured here), exact anisotropic distances from edt (docs/performance.md); each result is
checked against scipy.ndimage's by tests/test_masks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cc3d
import edt
import numpy as np

from strokedata.executor import default_jobs

Connectivity = Literal[4, 6, 8, 18, 26]
"""Neighbourhoods: 4 or 8 in 2D; 6 (faces), 18 (and edges) or 26 (and corners) in 3D."""

CONNECTIVITIES: dict[int, tuple[int, ...]] = {2: (4, 8), 3: (6, 18, 26)}


def largest_component(mask: np.ndarray, connectivity: Connectivity | None = None) -> np.ndarray:
    """Return the largest connected component of a 2D or 3D mask (non-zero = inside) as a bool array.

    An empty mask gives an empty mask. Ties go to the component holding the first voxel in C order,
    so the result never depends on how the labeller numbers components.

    Args:
        mask: a 2D or 3D array; non-zero voxels are inside.
        connectivity: 4 or 8 in 2D, 6, 18 or 26 in 3D; None: the full neighbourhood (8 or 26).

    >>> largest_component(np.array([[1, 0, 1, 1], [0, 0, 0, 1]])).astype(int).tolist()
    [[0, 0, 1, 1], [0, 0, 0, 1]]
    """
    array = np.asarray(mask) != 0
    if array.ndim not in CONNECTIVITIES:
        raise ValueError(f"largest_component takes a 2D or 3D mask, not {array.ndim}D")
    if connectivity is None:
        connectivity = 26 if array.ndim == 3 else 8
    if connectivity not in CONNECTIVITIES[array.ndim]:
        allowed = " or ".join(str(c) for c in CONNECTIVITIES[array.ndim])
        raise ValueError(f"connectivity {connectivity} does not apply in {array.ndim}D; use {allowed}")
    if not array.any():
        return np.zeros_like(array)
    neighbours: Connectivity = connectivity
    box = bounding_box(array, (0,) * array.ndim)  # every component lies inside; C order is kept there
    volume = array[box]
    if array.ndim == 2:  # one slice in 3D, where 6 and 26 neighbours are 2D's 4 and 8
        neighbours, volume = (26 if connectivity == 8 else 6), volume[:, :, np.newaxis]
    # padded by one empty voxel: cc3d 4.1 mislabels or fails on thin arrays, e.g. (3, 1) or (1, 5, 1)
    padded = cc3d.connected_components(_framed(volume), connectivity=neighbours)
    counts = np.bincount(padded.ravel(order="K"))  # the frame is background: label 0, not counted
    counts[0] = 0
    labels = padded[1:-1, 1:-1, 1:-1]
    if array.ndim == 2:
        labels = labels[:, :, 0]
    best = np.flatnonzero(counts == counts.max())
    if best.size == 1:
        chosen = best[0]
    else:  # a tie: the component met first in C order
        flat = labels.ravel()
        chosen = flat[np.flatnonzero(np.isin(flat, best))[0]]
    result: np.ndarray = np.zeros_like(array)
    result[box] = labels == chosen
    return result


def _framed(volume: np.ndarray) -> np.ndarray:
    """Return a bool ``volume`` inside a frame of one False voxel, in its memory order (``np.pad`` gives
    a strided view of a Fortran array C order: a transposing copy)."""
    framed = np.zeros(
        [size + 2 for size in volume.shape], dtype=bool, order="F" if _fortran_like(volume) else "C"
    )
    framed[(slice(1, -1),) * volume.ndim] = volume
    return framed


def filled_holes(mask: np.ndarray) -> np.ndarray:
    """Return a 2D or 3D bool ``mask`` with its holes filled: the background regions (face-connected: 4
    neighbours in 2D, 6 in 3D) that do not reach the array's border. The result of
    ``scipy.ndimage.binary_fill_holes`` with its default structure, by one cc3d labelling (five times
    faster on 512 x 512 x 200)."""
    array = np.asarray(mask, dtype=bool)
    if array.ndim not in (2, 3):
        raise ValueError(f"filled_holes takes a 2D or 3D mask, not {array.ndim}D")
    # a frame of background joins every region that reaches the border into the corner's one
    background = np.pad(~array, 1, constant_values=True)
    labels = cc3d.connected_components(background, connectivity=4 if array.ndim == 2 else 6)
    inner = (slice(1, -1),) * array.ndim
    result: np.ndarray = labels[inner] != labels[(0,) * array.ndim]
    return result


def fill_slices(mask: np.ndarray, axis: int) -> np.ndarray:
    """Return ``mask`` with the holes of each 2D slice across ``axis`` filled."""
    result = np.moveaxis(mask.copy(order="K"), axis, 0)
    for index, plane in enumerate(result):
        result[index] = filled_holes(plane)
    return np.moveaxis(result, 0, axis)


def bounding_box(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, ...]:
    """Return the slices of the bounding box of ``mask``'s True voxels grown by ``margin`` voxels per
    axis, clipped to the array (the whole array when nothing is True).

    >>> bounding_box(np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]), (0, 1))
    (slice(1, 2, None), slice(0, 4, None))
    """
    box = []
    for axis, grow in enumerate(margin):
        others = tuple(index for index in range(mask.ndim) if index != axis)
        found = np.flatnonzero(mask.any(axis=others))
        if found.size == 0:
            return tuple(slice(None) for _ in range(mask.ndim))
        box.append(slice(max(0, int(found[0]) - grow), min(mask.shape[axis], int(found[-1]) + grow + 1)))
    return tuple(box)


def _far_inside(mask: np.ndarray, spacing: tuple[float, float, float], radius: float) -> np.ndarray:
    """Return the voxels of ``mask`` farther than ``radius`` mm from every voxel outside it, voxels beyond
    the array's edge counting as inside, in the memory order of ``mask`` (Fortran order stays Fortran).
    Distances come from the ``edt`` package (exact, anisotropic, in float32: nine times faster than
    scipy's on 512 x 512 x 200; a voxel within a float32 rounding of the radius may fall either side).
    On every core this process may use, as elastix and ITK's resampler run: each voxel's distance is
    exact, whatever the thread count."""
    if mask.all():
        return mask.copy(order="K")
    threads = default_jobs()
    if _fortran_like(mask):  # edt takes C order: the transposed array is, with the spacing reversed
        flipped = np.ascontiguousarray(mask.T)
        distances = edt.edt(flipped, anisotropy=spacing[::-1], black_border=False, parallel=threads).T
    else:
        distances = edt.edt(
            np.ascontiguousarray(mask), anisotropy=spacing, black_border=False, parallel=threads
        )
    return np.asarray(distances > radius)


def _fortran_like(array: np.ndarray) -> bool:
    """Return whether ``array``'s first axis varies fastest in memory (Fortran order, or a view of it)."""
    return array.ndim > 1 and abs(array.strides[0]) < abs(array.strides[-1])


def eroded(mask: np.ndarray, spacing: tuple[float, float, float], radius: float) -> np.ndarray:
    """Return ``mask`` eroded by a Euclidean ball of ``radius`` mm (``_far_inside``), computed within its
    bounding box and one voxel of outside around it (the same voxels, fewer to visit)."""
    box = bounding_box(mask, (1, 1, 1))
    result = np.zeros_like(mask, dtype=bool)
    result[box] = _far_inside(mask[box], spacing, radius)
    return result


def dilated(mask: np.ndarray, spacing: tuple[float, float, float], radius: float) -> np.ndarray:
    """Return ``mask`` dilated by a Euclidean ball of ``radius`` mm: the voxels within ``radius`` of one
    of its voxels, computed within its bounding box grown by the radius."""
    if not mask.any():
        return mask.copy(order="K")
    box = bounding_box(mask, [int(np.ceil(radius / size)) + 1 for size in spacing])
    result = np.zeros_like(mask, dtype=bool)
    result[box] = ~_far_inside(~mask[box], spacing, radius)
    return result
