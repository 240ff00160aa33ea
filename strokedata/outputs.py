"""Checks that an output path may be written: nothing the toolkit writes ever replaces anything but a
regular file, and nothing is written into system folders.

Commands check every output path before they start their work, so that a bad one costs nothing and
changes nothing; ``strokedata.io.atomic_write_bytes`` checks the file again at the moment it replaces it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from strokedata.errors import StrokedataError

SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Kernel and device file systems: never a place for an output, whoever runs the command."""
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _writable(path: Path) -> bool:
    """Return True when this process (its effective user) may create entries in the folder ``path``."""
    effective = os.access in os.supports_effective_ids
    return os.access(path, os.W_OK | os.X_OK, effective_ids=effective)


class OutputPathError(StrokedataError):
    """An output path that must not be written: not a regular file, in a system folder, or unwritable."""


def file_kind(mode: int) -> str | None:
    """Return what a file of ``mode`` (from stat or lstat) is, in words, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _system_folder(path: Path) -> Path | None:
    """Return the system folder ``path`` lies in (links followed), or None."""
    resolved = path.resolve()
    return next((folder for folder in SYSTEM_FOLDERS if resolved.is_relative_to(folder)), None)


def _writable_place(path: Path, shown: str) -> None:
    """Raise OutputPathError unless the nearest existing folder above ``path`` can receive new entries."""
    existing = path.absolute().parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{shown}: {existing} is not a folder; choose a path inside a folder")
    if not _writable(existing):
        raise OutputPathError(
            f"{shown}: the folder {existing} is not writable (read-only or no permission); "
            "choose a folder you can write to"
        )


def _refuse_system(path: Path, shown: str) -> None:
    folder = _system_folder(path)
    if folder is not None:
        raise OutputPathError(f"{shown} lies in {folder}, a system folder; write it somewhere else")


def check_output_file(path: str | Path, option: str = "--out") -> None:
    """Return when ``path`` may receive a new regular file (it is absent, or a regular file that will be
    replaced); raise OutputPathError naming the path as typed otherwise: a folder, a link, a device, a
    FIFO or a socket, a path in /proc, /sys or /dev, or a path in a folder that cannot be written."""
    target = Path(path)
    shown = f"{option} {path}"
    _refuse_system(target, shown)
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise OutputPathError(f"{shown} cannot be checked: {error.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputPathError(
            f"{shown} is {file_kind(mode)}; an output only ever replaces a regular file: choose another path"
        )
    _writable_place(target, shown)


def check_output_folder(path: str | Path, option: str = "--out") -> None:
    """Return when ``path`` is a writable folder or can be created as one; raise OutputPathError naming
    the path as typed otherwise (a file, a device, a path in a system folder, an unwritable place)."""
    target = Path(path)
    shown = f"{option} {path}"
    _refuse_system(target, shown)
    if target.is_dir():  # an existing folder (or a link to one) is written into, never replaced
        if not _writable(target):
            raise OutputPathError(
                f"{shown} is a folder that is not writable; choose a folder you can write to"
            )
        return
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        _writable_place(target, shown)
        return
    except OSError as error:
        raise OutputPathError(f"{shown} cannot be checked: {error.strerror}") from None
    kind = file_kind(mode) or "a file"
    raise OutputPathError(f"{shown} is {kind}, not a folder; give a folder for the output")


def refuse_non_regular(path: Path) -> None:
    """Raise OutputPathError when ``path`` exists and is not a regular file (checked without following
    links); called at the moment a file is replaced."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{path} is {file_kind(mode)}; an output only ever replaces a regular file")
