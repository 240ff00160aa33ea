"""Patient folders written whole or not at all: each is staged in a hidden folder beside its final place
and renamed into place once complete, so that an interrupted run leaves complete folders and hidden
leftovers only, which the next run (or the interrupted one, on its way out) removes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL, OLD = ".partial-", ".replaced-"
"""Markers in the names of a folder being written and of the folder it replaces."""


def is_leftover(entry: Path) -> bool:
    """Return True for a hidden folder left by an interrupted write (being written, or being replaced)."""
    return entry.name.startswith(".") and (PARTIAL in entry.name or OLD in entry.name)


def remove_tree(path: Path) -> None:
    """Remove a folder tree (never following links out of it) or a single file or link."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def remove_leftovers(out: Path) -> None:
    """Remove the leftovers of interrupted writes directly in ``out`` (nothing else)."""
    if out.is_dir():
        for entry in out.iterdir():
            if is_leftover(entry):
                remove_tree(entry)


@contextmanager
def staged_folder(out: Path, name: str) -> Iterator[Path]:
    """Yield a new hidden folder in ``out`` to write ``name``'s files into; when the block ends without
    an exception, it replaces ``out/name`` (a folder, or a link) in one rename. On an exception,
    Ctrl-C included, it is removed and ``out/name`` stays as it was."""
    partial = out / f".{name}{PARTIAL}{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        yield partial
        final = out / name
        if final.exists() or final.is_symlink():
            old = out / f".{name}{OLD}{uuid.uuid4().hex}"
            final.rename(old)
            partial.rename(final)
            remove_tree(old)
        else:
            partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
