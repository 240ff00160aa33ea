"""What the importers need from NIfTI files beyond strokedata.io: the (x, y, z, 1, t) squeeze and a cheap
check that the voxel data is all there."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from strokedata.io import TRAILING_MARGIN, ImageHeader, check_extent, read_declared

_GZIP_MAGIC = b"\x1f\x8b"
_LAYOUTS = {348: ("h", "f", 40, 76), 540: ("q", "d", 16, 104)}
"""sizeof_hdr -> (dim type, pixdim type, offset of dim, offset of pixdim) of NIfTI-1 and NIfTI-2."""


def is_compressed(path: Path) -> bool:
    """Return True when a file starts with the gzip magic bytes."""
    with path.open("rb") as stream:
        return stream.read(2) == _GZIP_MAGIC


def needs_squeeze(header: ImageHeader) -> bool:
    """Return True for a 5D series with a singleton fourth axis, (x, y, z, 1, t) with t >= 2.

    Such files (ISLES 2018's CT_4DPWI, among others) hold the same voxel bytes, in the same order, as the
    4D (x, y, z, t) image the canonical layout asks for.
    """
    return len(header.shape) == 5 and header.shape[3] == 1 and header.shape[4] >= 2


def squeezed_bytes(path: Path) -> bytes:
    """Return a 5D (x, y, z, 1, t) NIfTI file rewritten as 4D (x, y, z, t): only the header changes.

    ``dim`` and ``pixdim`` lose their fourth entry (the singleton axis), so the frame interval of the fifth
    axis becomes the fourth's; every other header byte, the extensions and the voxel bytes are copied
    unchanged. The file is read as far as its header declares and no further (strokedata.io), so a gzip
    stream holding more cannot inflate the copy. The result is gzip-compressed (level 1, no timestamp:
    the same input gives the same bytes) when ``path`` is; raises ValueError when the file is not such a
    NIfTI-1 or NIfTI-2 series, ImageReadError when it cannot be read.
    """
    _, content = read_declared(path)
    raw = content.data
    order = next(order for order in "<>" if struct.unpack_from(f"{order}i", raw)[0] in _LAYOUTS)
    size = struct.unpack_from(f"{order}i", raw)[0]
    integer, real, dim_at, pixdim_at = _LAYOUTS[size]
    dim = list(struct.unpack_from(f"{order}8{integer}", raw, dim_at))
    pixdim = list(struct.unpack_from(f"{order}8{real}", raw, pixdim_at))
    if dim[0] != 5 or dim[4] != 1:
        raise ValueError(f"{path.name} has dimensions {dim}, not (x, y, z, 1, t)")
    fixed = bytearray(raw[:size])
    struct.pack_into(f"{order}8{integer}", fixed, dim_at, 4, *dim[1:4], dim[5], 1, 1, 1)
    struct.pack_into(f"{order}8{real}", fixed, pixdim_at, *pixdim[:4], pixdim[5], 1.0, 1.0, 1.0)
    payload = bytes(fixed) + raw[size:]
    return gzip.compress(payload, compresslevel=1, mtime=0) if is_compressed(path) else payload


def check_data(path: Path, header: ImageHeader) -> None:
    """Return when a file holds the voxel data its header declares, no less and no more (within
    strokedata.io's margin); raise ImageReadError ('truncated', 'trailing', 'corrupt') otherwise.

    Uncompressed files are checked by size. For gzip files the size the trailer records (modulo 2**32) is
    compared first; only when it disagrees is the stream inflated, and then no further than its header
    declares plus the margin, so a sound file costs one small read and a hostile one no memory.
    """
    needed = header.vox_offset + header.nbytes
    size = path.stat().st_size
    if is_compressed(path):
        with path.open("rb") as stream:
            stream.seek(max(size - 4, 0))
            if int.from_bytes(stream.read(4), "little") == needed % 2**32:
                return
    elif needed <= size <= needed + TRAILING_MARGIN:
        return
    check_extent(path)


def nifti_stem(path: Path) -> str | None:
    """Return a NIfTI file's name without .nii or .nii.gz (compared case-insensitively), None otherwise."""
    lower = path.name.lower()
    for suffix in (".nii.gz", ".nii"):
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def nifti_files(folder: Path) -> list[Path]:
    """Return the .nii and .nii.gz files directly in ``folder`` (hidden ones left out), sorted by name."""
    return sorted(
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".") and nifti_stem(entry) is not None and entry.is_file()
    )


def subfolders(folder: Path) -> list[Path]:
    """Return the folders directly in ``folder`` (hidden ones left out), sorted by name."""
    return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
