"""Rendering with rich: tables and progress bars on a terminal, plain lines when piped or under CI."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from strokedata.safetext import printable

if TYPE_CHECKING:
    import pandas as pd

    from strokedata.preprocess import Pipeline, PreprocessReport
    from strokedata.splits import SplitFile, SplitReport
    from strokedata.validation import ValidationReport
    from strokedata.validation.runner import Progress as ProgressCallback
    from strokemodels.benchmark import ScoreReport, TaskCard
    from strokemodels.benchmark.compare import CompareReport
    from strokemodels.benchmark.leaderboard import LeaderboardRow

console = Console()
err_console = Console(stderr=True)

_PHASE_TITLES = {
    "headers": "Checking manifests and headers",
    "voxels": "Reading voxels",
    "phantoms": "Generating phantoms",
    "preprocess": "Preprocessing",
}


def _text(text: str) -> Text:
    """Return user-supplied text as a rich Text (no markup) with control characters escaped."""
    return Text(printable(text))


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
    shown = escape(printable(message, keep_newlines=True))
    err_console.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True)


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
                    f"[{style}]{f.severity}[/]",
                    f.code,
                    *(_text(t) for t in (f.patient_id or "-", f.file or "-", f.message)),
                )
            console.print(detail)
    else:
        for f in report.findings:
            where = " ".join(printable(text) for text in (f.patient_id or "-", f.file or "-"))
            plain(f"{f.severity:<7} {f.code} {where}: {printable(f.message)}")
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
        table.add_row(_text(balance.label), str(balance.total), *cells)
    console.print(table)
    console.print(
        f"largest deviation from the ideal count: {report.largest_deviation:g} patients", highlight=False
    )
    for warning in report.warnings:
        err_console.print(
            f"[yellow]warning:[/] {escape(printable(warning))}", highlight=False, soft_wrap=True
        )


def render_dataset_table(frame: pd.DataFrame) -> None:
    """Print the main columns of a dataset table (the rest: --out table.csv)."""
    shown = (
        "patient_id",
        "site",
        "occlusion_location",
        "occlusion_side",
        "occlusion_side_tmax",
        "side_agrees",
    )
    columns = [c for c in (*shown, "mtici", "favourable_recanalization", "core_volume_ml") if c in frame]
    import pandas as pd

    rows = [[("-" if pd.isna(v) else str(v)) for v in row] for row in frame[columns].itertuples(index=False)]
    title = f"{len(frame)} patients, {len(frame.columns)} columns (all of them: --out table.csv)"
    _print_table((title, columns, rows))
    if "side_agrees" in frame:
        disagree = frame.loc[frame["side_agrees"].eq(False).fillna(False), "patient_id"].tolist()
        if disagree:
            count = len(disagree)
            note(f"the Tmax rule of 000 disagrees with the labelled side for {count}: {', '.join(disagree)}")


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
        console.print(f"  {label}: {text}", markup=False, highlight=False, soft_wrap=True)
    for name, policy in card.policies.items():
        console.print(f"  policy, {name}: {policy}", markup=False, highlight=False, soft_wrap=True)
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
        table.add_row(*(_text(t) for t in (result.model, str(result.n or "-"), result.protocol, *cells)))
    console.print(table)


TableData = tuple[str, list[str], list[list[str]]]
"""(title, column headers, rows of cells): rendered with rich on a terminal or as Markdown."""


def render_pipelines(pipelines: list[Pipeline]) -> None:
    """Print the pipelines: name, task, required and written modalities, what they do."""
    table = Table(title="Preprocessing pipelines (strokedata pipelines NAME shows the parameters)")
    for header in ("pipeline", "task"):
        table.add_column(header, no_wrap=True)
    for header in ("requires", "writes", "what it does"):
        table.add_column(header, overflow="fold")
    for pipeline in pipelines:
        table.add_row(
            _text(pipeline.name),
            _text(pipeline.task),
            _text(", ".join(m.value for m in pipeline.requires)),
            _text(", ".join(m.value for m in pipeline.writes)),
            _text(pipeline.description),
        )
    console.print(table)


def render_pipeline(pipeline: Pipeline) -> None:
    """Print one pipeline: what it does, its stored and loading steps, its parameters and defaults."""
    plain(f"{pipeline.name} ({pipeline.task} task): {pipeline.description}")
    plain(
        f"requires {', '.join(m.value for m in pipeline.requires)}; "
        f"writes {', '.join(m.value for m in pipeline.writes)} when present"
    )
    plain("stored steps: " + (", ".join(type(t).__name__ for t in pipeline.transform().transforms) or "none"))
    plain("on loading: " + (", ".join(type(t).__name__ for t in pipeline.loading().transforms) or "none"))
    table = Table(title=_text(f"Parameters of {pipeline.name} (--set NAME=VALUE)"))
    for header in ("name", "default", "meaning"):
        table.add_column(header, overflow="fold")
    defaults = pipeline.params().model_dump(mode="json")
    for name, info in pipeline.params.model_fields.items():
        table.add_row(_text(name), _text(json.dumps(defaults[name])), _text(info.description or ""))
    console.print(table)


def render_preprocess(report: PreprocessReport) -> None:
    """Print a preprocessing run: counts, then every failed patient with its reason."""
    counts = Counter(outcome.status for outcome in report.outcomes)
    plain(
        f"pipeline {report.pipeline} -> {report.out}: {counts['written']} written, "
        f"{counts['skipped']} up to date, {counts['failed']} failed"
    )
    if report.failed:
        table = Table(title="Failed patients (the others were written)")
        table.add_column("patient")
        table.add_column("reason", overflow="fold")
        for outcome in report.failed:
            table.add_row(_text(outcome.patient_id), _text(outcome.reason))
        console.print(table)
    if report.stale:
        shown = ", ".join(report.stale[:10]) + (" ..." if len(report.stale) > 10 else "")
        note(f"{len(report.stale)} output patient folder(s) have no input patient (left in place): {shown}")


def plain(text: str) -> None:
    """Print text as it is (control characters escaped, newlines kept): no markup, highlighting or
    wrapping."""
    console.print(printable(text, keep_newlines=True), markup=False, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """Print a note for the user on standard error (control characters escaped)."""
    err_console.print(f"[yellow]note:[/] {escape(printable(text))}", highlight=False, soft_wrap=True)


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _interval(ci95: tuple[float, float] | None) -> str:
    return "-" if ci95 is None else f"{ci95[0]:.4f} - {ci95[1]:.4f}"


def _print_table(data: TableData) -> None:
    title, headers, rows = data
    table = Table(title=_text(title))
    for index, header in enumerate(headers):
        table.add_column(_text(header), justify="left" if index == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(_text(cell) for cell in row))
    console.print(table)


def markdown_table(data: TableData) -> str:
    """Return a table as Markdown: a bold title line, then the pipe table."""
    title, headers, rows = data

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    body = [line(headers), "| " + " | ".join("---" for _ in headers) + " |", *(line(row) for row in rows)]
    return f"**{title}**\n\n" + "\n".join(body) + "\n"


def _score_tables(report: ScoreReport, card: TaskCard) -> list[TableData]:
    who = f" {report.model}" if report.model else ""
    units = f", {report.n_units} slices" if report.unit == "slice" else ""
    resamples = f"95% CI from {report.bootstrap} bootstrap resamples"
    title = f"{report.task}{who}: n = {report.n} patients{units}, {resamples}"
    rows = [
        [name + (" (primary)" if name == card.primary else ""), _number(metric.value), _interval(metric.ci95)]
        for name, metric in report.metrics.items()
    ]
    tables: list[TableData] = [(title, ["metric", "value", "95% CI"], rows)]
    if report.per_fold is not None and report.fold_mean_std is not None:
        metrics = list(report.fold_mean_std)
        fold_rows = [[f.fold, str(f.n), *(_number(f.metrics[m]) for m in metrics)] for f in report.per_fold]
        fold_rows.append(
            [
                "mean +- std",
                "",
                *(f"{_number(mean)} +- {_number(std)}" for mean, std in report.fold_mean_std.values()),
            ]
        )
        tables.append(
            (f"{report.task}{who}: per fold (std: sample, ddof 1)", ["fold", "n", *metrics], fold_rows)
        )
    if report.confusion_matrix is not None:
        matrix = report.confusion_matrix
        tables.append(
            (
                f"{report.task}{who}: confusion matrix (rows: truth, columns: prediction)",
                ["", *matrix.labels],
                [
                    [label, *(str(c) for c in row)]
                    for label, row in zip(matrix.labels, matrix.matrix, strict=True)
                ],
            )
        )
    return tables


def _score_notes(report: ScoreReport) -> list[str]:
    notes = []
    if report.missing_scored_as_wrong:
        notes.append(
            f"{report.missing_scored_as_wrong} {report.unit}s without a prediction were scored as wrong "
            "(--allow-missing)"
        )
    if report.not_in_any_fold:
        notes.append(
            f"{report.not_in_any_fold} patients without a prediction have no fold: they count in the pooled "
            "metrics, not in the per-fold ones"
        )
    if report.outside_partition_not_scored:
        notes.append(
            f"{report.outside_partition_not_scored} predicted patients of the dataset lie outside the "
            "partition scored and were left aside"
        )
    if report.unlabelled_not_scored:
        notes.append(
            f"{report.unlabelled_not_scored} patients of the dataset lack the {report.task} label and were "
            "not scored"
        )
    return notes


def render_scores(report: ScoreReport, card: TaskCard) -> None:
    """Print each metric with its 95% CI, per-fold metrics, the confusion matrix and the policies."""
    for data in _score_tables(report, card):
        _print_table(data)
    for text in _score_notes(report):
        err_console.print(f"[yellow]warning:[/] {escape(printable(text))}", highlight=False, soft_wrap=True)
    for name, policy in report.policies.items():
        console.print(f"policy, {name}: {policy}", markup=False, highlight=False, soft_wrap=True)


def markdown_scores(reports: list[ScoreReport], card: TaskCard) -> str:
    """Return the reports as Markdown tables, followed by their notes and the task's policies."""
    parts = [markdown_table(data) for report in reports for data in _score_tables(report, card)]
    notes = [text for report in reports for text in _score_notes(report)]
    policies = [f"- {name}: {policy}" for name, policy in card.policies.items()]
    return "\n".join(
        parts + ["\n".join(f"- {text}" for text in notes) + "\n"] * bool(notes) + ["\n".join(policies)]
    )


