"""Reading NIfTI headers and volumes, JSON files with error positions, content hashes and atomic writes.

NIfTI files are read with our own small reader on top of nibabel's header classes: the whole file is
read once, ``.nii.gz`` is decompressed with ISA-L (about twice nibabel's rate here, see
docs/performance.md) and the voxels are a zero-copy view of the decompressed bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from isal import igzip_lib
from isal.igzip_lib import DECOMP_GZIP, IgzipDecompressor

from strokedata.nifti_header import NIFTI1_SIZE, ImageHeader, ImageReadError, parse_header
from strokedata.outputs import OutputPathError, file_kind, refuse_non_regular

__all__ = [
    "MAX_VOXELS",
    "TRAILING_MARGIN",
    "ImageHeader",
    "ImageReadError",
    "JSONFileError",
    "Volume",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_extent",
    "content_hash",
    "nifti_bytes",
    "parse_json",
    "read_declared",
    "read_header",
    "read_json",
    "read_volume",
    "write_nifti",
]

_GZIP_MAGIC = b"\x1f\x8b"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process's umask (there is no getter) and put it back
_PEEK = 4096
"""Compressed bytes read first: enough for a header, so that reading one costs one small read."""
_CHUNK = 1 << 20
"""Compressed bytes read at a time after the first peek: small pieces keep the inflated data in cache."""
TRAILING_MARGIN = 1 << 20
"""Bytes a file may hold after the voxel data its header declares (padding) before it is refused."""
MAX_VOXELS = 2**31 - 1
"""The most voxels an image may declare before read_volume refuses it (the default voxel limit)."""
_DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    zlib.error,
    cast("type[Exception]", igzip_lib.IsalError),
)
"""What reading a damaged file or gzip stream raises (bad CRC, invalid deflate data)."""


class JSONFileError(Exception):
    """A JSON file could not be parsed; the message gives the line and column."""


@dataclass(frozen=True)
class Volume:
    """A NIfTI image read into memory: its header, its voxels (native byte order) and the file's size."""

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


_MAX_JSON_DEPTH = 200
"""JSON files nested deeper are refused before parsing (Python's parser would raise RecursionError)."""


def read_json(path: Path) -> Any:
    """Return the parsed content of a JSON file; raise JSONFileError with line and column on bad syntax."""
    text = path.read_text(encoding="utf-8")
    return parse_json(text)


