"""Parsing NIfTI-1 and NIfTI-2 headers, with their extensions, from the first bytes of an image.

The fixed header is parsed by nibabel's header classes; the checks that nibabel leaves to the caller are
made here: where the voxel data starts (``vox_offset``), and the header fields that make readers
disagree about what the file holds (ITK/SimpleITK, and so TorchIO, read some fields differently from
nibabel). A header is never trusted to size an allocation before these checks pass.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

NIFTI1_SIZE = 348
NIFTI2_SIZE = 540
_EXTENDER = 4
"""The four bytes after the fixed header; the first one says whether extensions follow."""
MAX_DATA_OFFSET = 64 * 2**20
"""The furthest into a file the voxel data may start: the header and its extensions take at most 64 MiB."""
_VOX_OFFSET_FIELD = {NIFTI1_SIZE: (108, "f"), NIFTI2_SIZE: (168, "q")}
"""sizeof_hdr -> (byte offset, struct type) of vox_offset."""
_ORTHOGONAL = 1e-4
"""Largest cosine between two axes of the sform for which ITK still takes it as a rotation (no shear)."""


class ImageReadError(Exception):
    """A file is not a readable NIfTI image; ``kind`` says why.

    Kinds: 'corrupt', 'truncated', 'too_large' (more voxels than allowed), 'trailing' (more data than
    the header declares) and 'not_a_file' (a folder, a device, a FIFO or a socket).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class ImageHeader:
    """What a NIfTI header declares, read without touching the voxel data.

    ``dtype`` is the stored type, byte order included; ``ambiguities`` lists the fields that readers
    interpret differently (scaling ignored by one and applied by another, a sheared sform), and
    ``qform_sform_difference`` the largest difference (mm) between qform and sform when both are set.
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    affine: np.ndarray
    pixdim: tuple[float, ...]
    slope: float
    inter: float
    vox_offset: int
    ambiguities: tuple[str, ...] = ()
    qform_sform_difference: float | None = None

    @property
    def n_voxels(self) -> int:
        """Return the number of voxels the header declares."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Return the size in bytes of the voxel data the header declares."""
        return self.n_voxels * self.dtype.itemsize


def _header_class(start: bytes, name: str) -> tuple[type[nib.Nifti1Header], str]:
    """Return the header class and byte order ('<' or '>') announced by a file's first four bytes."""
    for order in "<>":
        size = struct.unpack(f"{order}i", start[:4])[0]
        if size == NIFTI2_SIZE:
            return nib.Nifti2Header, order
        if size == NIFTI1_SIZE:
            return nib.Nifti1Header, order
    raise ImageReadError("corrupt", f"{name} does not start with a NIfTI-1 or NIfTI-2 header")


def _data_offset(fixed: bytes, size: int, order: str, name: str) -> int:
    """Return the declared start of the voxel data; raise ImageReadError when it is not a byte position
    after the header (NaN, infinite, negative, fractional, inside the header or implausibly far)."""
    at, kind = _VOX_OFFSET_FIELD[size]
    value = struct.unpack_from(f"{order}{kind}", fixed, at)[0]
    smallest = size + _EXTENDER
    if not math.isfinite(value) or value != int(value) or not smallest <= value <= MAX_DATA_OFFSET:
        where = (
            "inside the header" if math.isfinite(value) and 0 <= value < smallest else "not a valid position"
        )
        raise ImageReadError(
            "corrupt",
            f"{name} declares its voxel data at vox_offset {value!r}, {where} (a single-file NIfTI's data "
            f"starts at byte {smallest} or later, within {MAX_DATA_OFFSET // 2**20} MiB)",
        )
    return int(value)