def _compare_table(report: CompareReport) -> list[TableData]:
    title = (
        f"{report.task}: B - A, B = {report.b}, A = {report.a}, n = {report.n} patients, "
        f"paired 95% CI from {report.bootstrap} resamples"
    )
    rows = [
        [name, _number(m.a), _number(m.b), _number(m.difference), _interval(m.ci95)]
        for name, m in report.metrics.items()
    ]
    tables: list[TableData] = [(title, ["metric", report.a, report.b, "B - A", "95% CI"], rows)]
    if report.tests:
        tests = [
            [
                test.name,
                "-" if test.statistic is None else f"{test.statistic:.4g}",
                f"{test.p_value:.4g}",
                ", ".join(f"{k} {v:.4g}" for k, v in test.detail.items()),
            ]
            for test in report.tests
        ]
        tables.append(
            ("Paired tests (two-sided; statistics signed B - A)", ["test", "statistic", "p", "detail"], tests)
        )
    return tables


def render_compare(report: CompareReport) -> None:
    """Print the paired differences, the paired tests and the notes of a comparison."""
    for data in _compare_table(report):
        _print_table(data)
    for text in report.notes:
        note(text)


def markdown_compare(report: CompareReport) -> str:
    """Return a comparison as Markdown tables and notes."""
    return "\n".join(
        [markdown_table(data) for data in _compare_table(report)] + [f"- {t}" for t in report.notes]
    )


