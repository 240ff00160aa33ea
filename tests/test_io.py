"""The NIfTI reader agrees with nibabel, refuses huge headers before allocating, and hashes content."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strokedata.io import (
    ImageReadError,
    atomic_write_text,
    content_hash,
    gzip_pieces,
    nifti_bytes,
    read_header,
    read_volume,
    write_nifti,
)
from tests.corruptions import patch_header

dtypes = st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
shapes = st.lists(st.integers(1, 6), min_size=3, max_size=4).map(tuple)


@given(
    dtype=dtypes,
    shape=shapes,
    gz=st.booleans(),
    nifti2=st.booleans(),
    slope=st.sampled_from([1.0, 0.5, 2.0]),
    inter=st.sampled_from([0.0, -1024.0]),
)
def test_reader_agrees_with_nibabel(
    tmp_path_factory: pytest.TempPathFactory,
    dtype: type,
    shape: tuple[int, ...],
    gz: bool,
    nifti2: bool,
    slope: float,
    inter: float,
) -> None:
    path = tmp_path_factory.mktemp("io") / ("x.nii.gz" if gz else "x.nii")
    data = (np.arange(np.prod(shape)).reshape(shape) % 50).astype(dtype)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    image = (nib.Nifti2Image if nifti2 else nib.Nifti1Image)(data, affine)
    image.header.set_slope_inter(slope, inter)
    nib.save(image, path)
    volume = read_volume(path, max_voxels=10**6)
    expected = nib.load(path)
    assert np.array_equal(volume.data, np.asarray(expected.dataobj.get_unscaled()))
    assert np.allclose(volume.scaled(), expected.get_fdata())
    assert np.allclose(volume.header.affine, expected.affine)
    assert volume.header.shape == expected.shape
    low, high = volume.scaled_range()
    assert np.isclose(low, expected.get_fdata().min()) and np.isclose(high, expected.get_fdata().max())
    assert read_header(path).shape == expected.shape


def test_huge_header_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    patch_header(path, dim=[3, 32767, 32767, 32767, 1, 1, 1, 1])
    tracemalloc.start()
    with pytest.raises(ImageReadError) as caught:
        read_volume(path, max_voxels=10**9)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert caught.value.kind == "too_large"
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", "truncated"),
        (b"\x1f\x8b\x08garbage", "corrupt"),  # gzip magic, then reserved header flags set
        (
            gzip.compress(nib.Nifti1Image(np.eye(4), np.eye(4)).to_bytes(), mtime=0)[:40],
            "truncated",
        ),  # cut in the header
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 600, "corrupt"),  # invalid deflate data
        (b"x" * 400, "corrupt"),
    ],
    ids=["empty", "reserved flags", "cut header", "bad deflate", "not gzip"],
)  # ids, and mtime 0: pytest-xdist's workers must collect the same names (gzip's header has the time)
def test_unreadable_files_raise_read_errors(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "x.nii.gz"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as caught:
        read_volume(path, max_voxels=10**6)
    assert caught.value.kind == kind


def test_content_hash_ignores_header_and_compression(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2, 2, 1])), tmp_path / "b.nii")
    nib.save(nib.Nifti1Image(data + 1, np.eye(4)), tmp_path / "c.nii")
    hashes = [content_hash(read_volume(tmp_path / name, 10**6)) for name in ("a.nii.gz", "b.nii", "c.nii")]
    assert hashes[0] == hashes[1] != hashes[2]


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [path.name for path in target.parent.iterdir()] == ["report.json"]


@given(dtype=dtypes, shape=shapes, gz=st.booleans())
def test_written_images_read_back_identically_with_nibabel(
    tmp_path_factory: pytest.TempPathFactory, dtype: type, shape: tuple[int, ...], gz: bool
) -> None:
    path = tmp_path_factory.mktemp("write") / ("x.nii.gz" if gz else "x.nii")
    data = (np.arange(np.prod(shape)).reshape(shape) % 37).astype(dtype)
    affine = np.array([[0.5, 0, 0, -10], [0, 0.6, 0, 4], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    write_nifti(path, data, affine, time_step=1.5 if len(shape) == 4 else None)
    image = nib.load(path)
    assert np.array_equal(np.asarray(image.dataobj), data) and image.get_data_dtype() == data.dtype
    assert np.allclose(image.affine, affine) and np.allclose(image.header.get_zooms()[:3], (0.5, 0.6, 2.5))
    assert int(image.header["sform_code"]) == int(image.header["qform_code"]) == 1
    if len(shape) == 4:
        assert image.header.get_zooms()[3] == 1.5
    first = path.read_bytes()
    write_nifti(path, data, affine, time_step=1.5 if len(shape) == 4 else None)
    assert path.read_bytes() == first


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


@given(st.binary(max_size=200_000), st.lists(st.integers(0, 200_000), max_size=5))
def test_gzip_pieces_are_gzip_compress_wherever_the_pieces_end(data: bytes, cuts: list[int]) -> None:
    """Written piece by piece, a .nii.gz has the bytes of gzip.compress at level 1 without a timestamp."""
    ends = sorted({min(cut, len(data)) for cut in cuts})
    pieces = [data[start:end] for start, end in zip([0, *ends], [*ends, len(data)], strict=True)]
    assert b"".join(gzip_pieces(pieces)) == gzip.compress(data, compresslevel=1, mtime=0)


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_written_image_is_its_nifti_bytes_compressed(tmp_path: Path, order: str) -> None:
    data = np.asarray(np.random.default_rng(1).normal(size=(9, 7, 5, 3)), dtype=np.float32, order=order)
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    write_nifti(tmp_path / "a.nii.gz", data, affine, time_step=1.5)
    write_nifti(tmp_path / "a.nii", data, affine)
    compressed = gzip.compress(nifti_bytes(data, affine, 1.5), compresslevel=1, mtime=0)
    assert (tmp_path / "a.nii.gz").read_bytes() == compressed
    assert np.array_equal(np.asarray(nib.load(tmp_path / "a.nii").dataobj), data)
