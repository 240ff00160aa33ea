"""Turning what the library raises into messages and exit codes: one place for every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from cli import render

EXIT_VALID, EXIT_INVALID = 0, 1
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


@contextmanager
def option_errors() -> Iterator[None]:
    """Exit with status 2 and a one-line message when options fail to parse or validate."""
    from pydantic import ValidationError

    try:
        yield
    except (ValidationError, typer.BadParameter) as problem:
        message = problem.errors()[0]["msg"] if isinstance(problem, ValidationError) else str(problem)
        render.error(f"invalid option: {message}")
        raise typer.Exit(EXIT_USAGE) from None


@contextmanager
def library_errors(interrupted: str = "interrupted; nothing was written") -> Iterator[None]:
    """Exit with status 2 on a user-fixable library error or an unusable file, 130 on Ctrl-C, each with a
    message."""
    from strokedata import StrokedataError

    try:
        yield
    except StrokedataError as problem:
        render.error(str(problem))
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as problem:  # an output path that cannot be written, an input that vanished
        render.error(f"cannot use {problem.filename or 'a file'}: {problem.strerror or problem}")
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        render.error(interrupted)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def check_outputs(
    files: dict[str, Path | None] | None = None, folders: dict[str, Path | None] | None = None
) -> None:
    """Exit with status 2 and a message naming the path when an output (``{option: path}``, None for
    absent) may not be written: called before any work starts."""
    from strokedata.outputs import OutputPathError, check_output_file, check_output_folder

    try:
        for option, path in (files or {}).items():
            if path is not None:
                check_output_file(path, option)
        for option, path in (folders or {}).items():
            if path is not None:
                check_output_folder(path, option)
    except OutputPathError as problem:
        render.error(str(problem))
        raise typer.Exit(EXIT_USAGE) from None