def _nesting_depth(text: str) -> int:
    """Return the deepest nesting of brackets and braces outside strings in JSON ``text``."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        symbol = token.group()
        if symbol in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif symbol in "]}":
            depth -= 1
    return deepest


def parse_json(text: str) -> Any:
    """Return the parsed JSON ``text``; raise JSONFileError on bad syntax, a key given twice, nesting
    deeper than 200 levels or a non-finite number (NaN, Infinity, or one too large such as 1e400)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise JSONFileError(f"the key '{key}' appears twice in one object; keep one")
            result[key] = value
        return result

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise JSONFileError(f"the number {number[:40]} is too large to be finite; use a smaller one")
        return value

    def non_finite(name: str) -> float:
        raise JSONFileError(f"{name} is not a JSON number; use null for unknown")

    if _nesting_depth(text) > _MAX_JSON_DEPTH:
        raise JSONFileError(f"objects and lists are nested more than {_MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(
            text, object_pairs_hook=no_duplicates, parse_float=finite, parse_constant=non_finite
        )
    except json.JSONDecodeError as error:
        raise JSONFileError(f"line {error.lineno}, column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise JSONFileError("objects and lists are nested too deeply to read") from None


@contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """Turn what reading and decompressing raise into ImageReadError naming the file."""
    try:
        yield
    except _DECOMPRESSION_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise ImageReadError("corrupt", f"{name} cannot be read or decompressed: {reason}") from None


@contextmanager
def _open_regular(path: Path) -> Iterator[io.BufferedReader]:
    """Yield a regular file opened for reading; raise ImageReadError ('not_a_file') for anything else.

    Opened without blocking, so that a named pipe never hangs the reader, then checked on the open file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        raise ImageReadError("unreadable", f"{path.name} cannot be read: permission denied") from None
    kind = file_kind(os.fstat(descriptor).st_mode)
    if kind is not None:
        os.close(descriptor)
        raise ImageReadError("not_a_file", f"{path.name} is {kind}, not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        yield handle


class _Decoded:
    """The decompressed content of an open file (gzip, of one or more members, or plain), read in order,
    never more than asked for; bytes after the last gzip member that start no member are counted in
    ``garbage``."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self._pending = handle.read(_PEEK)
        compressed = self._pending[:2] == _GZIP_MAGIC
        if compressed and (self._pending[2:3] != b"\x08" or self._pending[3:4] >= b"\x20"):
            raise zlib.error("invalid gzip header (unknown method or reserved flags set)")
        self._inflater = IgzipDecompressor(flag=DECOMP_GZIP) if compressed else None
        self._ended = False
        self.position = 0
        self.garbage = 0

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with the next decompressed bytes; return how many (fewer at the end)."""
        filled = 0
        while filled < len(view):
            if self._inflater is None:
                piece = self._pending[: len(view) - filled]
                self._pending = self._pending[len(piece) :]
                view[filled : filled + len(piece)] = piece
                count = len(piece) or (self._handle.readinto(view[filled:]) or 0)
            else:
                piece = self._inflate(len(view) - filled)
                view[filled : filled + len(piece)] = piece
                count = len(piece)
            if count == 0:
                break
            filled += count
        self.position += filled
        return filled

    def read(self, size: int) -> bytes:
        """Return the next ``size`` decompressed bytes, fewer at the end."""
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(memoryview(buffer))])

    def skip(self, size: int) -> int:
        """Read and drop up to ``size`` bytes; return how many there were."""
        scratch = memoryview(bytearray(min(size, _CHUNK)))
        skipped = 0
        while skipped < size:
            count = self.readinto(scratch[: min(len(scratch), size - skipped)])
            if count == 0:
                break
            skipped += count
        return skipped

    def _compressed(self) -> bytes:
        """Return the next compressed bytes: those held back, else a chunk of the file."""
        data, self._pending = self._pending or self._handle.read(_CHUNK), b""
        return data

    def _inflate(self, limit: int) -> bytes:
        """Return at most ``limit`` (> 0) decompressed bytes; empty at the end of the data."""
        while not self._ended:
            inflater = cast(IgzipDecompressor, self._inflater)
            if inflater.eof:  # a member ended: another may follow
                rest = inflater.unused_data + self._compressed()
                if len(rest) < 2 and rest:
                    rest += self._compressed()
                if rest[:2] != _GZIP_MAGIC:
                    self._ended = True
                    here = self._handle.tell()
                    self.garbage = len(rest) + os.fstat(self._handle.fileno()).st_size - here
                    break
                self._inflater, self._pending = IgzipDecompressor(flag=DECOMP_GZIP), rest
                continue
            data = self._compressed() if inflater.needs_input else b""
            if inflater.needs_input and not data:
                self._ended = True  # the file ends inside the stream: the caller sees too few bytes
                break
            piece = inflater.decompress(data, limit)
            if piece:
                return piece
        return b""


def _native(data: np.ndarray) -> np.ndarray:
    """Return ``data`` in the machine's byte order, swapped in place when stored the other way."""
    if data.dtype.isnative:
        return data
    return data.byteswap(inplace=True).view(data.dtype.newbyteorder("="))


def read_header(path: Path) -> ImageHeader:
    """Return the header of a NIfTI file, decompressing only its first bytes; raise ImageReadError."""
    with _read_errors(path.name), _open_regular(path) as handle:
        return parse_header(_Decoded(handle).read, path.name)


def _read_declared(path: Path, max_voxels: int, keep: bool) -> tuple[ImageHeader, np.ndarray | None, int]:
    """Return the header, the file's declared content decompressed when ``keep`` (header, extensions and
    voxels: ``vox_offset`` + voxel bytes, as uint8; else None) and the file's size on disk.

    Reads no more than the declared bytes plus ``TRAILING_MARGIN``; raises ImageReadError when the file
    is not a regular file, corrupt, too large, truncated or longer than declared.
    """
    name = path.name
    with _read_errors(name), _open_regular(path) as handle:
        stream = _Decoded(handle)
        start = bytearray()

        def read(size: int) -> bytes:
            piece = stream.read(size)
            start.extend(piece)
            return piece

        header = parse_header(read, name)
        if header.n_voxels > max_voxels:
            raise ImageReadError(
                "too_large", f"{name} declares {header.n_voxels:,} voxels, above the limit {max_voxels:,}"
            )
        needed = header.vox_offset + header.nbytes
        content = None
        if keep:
            try:
                content = np.empty(needed, dtype=np.uint8)
            except MemoryError:
                raise ImageReadError(
                    "too_large", f"{name} needs {needed:,} bytes, more memory than is free"
                ) from None
            content[: len(start)] = np.frombuffer(start, dtype=np.uint8)
            got = len(start) + stream.readinto(content[len(start) :].data)
        else:
            got = len(start) + stream.skip(needed - len(start))
        if got < needed:
            raise ImageReadError(
                "truncated", f"{name} holds {got:,} bytes of image data, the header needs {needed:,}"
            )
        extra = stream.skip(TRAILING_MARGIN + 1) + stream.garbage
        if extra > TRAILING_MARGIN:
            raise ImageReadError(
                "trailing",
                f"{name} holds more data than its header declares ({needed:,} bytes); it was read no "
                f"further than {TRAILING_MARGIN // 2**20} MiB past that",
            )
        return header, content, os.fstat(handle.fileno()).st_size


def read_declared(path: Path, max_voxels: int = MAX_VOXELS) -> tuple[ImageHeader, np.ndarray]:
    """Return the header and the file's declared content, decompressed: header, extensions and voxel
    bytes (``vox_offset`` + voxels), as a uint8 array; raise ImageReadError as ``read_volume`` does."""
    header, content, _ = _read_declared(path, max_voxels, keep=True)
    return header, cast(np.ndarray, content)


def check_extent(path: Path, max_voxels: int = MAX_VOXELS) -> ImageHeader:
    """Return the header of a file whose data is exactly what the header declares (within the margin),
    streamed through without being kept; raise ImageReadError ('truncated', 'trailing', ...) otherwise."""
    return _read_declared(path, max_voxels, keep=False)[0]


def read_volume(path: Path, max_voxels: int) -> Volume:
    """Return the whole image; raise ImageReadError when it is not a regular file, corrupt, truncated,
    too large, or holds more data than its header declares.

    The header is checked against ``max_voxels`` before the data is decompressed, and no more than the
    declared bytes (``vox_offset`` + voxels) plus ``TRAILING_MARGIN`` are ever inflated: memory stays
    at about the declared image size whatever the compressed file holds. The voxels come back in the
    machine's byte order, in a writable array.
    """
    header, content, file_bytes = _read_declared(path, max_voxels, keep=True)
    data = _native(cast(np.ndarray, content)[header.vox_offset :].view(header.dtype))
    return Volume(header=header, data=data.reshape(header.shape, order="F"), file_bytes=file_bytes)


_HASH_CHUNK = 1 << 20
"""Voxels converted and hashed at a time: content hashing needs no copy of a whole image."""


def _chunks(volume: Volume) -> Iterator[np.ndarray]:
    """Yield an image's voxel values after scaling, in file (Fortran) order, a bounded piece at a time."""
    flat = volume.data.reshape(-1, order="F")
    for start in range(0, flat.size, _HASH_CHUNK):
        yield volume.scaled(flat[start : start + _HASH_CHUNK])


def _canonical_type(volume: Volume, value_range: tuple[float, float] | None) -> np.dtype[Any]:
    """Return the smallest little-endian type that holds every scaled voxel value exactly: int16, int32
    or int64 for integer values, else float32 or float64. It depends on the values alone.

    Integers stored with integer scaling need only their range (``value_range``, when the caller knows
    it already); other images are checked piece by piece, each check dropped once a piece fails it.
    """
    header = volume.header
    if (
        volume.data.dtype.kind in "iu"
        and float(header.slope).is_integer()
        and float(header.inter).is_integer()
    ):
        low, high = value_range if value_range is not None else volume.scaled_range()
        integral, single = True, True
    else:
        low, high, integral, single = math.inf, -math.inf, True, True
        for values in _chunks(volume):
            if integral:
                integral = bool(np.all(np.isfinite(values)) and np.array_equal(values, np.rint(values)))
                if integral and values.size:
                    low, high = min(low, float(values.min())), max(high, float(values.max()))
            if single and values.dtype.itemsize > 4:
                single = np.array_equal(values, values.astype(np.float32), equal_nan=True)
    if integral:
        for kind in ("<i2", "<i4", "<i8"):
            limits = np.iinfo(kind)
            if limits.min <= low and high <= limits.max:
                return np.dtype(kind)
    return np.dtype("<f4" if single else "<f8")


def content_hash(volume: Volume, value_range: tuple[float, float] | None = None) -> str:
    """Return the sha256 of an image's voxel content: its shape (trailing single axes dropped) and its
    voxel values after scaling, in a canonical type, so that the same values stored with another type,
    byte order, scaling, header or compression give the same hash. ``value_range``: the scaled
    (min, max) when the caller has it already (it saves a pass over integer images)."""
    shape = list(volume.header.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    kind = _canonical_type(volume, value_range)
    digest = hashlib.sha256(f"{tuple(shape)}|".encode())
    for values in _chunks(volume):
        digest.update(np.ascontiguousarray(values, dtype=kind).data)
    return digest.hexdigest()


Piece = bytes | memoryview
"""Bytes to write: a bytes object, or a view of an array's memory."""
WRITE_PIECE = 16 << 20
"""Bytes of voxels handed to zlib and to the file at a time: a volume is never copied whole to write it."""


def _nifti_pieces(data: np.ndarray, affine: np.ndarray, time_step: float | None) -> Iterator[Piece]:
    """Yield a single-file NIfTI-1 image (uncompressed) in pieces: the header with sform and qform set to
    ``affine`` (mm; ``time_step`` seconds as the spacing of a fourth axis), then the voxels in Fortran
    order, ``WRITE_PIECE`` bytes at a time (views of the array when it is in Fortran order)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header.set_sform(affine, code=1)  # scanner coordinates
    header.set_qform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    if time_step is not None:
        header.set_zooms((*header.get_zooms()[:3], time_step))
    header["vox_offset"] = NIFTI1_SIZE + 4
    yield bytes(header.binaryblock) + b"\x00" * 4
    flat = np.asfortranarray(data).T.reshape(-1).view(np.uint8)  # Fortran order, one copy at most
    for start in range(0, flat.size, WRITE_PIECE):
        yield flat[start : start + WRITE_PIECE].data


def nifti_bytes(data: np.ndarray, affine: np.ndarray, time_step: float | None = None) -> bytes:
    """Return a single-file NIfTI-1 image (uncompressed) with sform and qform set to ``affine`` (mm).

    ``time_step`` (seconds) is recorded as the spacing of a fourth, temporal axis. The header is
    nibabel's; the voxels are appended in Fortran order, without nibabel's slower stream writer.
    """
    return b"".join(_nifti_pieces(np.asarray(data), affine, time_step))


def gzip_pieces(pieces: Iterable[Piece]) -> Iterator[Piece]:
    """Yield the bytes of ``gzip.compress(b"".join(pieces), compresslevel=1, mtime=0)``, compressed
    piece by piece: zlib's deflate decides nothing until its look-ahead is full, so the stream does not
    depend on where the pieces end."""
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"  # deflate, no name, mtime 0, fastest, Unix
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    crc, size = 0, 0
    for piece in pieces:
        crc, size = zlib.crc32(piece, crc), size + len(piece)
        yield compressor.compress(piece)
    yield compressor.flush() + struct.pack("<LL", crc, size & 0xFFFFFFFF)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, time_step: float | None = None) -> None:
    """Write ``data`` atomically as .nii, or .nii.gz compressed by zlib at level 1 without a timestamp
    (the bytes of ``gzip.compress``), streamed: memory beyond the array stays a few pieces.

    zlib, not ISA-L: ISA-L's deflate reads uninitialised memory (intel/isa-l#295) and compressed the
    same image differently in different processes; zlib's output depends on the input alone.
    """
    pieces = _nifti_pieces(np.asarray(data), affine, time_step)
    atomic_write_bytes(path, gzip_pieces(pieces) if path.name.endswith(".gz") else pieces)


def atomic_write_bytes(path: Path, payload: Piece | Iterable[Piece]) -> None:
    """Write ``payload`` (bytes, or pieces of bytes written as they come) to ``path`` through a temporary
    file in the same folder and a rename.

    Raises OutputPathError, naming ``path``, when it exists and is not a regular file or cannot be
    written; nothing is left behind then.
    """
    refuse_non_regular(path)
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes the file private; open() would not
        with os.fdopen(handle, "wb") as stream:
            for piece in [payload] if isinstance(payload, bytes | bytearray | memoryview) else payload:
                stream.write(piece)
            stream.flush()
            os.fsync(stream.fileno())
        refuse_non_regular(path)  # again: the path may have changed while the payload was written
        os.replace(temporary, path)
    except OSError as error:
        raise OutputPathError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if temporary is not None and os.path.lexists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as written) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
