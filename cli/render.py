"""Rendering with rich: tables and progress bars on a terminal, plain lines when piped or under CI."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from strokedata.splits import SplitFile, SplitReport
    from strokedata.validation import ValidationReport
    from strokedata.validation.runner import Progress as ProgressCallback

console = Console()
err_console = Console(stderr=True)

_PHASE_TITLES = {
    "headers": "Checking manifests and headers",
    "voxels": "Reading voxels",
    "phantoms": "Generating phantoms",
}


def interactive() -> bool:
    """Return True when output goes to a terminal and not to a pipe or a CI log."""
    return console.is_terminal and not os.environ.get("CI")


@contextmanager
def progress_bar() -> Iterator[ProgressCallback | None]:
    """Yield a progress callback drawing a bar on a terminal, or None when not interactive."""
    if not interactive():
        yield None
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def render_report(report: ValidationReport) -> None:
    """Print a validation report: tables on a terminal, one line per finding otherwise."""
    if interactive():
        if report.findings:
            counts = Counter((f.code, f.name, f.severity) for f in report.findings)
            summary = Table(title="Findings by code")
            for column in ("code", "name", "severity", "count"):
                summary.add_column(column, justify="right" if column == "count" else "left")
            for (code, name, severity), count in sorted(counts.items()):
                style = "red" if severity == "error" else "yellow"
                summary.add_row(code, name, f"[{style}]{severity}[/]", str(count))
            console.print(summary)
            detail = Table(title="Findings", show_lines=False)
            for column in ("severity", "code", "patient", "file", "message"):
                detail.add_column(column, overflow="fold")
            for f in report.findings:
                style = "red" if f.severity == "error" else "yellow"
                detail.add_row(
                    f"[{style}]{f.severity}[/]", f.code, f.patient_id or "-", f.file or "-", f.message
                )
            console.print(detail)
    else:
        for f in report.findings:
            console.print(
                f"{f.severity:<7} {f.code} {f.patient_id or '-'} {f.file or '-'}: {f.message}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    verdict = "VALID" if report.valid else "INVALID"
    style = "bold green" if report.valid else "bold red"
    console.print(
        f"[{style}]{verdict}[/]: {report.n_patients} patients, {report.n_images} images, "
        f"{report.image_bytes / 1e6:.1f} MB read; {report.errors} errors, {report.warnings} warnings",
        highlight=False,
        soft_wrap=True,
    )


def render_split(split: SplitFile, report: SplitReport) -> None:
    """Print partition sizes, per-class counts and proportions per partition, and the largest deviation."""
    names = list(report.partition_sizes)
    table = Table(
        title=f"Split (seed {split.parameters.seed}, stratified by {' x '.join(split.parameters.stratify)})"
    )
    table.add_column("class")
    table.add_column("total", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(
        "all", str(sum(report.partition_sizes.values())), *(str(report.partition_sizes[n]) for n in names)
    )
    for balance in report.classes:
        cells = []
        for name in names:
            count = balance.counts.get(name)
            share = f" ({count / balance.total:.0%})" if count is not None and balance.total else ""
            cells.append("-" if count is None else f"{count}{share}")
        table.add_row(balance.label, str(balance.total), *cells)
    console.print(table)
    console.print(
        f"largest deviation from the ideal count: {report.largest_deviation:g} patients", highlight=False
    )
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
