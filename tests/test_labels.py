"""Label derivation agrees with a direct set computation."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strokedata.labels import regions_from_clot

shapes = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4))


@given(
    shapes.flatmap(
        lambda shape: st.tuples(
            arrays(np.uint8, shape, elements=st.integers(0, 2)),
            arrays(np.int16, shape, elements=st.integers(-2, 16)),
        )
    )
)
def test_regions_are_the_atlas_values_under_clot(pair: tuple[np.ndarray, np.ndarray]) -> None:
    clot, atlas = pair
    expected = {
        int(value) for value, c in zip(atlas.ravel(), clot.ravel(), strict=True) if c > 0 and 0 <= value <= 14
    }
    regions = regions_from_clot(clot, atlas)
    assert regions.shape == (15,) and regions.dtype == np.uint8
    assert set(np.flatnonzero(regions).tolist()) == expected
