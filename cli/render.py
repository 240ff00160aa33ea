"""Rendering with rich, shared by every command: the consoles, progress, messages and tables that fit
the terminal; text from the user's files is printed with control characters escaped."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from strokedata.safetext import printable

if TYPE_CHECKING:
    from strokedata.executor import Progress as ProgressCallback

console = Console()

err_console = Console(stderr=True)

_PHASE_TITLES = {
    "headers": "Checking manifests and headers",
    "voxels": "Reading voxels",
    "phantoms": "Generating phantoms",
    "preprocess": "Preprocessing",
    "table": "Reading patients",
    "masks": "Reading masks",
    "cache": "Building the training cache",
    "epochs": "Training",
    "members": "Predicting with each run",
}


def cell(text: str) -> Text:
    """Return user-supplied text as a rich Text (no markup) with control characters escaped."""
    return Text(printable(text))


def interactive() -> bool:
    """Return True when output goes to a terminal and not to a pipe or a CI log."""
    return console.is_terminal and not os.environ.get("CI")


PLAIN_PROGRESS_SECONDS = 10.0
"""Without a terminal (CI logs, nohup), a progress line is printed at most this often per phase."""


class _PlainProgress:
    """Progress as plain lines on standard error, at most one per phase every PLAIN_PROGRESS_SECONDS,
    and a last one when a phase that printed some ends: done / total, rate and time left."""

    def __init__(self, skipped: Collection[str]) -> None:
        self.skipped = skipped
        self.started: dict[str, float] = {}
        self.printed: dict[str, float] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase in self.skipped:
            return
        now = time.monotonic()
        start = self.started.setdefault(phase, now)
        finished = done >= total
        if now - self.printed.get(phase, start) < PLAIN_PROGRESS_SECONDS and not (
            finished and phase in self.printed
        ):
            return
        self.printed[phase] = now
        elapsed = max(now - start, 1e-9)
        rate = done / elapsed
        left = (
            "done" if finished else f"about {_duration((total - done) / rate)} left" if rate else "starting"
        )
        title = _PHASE_TITLES.get(phase, phase)
        err_console.print(
            f"{title}: {done}/{total} ({rate:.3g}/s, {_duration(elapsed)} so far, {left})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _duration(seconds: float) -> str:
    """Return a duration as '42 s', '3 min 5 s' or '2 h 10 min'."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@contextmanager
def progress_bar(plain_skips: Collection[str] = ()) -> Iterator[ProgressCallback]:
    """Yield a progress callback: a bar on a terminal, plain lines now and then otherwise (none for the
    phases in ``plain_skips``, which the command reports in its own lines)."""
    if not interactive():
        yield _PlainProgress(plain_skips)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, object] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASE_TITLES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        yield update


def error(message: str) -> None:
    """Print an error message for the user on standard error."""
    shown = escape(printable(message, keep_newlines=True))
    err_console.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True)


def plain(text: str) -> None:
    """Print text as it is (control characters escaped, newlines kept): no markup, highlighting or
    wrapping."""
    console.print(printable(text, keep_newlines=True), markup=False, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """Print a note for the user on standard error (control characters escaped)."""
    err_console.print(f"[yellow]note:[/] {escape(printable(text))}", highlight=False, soft_wrap=True)


TableData = tuple[str, list[str], list[list[str]]]
"""(title, column headers, rows of cells): rendered with rich on a terminal or as Markdown."""


def number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def interval(ci95: tuple[float, float] | None) -> str:
    return "-" if ci95 is None else f"{ci95[0]:.4f} - {ci95[1]:.4f}"


def _longest_word(text: str) -> int:
    """Return the length of the longest word of ``text`` (what a column needs not to break words)."""
    return max((len(word) for word in text.split()), default=1)


_NUMERIC = re.compile(r"^[-+0-9.,%:eE ]*$|^undefined$")
"""Cells of a right-aligned column: numbers, intervals ('0.1 - 0.2'), '-', '+-' spreads, percentages."""


def _widths(needs: list[int], natural: list[int], budget: int) -> list[int]:
    """Return column widths: each at least its longest word, the room left shared so that the columns
    needing the least extra are filled first (water-filling), none wider than its longest line."""
    widths = list(needs)
    spare = budget - sum(widths)
    for index in sorted(range(len(widths)), key=lambda i: natural[i] - needs[i]):
        room = len(widths) - sorted(range(len(widths)), key=lambda i: natural[i] - needs[i]).index(index)
        grant = min(natural[index] - needs[index], spare // room)
        widths[index] += grant
        spare -= grant
    return widths


def print_table(data: TableData) -> None:
    """Print a table that fits the terminal without breaking a word in two: the columns that do not fit,
    rightmost first (put the least important last), are left out and named under the table. Numeric
    columns are right-aligned, others left; cells are printed as given (round numbers first)."""
    title, headers, rows = data
    shown_rows = [[printable(text) for text in row] for row in rows]
    columns = [
        [printable(header), *(row[index] for row in shown_rows)] for index, header in enumerate(headers)
    ]
    needs = [max(_longest_word(text) for text in column) for column in columns]
    natural = [max(len(text) for text in column) for column in columns]
    keep = len(headers)
    while keep > 1 and sum(needs[:keep]) + 3 * keep + 1 > console.width:
        keep -= 1
    widths = _widths(needs[:keep], natural[:keep], console.width - 3 * keep - 1)
    caption = None if keep == len(headers) else f"not shown at this width: {', '.join(headers[keep:])}"
    table = Table(title=cell(title), caption=None if caption is None else cell(caption))
    for index in range(keep):
        numeric = all(_NUMERIC.match(text) for text in columns[index][1:])
        table.add_column(Text(columns[index][0]), justify="right" if numeric else "left", width=widths[index])
    for row in shown_rows:
        table.add_row(*(Text(text) for text in row[:keep]))
    console.print(table)


def markdown_table(data: TableData) -> str:
    """Return a table as Markdown: a bold title line, then the pipe table."""
    title, headers, rows = data

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    body = [line(headers), "| " + " | ".join("---" for _ in headers) + " |", *(line(row) for row in rows)]
    return f"**{title}**\n\n" + "\n".join(body) + "\n"
