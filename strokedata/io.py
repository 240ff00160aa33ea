"""Reading NIfTI headers and volumes, JSON files with error positions, content hashes and atomic writes.

NIfTI files are read with our own small reader on top of nibabel's header classes: the whole file is
read once, ``.nii.gz`` is decompressed with ISA-L (about twice nibabel's rate here, see
docs/performance.md) and the voxels are a zero-copy view of the decompressed bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import nibabel as nib
import numpy as np
from isal import igzip, igzip_lib

_NIFTI1_SIZE = 348
_NIFTI2_SIZE = 540
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_PEEK = _NIFTI2_SIZE + 4
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process's umask (there is no getter) and put it back
_PEEK_CHUNK = 4096
MAX_VOXELS = 2**31 - 1
"""The most voxels an image may declare before read_volume refuses it (the default voxel limit)."""
_DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    zlib.error,
    cast("type[Exception]", igzip_lib.IsalError),
)
"""What reading a damaged gzip stream raises (bad CRC, invalid deflate data); EOFError means truncated."""


class ImageReadError(Exception):
    """A file is not a readable NIfTI image; ``kind`` is 'corrupt', 'truncated' or 'too_large'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class JSONFileError(Exception):
    """A JSON file could not be parsed; the message gives the line and column."""


@dataclass(frozen=True)
class ImageHeader:
    """What a NIfTI header declares, read without touching the voxel data."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    affine: np.ndarray
    pixdim: tuple[float, ...]
    slope: float
    inter: float
    vox_offset: int

    @property
    def n_voxels(self) -> int:
        """Return the number of voxels the header declares."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Return the size in bytes of the voxel data the header declares."""
        return self.n_voxels * self.dtype.itemsize


@dataclass(frozen=True)
class Volume:
    """A NIfTI image read into memory: its header, its stored voxels and the size of the file read."""

    header: ImageHeader
    data: np.ndarray
    file_bytes: int

    def scaled_range(self, values: np.ndarray | None = None) -> tuple[float, float]:
        """Return (min, max) of the voxels after the header's scaling, over ``values`` if given."""
        stored = self.data if values is None else values
        low, high = float(stored.min()), float(stored.max())
        low, high = low * self.header.slope + self.header.inter, high * self.header.slope + self.header.inter
        return (low, high) if low <= high else (high, low)

    def scaled(self, values: np.ndarray | None = None) -> np.ndarray:
        """Return the voxels (or ``values``) after scaling; the stored array itself for identity scaling."""
        stored = self.data if values is None else values
        if self.header.slope == 1.0 and self.header.inter == 0.0:
            return stored
        return stored.astype(np.float32) * np.float32(self.header.slope) + np.float32(self.header.inter)


def read_json(path: Path) -> Any:
    """Return the parsed content of a JSON file; raise JSONFileError with line and column on bad syntax."""
    text = path.read_text(encoding="utf-8")
    return parse_json(text)