def _reader_ambiguities(header: nib.Nifti1Header) -> tuple[tuple[str, ...], float | None]:
    """Return the descriptions of fields that nibabel and ITK read differently, and the largest
    qform-sform difference in mm when both are set (None otherwise)."""
    found = []
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if (slope == 0 or not math.isfinite(slope)) and inter not in (0.0,) and not math.isnan(inter):
        found.append(
            f"scl_slope is {slope:g} with scl_inter {inter:g}: nibabel (and strokebench) read the stored "
            f"values unscaled, ITK/SimpleITK (and TorchIO) add {inter:g} to every voxel"
        )
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    difference = None
    if sform_code > 0:
        sform = header.get_sform()
        with np.errstate(invalid="ignore", divide="ignore"):  # a singular sform is G005's concern
            columns = sform[:3, :3] / np.linalg.norm(sform[:3, :3], axis=0)
            cosines = np.abs(columns.T @ columns - np.eye(3))
        if np.all(np.isfinite(cosines)) and cosines.max() > _ORTHOGONAL:
            fallback = "use the qform instead" if qform_code > 0 else "refuse the file"
            found.append(
                f"the sform shears the voxel axes (cosine {cosines.max():.3g} between two of them): nibabel "
                f"applies it, ITK/SimpleITK (and TorchIO) {fallback}"
            )
        if qform_code > 0:
            difference = float(np.max(np.abs(header.get_qform() - sform)))
    return tuple(found), difference


def parse_header(read: Callable[[int], bytes], name: str) -> ImageHeader:
    """Return the header read through ``read(n)`` (the next n bytes of the decompressed file, fewer at its
    end), its extensions included; no byte beyond ``vox_offset`` is read. Raises ImageReadError."""
    start = read(4)
    if len(start) < 4:
        raise ImageReadError("truncated", f"{name} ends after {len(start)} bytes, inside the NIfTI header")
    header_class, order = _header_class(start, name)
    size = header_class.sizeof_hdr
    fixed = start + read(size + _EXTENDER - 4)
    if len(fixed) < size:
        raise ImageReadError("truncated", f"{name} ends after {len(fixed)} bytes, inside the NIfTI header")
    offset = _data_offset(fixed, size, order, name)
    block = fixed
    if len(fixed) == size + _EXTENDER and fixed[size] != 0:  # extensions lie between header and data
        block += read(offset - len(fixed))
        if len(block) < offset:
            raise ImageReadError("truncated", f"{name} ends inside its header extensions")
    try:
        header = header_class.from_fileobj(io.BytesIO(block), check=False)
        magic = bytes(header["magic"])[:3]
        if magic not in (b"n+1", b"n+2"):
            raise ImageReadError(
                "corrupt", f"{name} has NIfTI magic {magic!r}, not a single-file image (n+1 / n+2)"
            )
        ndim = int(header["dim"][0])
        dims = [int(d) for d in header["dim"][1 : ndim + 1]]
        if not 1 <= ndim <= 7 or any(d < 1 for d in dims):
            raise ImageReadError("corrupt", f"{name} declares invalid dimensions {header['dim'].tolist()}")
        dtype = header.get_data_dtype()
        if dtype.kind not in "iuf" or dtype.itemsize > 8:
            raise ImageReadError("corrupt", f"{name} stores voxels as {dtype}, not a real number type")
        slope, inter = header.get_slope_inter()
        affine = np.asarray(header.get_best_affine(), dtype=np.float64)
        ambiguities, difference = _reader_ambiguities(header)
    except ImageReadError:
        raise
    except Exception as error:  # nibabel raises several types for malformed headers and extensions
        raise ImageReadError("corrupt", f"{name} has a malformed NIfTI header: {error}") from None
    return ImageHeader(
        shape=tuple(dims),
        dtype=dtype,
        affine=affine,
        pixdim=tuple(float(p) for p in header["pixdim"][1 : ndim + 1]),
        slope=1.0 if slope is None else float(slope),
        inter=0.0 if inter is None else float(inter),
        vox_offset=offset,
        ambiguities=ambiguities,
        qform_sform_difference=difference,
    )
