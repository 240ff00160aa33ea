"""What the importers need from NIfTI files beyond strokedata.io: the (x, y, z, 1, t) squeeze and a cheap
check that the voxel data is all there."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from strokedata.io import ImageHeader

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error)
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
    unchanged. The result is gzip-compressed (level 1, no timestamp: the same input gives the same bytes)
    when ``path`` is; raises ValueError when the file is not such a NIfTI-1 or NIfTI-2 series.
    """
    raw = path.read_bytes()
    compressed = raw[:2] == _GZIP_MAGIC
    if compressed:
        raw = gzip.decompress(raw)
    for order in "<>":
        size = struct.unpack_from(f"{order}i", raw)[0] if len(raw) >= 4 else 0
        if size in _LAYOUTS:
            break
    else:
        raise ValueError(f"{path.name} does not start with a NIfTI-1 or NIfTI-2 header")
    integer, real, dim_at, pixdim_at = _LAYOUTS[size]
    dim = list(struct.unpack_from(f"{order}8{integer}", raw, dim_at))
    pixdim = list(struct.unpack_from(f"{order}8{real}", raw, pixdim_at))
    if dim[0] != 5 or dim[4] != 1:
        raise ValueError(f"{path.name} has dimensions {dim}, not (x, y, z, 1, t)")
    header = bytearray(raw[:size])
    struct.pack_into(f"{order}8{integer}", header, dim_at, 4, *dim[1:4], dim[5], 1, 1, 1)
    struct.pack_into(f"{order}8{real}", header, pixdim_at, *pixdim[:4], pixdim[5], 1.0, 1.0, 1.0)
    payload = bytes(header) + raw[size:]
    return gzip.compress(payload, compresslevel=1, mtime=0) if compressed else payload


def missing_data(path: Path, header: ImageHeader) -> str | None:
    """Return why a file holds less voxel data than its header declares, or None when it holds enough.

    Uncompressed files are checked by size. For gzip files the size the trailer records is compared first;
    only when it disagrees is the stream inflated to count its bytes, so a sound file costs one small read.
    """
    needed = header.vox_offset + header.nbytes
    size = path.stat().st_size
    if not is_compressed(path):
        if size < needed:
            return f"{path.name} holds {size:,} bytes; its header needs {needed:,}"
        return None
    with path.open("rb") as stream:
        stream.seek(max(size - 4, 0))
        recorded = int.from_bytes(stream.read(4), "little")
    if recorded == needed % 2**32:
        return None
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total >= needed:
                    return None
    except _READ_ERRORS as error:
        return f"{path.name} cannot be decompressed: {error or type(error).__name__}"
    return f"{path.name} holds {total:,} bytes of image data once decompressed; its header needs {needed:,}"


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