def parse_json(text: str) -> Any:
    """Return the parsed JSON ``text``; raise JSONFileError on bad syntax or a key given twice."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise JSONFileError(f"the key '{key}' appears twice in one object; keep one")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as error:
        raise JSONFileError(f"line {error.lineno}, column {error.colno}: {error.msg}") from None


def _header_from_bytes(block: bytes, name: str) -> ImageHeader:
    """Return the header parsed from the first bytes of a NIfTI-1 or NIfTI-2 file."""
    if len(block) < _NIFTI1_SIZE:
        raise ImageReadError("truncated", f"{name} ends after {len(block)} bytes, inside the NIfTI header")
    sizes = {int.from_bytes(block[:4], "little"), int.from_bytes(block[:4], "big")}
    if _NIFTI2_SIZE in sizes:
        header_class: type[nib.Nifti1Header] = nib.Nifti2Header
    elif _NIFTI1_SIZE in sizes:
        header_class = nib.Nifti1Header
    else:
        raise ImageReadError("corrupt", f"{name} does not start with a NIfTI-1 or NIfTI-2 header")
    if len(block) < header_class.sizeof_hdr:
        raise ImageReadError("truncated", f"{name} ends inside the NIfTI-2 header")
    try:
        header = header_class.from_fileobj(io.BytesIO(block), check=False)
        magic = bytes(header["magic"]).rstrip(b"\x00")
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
        affine = header.get_best_affine()
    except ImageReadError:
        raise
    except Exception as error:  # nibabel raises several types for malformed headers
        raise ImageReadError("corrupt", f"{name} has a malformed NIfTI header: {error}") from None
    pixdim = tuple(float(p) for p in header["pixdim"][1 : ndim + 1])
    return ImageHeader(
        shape=tuple(dims),
        dtype=dtype,
        affine=np.asarray(affine, dtype=np.float64),
        pixdim=pixdim,
        slope=1.0 if slope is None else float(slope),
        inter=0.0 if inter is None else float(inter),
        vox_offset=int(header.get_data_offset()),
    )


@contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """Turn what reading and decompressing raise into ImageReadError naming the file."""
    try:
        yield
    except EOFError as error:
        raise ImageReadError("truncated", f"{name} ends before its gzip stream does: {error}") from None
    except _DECOMPRESSION_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise ImageReadError("corrupt", f"{name} cannot be read or decompressed: {reason}") from None


def _header_block(stream: BinaryIO, name: str) -> ImageHeader:
    """Return the header parsed from the start of a file object, inflating only the bytes it needs."""
    start = stream.read(_PEEK_CHUNK)
    if start[:2] != _GZIP_MAGIC:
        return _header_from_bytes(start, name)
    inflater = zlib.decompressobj(wbits=31)  # gzip container
    block = inflater.decompress(start, _HEADER_PEEK)
    while len(block) < _HEADER_PEEK and not inflater.eof:
        pending = inflater.unconsumed_tail or stream.read(_PEEK_CHUNK)
        if not pending:
            break  # the file ends inside the header: reported as truncated
        block += inflater.decompress(pending, _HEADER_PEEK - len(block))
    return _header_from_bytes(block, name)


def read_header(path: Path) -> ImageHeader:
    """Return the header of a NIfTI file, decompressing only its first bytes; raise ImageReadError."""
    with _read_errors(path.name), path.open("rb") as stream:
        return _header_block(stream, path.name)


def read_volume(path: Path, max_voxels: int) -> Volume:
    """Return the whole image, read from disk once; raise ImageReadError when corrupt, truncated or too large.

    The header is checked against ``max_voxels`` before the data is decompressed, so a corrupt header
    declaring billions of voxels never causes an allocation.
    """
    with _read_errors(path.name):
        buffer = bytearray(path.stat().st_size)  # writable, so that voxels read from a .nii need no copy
        with path.open("rb") as stream:
            del buffer[stream.readinto(buffer) :]  # in place; a file that shrank meanwhile reads as truncated
        raw: bytes | bytearray = buffer
        file_bytes = len(raw)
        header = _header_block(io.BytesIO(raw), path.name)
        if header.n_voxels > max_voxels:
            raise ImageReadError(
                "too_large",
                f"{path.name} declares {header.n_voxels:,} voxels, above the limit {max_voxels:,}",
            )
        if raw[:2] == _GZIP_MAGIC:
            try:
                raw = igzip.decompress(raw)
            except MemoryError:
                raise ImageReadError(
                    "too_large", f"{path.name} needs {header.nbytes:,} bytes, more memory than is free"
                ) from None
    needed = header.vox_offset + header.nbytes
    if len(raw) < needed:
        raise ImageReadError(
            "truncated", f"{path.name} holds {len(raw):,} bytes of image data, the header needs {needed:,}"
        )
    data = np.frombuffer(raw, dtype=header.dtype, count=header.n_voxels, offset=header.vox_offset)
    return Volume(header=header, data=data.reshape(header.shape, order="F"), file_bytes=file_bytes)


def content_hash(volume: Volume) -> str:
    """Return the sha256 of an image's voxel content (shape, type and stored values; not the header)."""
    digest = hashlib.sha256()
    digest.update(f"{volume.header.shape}|{volume.data.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(volume.data.reshape(-1, order="F")).data)
    return digest.hexdigest()


def nifti_bytes(data: np.ndarray, affine: np.ndarray, time_step: float | None = None) -> bytes:
    """Return a single-file NIfTI-1 image (uncompressed) with sform and qform set to ``affine`` (mm).

    ``time_step`` (seconds) is recorded as the spacing of a fourth, temporal axis. The header is
    nibabel's; the voxels are appended in Fortran order, without nibabel's slower stream writer.
    """
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header.set_sform(affine, code=1)  # scanner coordinates
    header.set_qform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    if time_step is not None:
        header.set_zooms((*header.get_zooms()[:3], time_step))
    header["vox_offset"] = _NIFTI1_SIZE + 4
    return bytes(header.binaryblock) + b"\x00" * 4 + np.asarray(data).tobytes(order="F")


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, time_step: float | None = None) -> None:
    """Write ``data`` atomically as .nii, or .nii.gz compressed by zlib at level 1 without a timestamp.

    zlib, not ISA-L: ISA-L's deflate reads uninitialised memory (intel/isa-l#295) and compressed the
    same image differently in different processes; zlib's output depends on the input alone.
    """
    payload = nifti_bytes(data, affine, time_step)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    atomic_write_bytes(path, payload)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes the file private; open() would not
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as written) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
