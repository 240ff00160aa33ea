"""Hostile files and conditions for tests/test_hostile_inputs.py: decompression bombs built by streaming,
dropped privileges, and slowed-down workers that a Ctrl-C can catch half-way.

The slow functions are importable by the spawned worker processes (the test root is on their path), so
a command can run with one of them in place of its per-patient function.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOBODY = 65534
_CHUNK = 1 << 22


def write_gzip_bomb(path: Path, head: bytes, extra: int) -> None:
    """Write a gzip file holding ``head`` followed by ``extra`` zero bytes (a multiple of 4 MiB), built
    by streaming: after a full flush the deflate state restarts, so every 4 MiB block of zeros compresses
    to the same bytes, written again and again; nothing of the inflated size is ever in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(_CHUNK)
    crc = zlib.crc32(head)
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header: deflate, no name, no time
        out.write(compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH))
        block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        assert compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH) == block
        count = extra // _CHUNK
        for _ in range(count):
            out.write(block)
            crc = zlib.crc32(zeros, crc)
        out.write(compressor.flush())
        out.write(struct.pack("<II", crc, (len(head) + count * _CHUNK) & 0xFFFFFFFF))


@contextmanager
def shared_folder() -> Iterator[Path]:
    """Yield a new folder that every user may enter and read (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="strokebench-shared-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        import shutil

        shutil.rmtree(folder)


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as user nobody when the tests run as root (root reads and writes everything), as
    the current user otherwise."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def mark(name: str) -> None:
    """Create the file ``name`` in the folder named by $STROKEBENCH_TEST_MARKS."""
    folder = Path(os.environ["STROKEBENCH_TEST_MARKS"])
    (folder / f"{name}-{os.getpid()}-{time.monotonic_ns()}").touch()


def slow_read_patient(task: Any) -> Any:
    """Validate's per-patient voxel phase, a second slower, marking its start and its end."""
    from strokedata.validation.runner import _read_patient

    mark("started")
    time.sleep(1.0)
    mark("finished")
    return _read_patient(task)


def slow_preprocess_patient(job: Any) -> Any:
    """Preprocess one patient, every image written half a second late, marking the start."""
    import strokedata.preprocess.run as run

    original = run.write_nifti

    def slow_write(*arguments: Any, **keywords: Any) -> None:
        mark("writing")
        time.sleep(0.5)
        original(*arguments, **keywords)

    run.write_nifti = slow_write
    try:
        return run.preprocess_patient(job)
    finally:
        run.write_nifti = original
