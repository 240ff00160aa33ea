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
    from strokemodels.benchmark import ScoreReport, TaskCard

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


def render_task_list(cards: list[TaskCard]) -> None:
    """Print one line per task: name, title, primary metric, published baselines."""
    table = Table(title="Benchmark tasks")
    for column in ("task", "title", "primary metric", "published baselines"):
        table.add_column(column)
    for card in cards:
        table.add_row(card.name, card.title, card.primary, str(len(card.published)))
    console.print(table)


def render_task(card: TaskCard) -> None:
    """Print a task card in full, published baselines marked as such."""
    console.print(f"[bold]{card.name}[/]: {card.title} ({card.source})", highlight=False)
    for label, text in (
        ("inputs", ", ".join(card.inputs)),
        ("label", card.label),
        ("truth", card.truth),
        ("predictions", card.prediction_format),
        ("metrics", ", ".join(card.metrics)),
    ):
        console.print(f"  {label}: {text}", highlight=False, soft_wrap=True)
    for name, policy in card.policies.items():
        console.print(f"  policy, {name}: {policy}", highlight=False, soft_wrap=True)
    table = Table(title="Published baselines (other cohorts, not comparable without care)")
    for column in ("model", "n", "protocol", *card.metrics[:3]):
        table.add_column(column)
    for result in card.published:
        cells = [
            f"{result.metrics[m]:g}" + (f" +- {result.std[m]:g}" if m in result.std else "")
            if m in result.metrics
            else "-"
            for m in card.metrics[:3]
        ]
        table.add_row(result.model, str(result.n or "-"), result.protocol, *cells)
    console.print(table)


def render_scores(report: ScoreReport, card: TaskCard) -> None:
    """Print each metric with its 95% CI, the confusion matrix and the task's policies."""
    table = Table(title=f"{report.task}: n = {report.n}, 95% CI from {report.bootstrap} bootstrap resamples")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for name, metric in report.metrics.items():
        value = "undefined" if metric.value is None else f"{metric.value:.4f}"
        interval = "-" if metric.ci95 is None else f"{metric.ci95[0]:.4f} - {metric.ci95[1]:.4f}"
        table.add_row(name + (" (primary)" if name == card.primary else ""), value, interval)
    console.print(table)
    if report.confusion_matrix is not None:
        matrix = Table(title="Confusion matrix (rows: truth, columns: prediction)")
        matrix.add_column("")
        for label in report.confusion_matrix.labels:
            matrix.add_column(label, justify="right")
        for label, row in zip(report.confusion_matrix.labels, report.confusion_matrix.matrix, strict=True):
            matrix.add_row(label, *(str(count) for count in row))
        console.print(matrix)
    if report.missing_scored_as_wrong:
        err_console.print(
            f"[yellow]warning:[/] {report.missing_scored_as_wrong} patients without a prediction "
            "were scored as wrong (--allow-missing)",
            highlight=False,
        )
    if report.unlabelled_not_scored:
        err_console.print(
            f"[yellow]note:[/] {report.unlabelled_not_scored} patients of the dataset lack the "
            f"{report.task} label and were not scored",
            highlight=False,
        )
    for name, policy in report.policies.items():
        console.print(f"policy, {name}: {policy}", highlight=False, soft_wrap=True)
