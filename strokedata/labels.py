"""Label derivation: pure functions from images and manifest labels to the tasks' labels."""

from __future__ import annotations

import numpy as np

from strokedata.manifest import N_REGIONS


def regions_from_clot(clot: np.ndarray, atlas: np.ndarray) -> np.ndarray:
    """Return the 15-element 0/1 vector (uint8) of atlas values 0..14 found under clot voxels.

    Clot values 1 (body) and 2 (border) both count, as in the clot-regions task; atlas values outside
    0..14 are ignored (validate reports them as V004).

    >>> regions_from_clot(np.array([[0, 1, 2]]), np.array([[3, 4, 14]])).nonzero()[0].tolist()
    [4, 14]
    """
    if clot.shape != atlas.shape:
        raise ValueError(f"CLOT shape {clot.shape} differs from ATLAS shape {atlas.shape}")
    values = np.asarray(atlas[clot > 0])
    values = values[(values >= 0) & (values < N_REGIONS)].astype(np.intp)
    return (np.bincount(values, minlength=N_REGIONS) > 0).astype(np.uint8)