def _leaderboard_table(rows: list[LeaderboardRow], card: TaskCard) -> TableData:
    shown = card.metrics[:3]  # the published baselines report at most three; --json has every metric
    headers = ["#", "name", "source", "n", "protocol", *shown, f"{card.primary} 95% CI", "rank stability"]
    cells = [
        [
            str(place),
            row.name,
            row.source,
            "-" if row.n is None else str(row.n),
            row.protocol,
            *("-" if row.metrics[m] is None else f"{row.metrics[m]:.4g}" for m in shown),
            _interval(row.primary_ci95),
            "-" if row.rank_stability is None else f"{row.rank_stability:.0%}",
        ]
        for place, row in enumerate(rows, start=1)
    ]
    title = (
        f"Leaderboard {card.name}, by {card.primary}; rank stability: share of paired resamples in which a "
        "scored run keeps its rank among the runs on the same truth"
    )
    return title, headers, cells


def render_leaderboard(rows: list[LeaderboardRow], card: TaskCard) -> None:
    """Print the leaderboard of a task: scored runs and published baselines, marked as such."""
    _print_table(_leaderboard_table(rows, card))


def markdown_leaderboard(rows: list[LeaderboardRow], card: TaskCard) -> str:
    """Return the leaderboard of a task as a Markdown table."""
    return markdown_table(_leaderboard_table(rows, card))


