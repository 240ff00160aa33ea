"""Rendering the dataset commands' results: validation reports, splits, tables, pipelines, preprocessing
and imports."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from cli.render import cell, console, err_console, interactive, note, plain, print_table
from strokedata.safetext import printable

if TYPE_CHECKING:
    import pandas as pd

    from strokedata.importers import ImportReport
    from strokedata.preprocess import Pipeline, PreprocessReport
    from strokedata.splits import SplitFile, SplitReport
    from strokedata.validation import ValidationReport


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
                    *(cell(t) for t in (f.patient_id or "-", f.file or "-", f.message)),
                )
            console.print(detail)
    else:
        for f in report.findings:
            where = " ".join(printable(text) for text in (f.patient_id or "-", f.file or "-"))
            plain(f"{f.severity:<7} {f.code} {where}: {printable(f.message)}")
    if report.split is not None:
        problems = sum(finding.code.startswith("S") for finding in report.findings)
        state = f"{problems} finding(s) above" if problems else "consistent with the dataset, no finding"
        plain(f"split {report.split} checked against the dataset: {state}")
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
        table.add_row(cell(balance.label), str(balance.total), *cells)
    console.print(table)
    console.print(
        f"largest deviation from the ideal count: {report.largest_deviation:g} patients", highlight=False
    )
    for warning in report.warnings:
        err_console.print(
            f"[yellow]warning:[/] {escape(printable(warning))}", highlight=False, soft_wrap=True
        )


_SUMMARY_COLUMNS = {
    "patient_id": "patient",
    "site": "site",
    "occlusion_location": "occlusion",
    "occlusion_side": "side",
    "mtici": "mTICI",
    "core_volume_ml": "core ml",
    "occlusion_side_tmax": "Tmax side",
    "side_agrees": "agree",
    "favourable_recanalization": "favourable",
}
"""The table columns summarised on a terminal, most important first, with their short headers."""


def _summary_cell(value: object) -> str:
    """Return a table value as shown: '-' when missing, yes/no, numbers rounded to one decimal."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_dataset_table(frame: pd.DataFrame) -> None:
    """Print a summary of a dataset table on the terminal: the main columns, shortened and rounded, as
    many as fit (the whole table: --out table.csv)."""
    columns = [column for column in _SUMMARY_COLUMNS if column in frame]
    rows = [[_summary_cell(value) for value in row] for row in frame[columns].itertuples(index=False)]
    title = f"{len(frame)} patients; {len(frame.columns)} columns in all: --out table.csv"
    print_table((title, [_SUMMARY_COLUMNS[column] for column in columns], rows))
    if "side_agrees" in frame:
        disagree = frame.loc[frame["side_agrees"].eq(False).fillna(False), "patient_id"].tolist()
        if disagree:
            count = len(disagree)
            note(
                f"the Tmax rule of Papakyriakou et al. 2025 disagrees with the labelled side for {count}: "
                + ", ".join(disagree)
            )


def render_pipelines(pipelines: list[Pipeline]) -> None:
    """Print the pipelines: name, task, required and written modalities, what they do."""
    table = Table(title="Preprocessing pipelines (strokedata pipelines NAME shows the parameters)")
    for header in ("pipeline", "task"):
        table.add_column(header, no_wrap=True)
    for header in ("requires", "writes", "what it does"):
        table.add_column(header, overflow="fold")
    for pipeline in pipelines:
        table.add_row(
            cell(pipeline.name),
            cell(pipeline.task),
            cell(", ".join(m.value for m in pipeline.requires)),
            cell(", ".join(m.value for m in pipeline.writes)),
            cell(pipeline.description),
        )
    console.print(table)


def render_pipeline(pipeline: Pipeline) -> None:
    """Print one pipeline: what it does, its stored and loading steps, its parameters and defaults."""
    plain(f"{pipeline.name} ({pipeline.task} task): {pipeline.description}")
    plain(
        f"requires {', '.join(m.value for m in pipeline.requires)}; "
        f"writes {', '.join(m.value for m in pipeline.writes)} when present"
    )
    stored, on_load = pipeline.step_names()
    plain("stored steps: " + (", ".join(stored) or "none"))
    plain("on loading: " + (", ".join(on_load) or "none"))
    table = Table(title=cell(f"Parameters of {pipeline.name} (--set NAME=VALUE)"))
    for header in ("name", "default", "meaning"):
        table.add_column(header, overflow="fold")
    defaults = pipeline.params().model_dump(mode="json")
    for name, info in pipeline.params.model_fields.items():
        table.add_row(cell(name), cell(json.dumps(defaults[name])), cell(info.description or ""))
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
            table.add_row(cell(outcome.patient_id), cell(outcome.reason))
        console.print(table)
    if report.stale:
        shown = ", ".join(report.stale[:10]) + (" ..." if len(report.stale) > 10 else "")
        note(f"{len(report.stale)} output patient folder(s) have no input patient (left in place): {shown}")


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
            table.add_row(*(cell(text) for text in cells))
        console.print(table)
    if report.excluded:
        table = Table(title=cell(f"Excluded by --require (listed in {report.excluded_csv})"))
        for header in ("patient", "source", "reason"):
            table.add_column(header, overflow="fold")
        for outcome in report.excluded[:20]:
            table.add_row(*(cell(text) for text in (outcome.patient_id, outcome.source, outcome.reason)))
        console.print(table)
        if len(report.excluded) > 20:
            note(f"{len(report.excluded) - 20} more excluded patients are listed in {report.excluded_csv}")
    if report.unmapped:
        table = Table(title="Label spellings not mapped (left unset; add spellings with --alias)")
        for header in ("patient", "field", "value"):
            table.add_column(header, overflow="fold")
        for problem in report.unmapped:
            table.add_row(*(cell(text) for text in (problem.patient_id, problem.field, repr(problem.value))))
        console.print(table)
    for item in report.notes:
        note(f"{item.patient_id}: {item.message}" if item.patient_id else item.message)
    if report.stale:
        shown = ", ".join(report.stale[:10]) + (" ..." if len(report.stale) > 10 else "")
        note(f"{len(report.stale)} folder(s) in the output have no imported patient (left in place): {shown}")
    note(f"check the result with `strokedata validate {report.out}`")
