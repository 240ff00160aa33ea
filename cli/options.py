"""Parsing of option values shared by the commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import render

if TYPE_CHECKING:
    from strokedata.executor import Executor


def parse_assignments(texts: list[str], allowed: list[str], option: str) -> dict[str, float]:
    """Return {KEY: number} from 'KEY=NUMBER' items, given comma-separated and/or repeated.

    Keys are matched case-insensitively against ``allowed``; raises typer.BadParameter naming the option.
    """
    by_upper = {key.upper(): key for key in allowed}
    values: dict[str, float] = {}
    for item in (part.strip() for text in texts for part in text.split(",") if part.strip()):
        key, separator, number = item.partition("=")
        if not separator or key.strip().upper() not in by_upper:
            raise typer.BadParameter(
                f"{option} '{item}': give KEY=NUMBER with KEY one of {', '.join(allowed)}"
            )
        try:
            values[by_upper[key.strip().upper()]] = float(number)
        except ValueError:
            raise typer.BadParameter(f"{option} '{item}': '{number}' is not a number") from None
    return values


def parse_names(texts: list[str], allowed: list[str], option: str) -> list[str]:
    """Return the names from comma-separated and/or repeated items, checked against ``allowed``."""
    by_upper = {name.upper(): name for name in allowed}
    names = []
    for item in (part.strip() for text in texts for part in text.split(",") if part.strip()):
        if item.upper() not in by_upper:
            raise typer.BadParameter(f"{option} '{item}': choose from {', '.join(allowed)}")
        names.append(by_upper[item.upper()])
    return names


def parse_json_assignments(texts: list[str], option: str) -> dict[str, Any]:
    """Return {NAME: value} from 'NAME=VALUE' items; VALUE is read as JSON, else kept as a string.

    Raises typer.BadParameter naming the option when an item has no '=' or no name, or a name repeats.
    """
    values: dict[str, Any] = {}
    for item in texts:
        name, separator, text = item.partition("=")
        name = name.strip()
        if not separator or not name:
            raise typer.BadParameter(f"{option} '{item}': give NAME=VALUE")
        if name in values:
            raise typer.BadParameter(f"{option}: '{name}' is given twice")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="STROKEBENCH_SCHEDULER",
        help="Run the per-patient work on this Dask scheduler (tcp://HOST:8786), or 'local' for a local Dask "
        "cluster of --jobs workers; read from STROKEBENCH_SCHEDULER when absent. Needs "
        'pip install "strokebench[dask]"; workers must see the dataset at the same path.',
    ),
]


@contextmanager
def cluster_executor(scheduler: str | None, jobs: int | None, paths: list[Path]) -> Iterator[Executor | None]:
    """Yield None without ``scheduler`` (the library's local pool of ``jobs``), else a Dask executor on
    it, made the default of every library call in the block (``use_executor``), whose workers were
    checked to see ``paths`` (for one that does not exist yet, such as an output
    folder, its nearest existing parent); its client (and a local cluster) closes on exit. A task whose
    worker died is run again up to $STROKEBENCH_RETRIES times (default 2)."""
    if not scheduler:
        yield None
        return
    from strokedata.distributed import DEFAULT_RETRIES, RETRIES_ENV, ClusterError, dask_executor
    from strokedata.executor import use_executor

    existing = [
        next(folder for folder in (path.absolute(), *path.absolute().parents) if folder.exists())
        for path in paths
    ]
    retries = os.environ.get(RETRIES_ENV, str(DEFAULT_RETRIES))
    if not (retries.isascii() and retries.isdigit()):
        raise ClusterError(f"{RETRIES_ENV}={retries!r}: give a whole number of retries (0 or more)")
    with (
        dask_executor(scheduler, jobs, retries=int(retries), paths=existing) as executor,
        use_executor(executor),
    ):
        link = executor.client.dashboard_link if scheduler == "local" else None
        render.note(
            f"running on the Dask cluster at {executor.client.scheduler.address}"
            + (f"; dashboard {link}" if link else "")
        )
        yield executor