if TYPE_CHECKING:
    from strokedata.importers import ImportReport


def _import_summary(report: ImportReport) -> str:
    """Return the one-line summary of an import: counts by outcome and where the dataset is."""
    imported = report.imported
    written = sum(outcome.changed for outcome in imported)
    mode = {"symlink": "symbolic links", "copy": "copies", "hardlink": "hard links"}[report.mode]
    return (
        f"{report.layout} {report.source} -> {report.out} ({mode}): {len(imported)} imported "
        f"({written} written, {len(imported) - written} up to date), {len(report.excluded)} excluded, "
        f"{len(report.failed)} failed"
    )


def render_import(report: ImportReport) -> None:
    """Print an import: counts, failed patients with file and reason, exclusions, unmapped label
    spellings and warnings; a hint to validate the result."""
    plain(_import_summary(report))
    if report.failed:
        table = Table(title="Failed patients (not imported; the others were)")
        for header in ("patient", "source", "file", "reason"):
            table.add_column(header, overflow="fold")
        for outcome in report.failed:
            cells = (outcome.patient_id, outcome.source, outcome.file or "-", outcome.reason)
            table.add_row(*(_text(cell) for cell in cells))
        console.print(table)
    if report.excluded:
        table = Table(title=_text(f"Excluded by --require (listed in {report.excluded_csv})"))
        for header in ("patient", "source", "reason"):
            table.add_column(header, overflow="fold")
        for outcome in report.excluded[:20]:
            table.add_row(*(_text(cell) for cell in (outcome.patient_id, outcome.source, outcome.reason)))
        console.print(table)
        if len(report.excluded) > 20:
            note(f"{len(report.excluded) - 20} more excluded patients are listed in {report.excluded_csv}")
    if report.unmapped:
        table = Table(title="Label spellings not mapped (left unset; add spellings with --alias)")
        for header in ("patient", "field", "value"):
            table.add_column(header, overflow="fold")
        for problem in report.unmapped:
            table.add_row(*(_text(cell) for cell in (problem.patient_id, problem.field, repr(problem.value))))
        console.print(table)
    for item in report.notes:
        note(f"{item.patient_id}: {item.message}" if item.patient_id else item.message)
    if report.stale:
        shown = ", ".join(report.stale[:10]) + (" ..." if len(report.stale) > 10 else "")
        note(f"{len(report.stale)} folder(s) in the output have no imported patient (left in place): {shown}")
    note(f"check the result with `strokedata validate {report.out}`")
