"""Label derivation agrees with a direct set computation."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strokedata.labels import occluded_side_from_tmax, regions_from_clot

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


@given(
    st.sampled_from(["L", "R"]),
    st.sampled_from([1.0, -1.0]),
    st.integers(4, 9),
    st.floats(0.5, 3.0),
)
def test_tmax_rule_finds_the_side_with_longer_tmax(
    side: str, x_direction: float, half: int, extra: float
) -> None:
    tmax = np.full((2 * half, 3, 2), 1.0, dtype=np.float32)
    affine = np.diag([x_direction, 1.0, 1.0, 1.0])
    # voxel i lies at world x = x_direction * i: with x_direction -1 the low indices are the patient's right
    low_is_left = x_direction > 0
    delayed = slice(0, half) if (side == "L") == low_is_left else slice(half, 2 * half)
    tmax[delayed] += extra
    assert occluded_side_from_tmax(tmax, affine) == side


def test_the_tmax_rule_follows_the_left_right_axis_of_any_voxel_order() -> None:
    import numpy as np

    from strokedata.labels import occluded_side_from_tmax

    tmax = np.zeros((4, 6, 8))
    tmax[:, :, 6:] = 10.0  # high Tmax at the top of voxel axis 2
    tmax[:, :, :2] = 1.0
    swapped = np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # axis 2 = world +x
    assert occluded_side_from_tmax(tmax, swapped) == "R"
    swapped[0, 2] = -1.0  # axis 2 now runs towards the left
    assert occluded_side_from_tmax(tmax, swapped) == "L"
