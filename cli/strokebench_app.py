"""The `strokebench` program: benchmark tasks, scoring, environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli import render, render_bench, run_command, zoo_commands
from cli.app import make_app, run
from cli.errors import EXIT_USAGE, check_outputs, library_errors
from cli.options import SchedulerOption, cluster_executor

app = make_app(
    "strokebench",
    "Stroke-imaging benchmarks: the task cards (tasks), the model zoo (models, train, predict), scoring "
    "predictions with confidence intervals (score), paired comparisons (compare), leaderboards beside the "
    "published baselines (leaderboard), truth files (truth), the JSON Schemas (schema) and the versions "
    "of the stack (info).",
)


@app.command()
def info() -> None:
    """Print the versions of the toolkit and its stack.

    Paste them into bug reports.
    """
    from rich.table import Table

    from strokedata.environment import versions

    table = Table(title="strokebench environment")
    table.add_column("component")
    table.add_column("version")
    for name, found in versions().items():
        table.add_row(name, found)
    render.console.print(table)


def _check_task(task: str) -> None:
    """Exit with status 2 and the list of tasks when ``task`` is not one of them."""
    from strokemodels.benchmark import TASKS

    if task not in TASKS:
        render.error(f"unknown task '{task}'; choose one of {', '.join(TASKS)}")
        raise typer.Exit(EXIT_USAGE)


@app.command()
def tasks(
    name: Annotated[str | None, typer.Argument(help="A task to show in full.")] = None,
) -> None:
    """List the benchmark tasks, or show one.

    A task card: inputs, label, file format, metrics, policies and published baselines.
    """
    from strokemodels.benchmark import TASKS

    if name is None:
        render_bench.render_task_list(list(TASKS.values()))
        return
    _check_task(name)
    render_bench.render_task(TASKS[name])


TaskOption = Annotated[str, typer.Option(help="occlusion, recanalization, core or clot-regions.")]
TruthOption = Annotated[
    Path | None, typer.Option(help="Truth CSV: the predictions' format with 'label' (or mask) columns.")
]
DatasetOption = Annotated[Path | None, typer.Option(help="Derive the truth from this dataset instead.")]
SplitOption = Annotated[Path | None, typer.Option(help="With --dataset: a split file.")]
PartitionOption = Annotated[
    str | None, typer.Option(help="With --split: test, train, val or foldK (its validation patients).")
]
BootstrapOption = Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the 95% CIs (0: none).")]
SeedOption = Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")]
ThresholdOption = Annotated[float, typer.Option(min=0, max=1, help="Decision threshold on probabilities.")]
MissingOption = Annotated[
    bool, typer.Option("--allow-missing", help="Score patients without a prediction as wrong.")
]
JobsOption = Annotated[
    int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes reading masks and images.")
]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")]
MarkdownOption = Annotated[bool, typer.Option("--markdown", help="Print Markdown tables instead.")]


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="Predictions CSV (format: strokebench tasks TASK).")],
    task: TaskOption,
    truth: TruthOption = None,
    dataset: DatasetOption = None,
    split: SplitOption = None,
    partition: PartitionOption = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    threshold: ThresholdOption = 0.5,
    allow_missing: MissingOption = False,
    name: Annotated[
        str | None, typer.Option(help="Record the run on the leaderboard under this name.")
    ] = None,
    leaderboard: Annotated[
        Path | None,
        typer.Option(help="Leaderboard file (default: leaderboard.jsonl beside the predictions)."),
    ] = None,
    jobs: JobsOption = None,
    scheduler: SchedulerOption = None,
    json_out: JsonOption = None,
    markdown: MarkdownOption = False,
) -> None:
    """Score predictions: metrics with 95% intervals.

    A predictions file against the truth: metrics with 95% bootstrap confidence intervals.

    With a fold column, also per-fold metrics and their mean +- std; with a model column, one report
    per model. --json writes one report object, or a list of them with a model column.
    """
    from strokedata.io import atomic_write_text
    from strokemodels.benchmark import TASKS, score_files
    from strokemodels.benchmark.leaderboard import entries_from, record

    _check_task(task)
    if leaderboard is not None and name is None:
        render.error("--leaderboard records a run: give it a --name")
        raise typer.Exit(EXIT_USAGE)
    if name is not None and not name.strip():
        render.error("--name is empty; give the run a name")
        raise typer.Exit(EXIT_USAGE)
    board = None if name is None else leaderboard or predictions.parent / "leaderboard.jsonl"
    check_outputs({"--json": json_out, "--leaderboard": board})
    inputs = [path for path in (predictions, truth, dataset) if path is not None]
    with (
        library_errors(),
        cluster_executor(scheduler, jobs, inputs),
        render.progress_bar() as progress,
    ):
        reports = score_files(
            task,
            predictions,
            truth=truth,
            dataset=dataset,
            split=split,
            partition=partition,
            threshold=threshold,
            bootstrap=bootstrap,
            seed=seed,
            allow_missing=allow_missing,
            replicates=name is not None,
            workers=jobs,
            progress=progress,
        )
        if json_out is not None:
            dumped = [report.model_dump(mode="json") for report in reports]
            atomic_write_text(
                json_out, json.dumps(dumped if len(reports) > 1 else dumped[0], indent=2) + "\n"
            )
        if name is not None and board is not None:
            record(board, entries_from(reports, name, predictions))
    if markdown:
        render.plain(render_bench.markdown_scores(reports, TASKS[task]))
    else:
        for report in reports:
            render_bench.render_scores(report, TASKS[task])
    if name is not None:
        render.note(f"recorded {len(reports)} run(s) as '{name}' in {board}")


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="Predictions CSV of model A (one model).")],
    b: Annotated[Path, typer.Argument(help="Predictions CSV of model B, on the same patients.")],
    task: TaskOption,
    truth: TruthOption = None,
    dataset: DatasetOption = None,
    split: SplitOption = None,
    partition: PartitionOption = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    threshold: ThresholdOption = 0.5,
    allow_missing: MissingOption = False,
    jobs: JobsOption = None,
    json_out: JsonOption = None,
    markdown: MarkdownOption = False,
) -> None:
    """Compare two models on the same patients.

    B - A with paired bootstrap intervals, McNemar's and DeLong's tests.
    """
    from strokedata.io import atomic_write_text
    from strokemodels.benchmark.compare import compare_files

    _check_task(task)
    check_outputs({"--json": json_out})
    with library_errors():
        report = compare_files(
            task,
            a,
            b,
            truth=truth,
            dataset=dataset,
            split=split,
            partition=partition,
            threshold=threshold,
            bootstrap=bootstrap,
            seed=seed,
            allow_missing=allow_missing,
            workers=jobs,
        )
        if json_out is not None:
            atomic_write_text(json_out, report.model_dump_json(indent=2) + "\n")
    if markdown:
        render.plain(render_bench.markdown_compare(report))
    else:
        render_bench.render_compare(report)


@app.command(name="leaderboard")
def show_leaderboard(
    task: TaskOption,
    leaderboard: Annotated[
        Path, typer.Option(help="Leaderboard file written by strokebench score --name.")
    ] = Path("leaderboard.jsonl"),
    json_out: JsonOption = None,
    markdown: MarkdownOption = False,
) -> None:
    """Show recorded runs beside the published baselines.

    The runs of a task recorded by score --name, beside its published baselines, best primary metric
    first.
    """
    from strokedata.io import atomic_write_text
    from strokemodels.benchmark import TASKS
    from strokemodels.benchmark.leaderboard import leaderboard as rows_of
    from strokemodels.benchmark.leaderboard import leaderboard_json, read_leaderboard

    _check_task(task)
    check_outputs({"--json": json_out})
    with library_errors():
        entries = read_leaderboard(leaderboard)
    rows = rows_of(task, entries)
    if not any(e.task == task for e in entries):
        render.note(f"no recorded run of {task} in {leaderboard}; record one with strokebench score --name")
    if json_out is not None:
        with library_errors():
            atomic_write_text(json_out, leaderboard_json(rows))
    if markdown:
        render.plain(render_bench.markdown_leaderboard(rows, TASKS[task]))
    else:
        render_bench.render_leaderboard(rows, TASKS[task])


@app.command()
def truth(
    task: TaskOption,
    dataset: Annotated[Path, typer.Option(help="The dataset whose labels make the truth.")],
    out: Annotated[Path, typer.Option("--out", help="Truth CSV to write (the format of --truth).")],
    split: SplitOption = None,
    partition: PartitionOption = None,
    slice_level: Annotated[
        bool, typer.Option("--slice-level", help="clot-regions: one row per slice (CLOT x ATLAS per slice).")
    ] = False,
    jobs: JobsOption = None,
) -> None:
    """Write a task's truth file from a dataset.

    The labels of every patient (or of one split partition) in the format `strokebench score --truth`
    reads; patients without the task's label are left out and counted.
    """
    from strokedata.io import atomic_write_text
    from strokemodels.benchmark.truth import truth_csv, truth_from_dataset

    _check_task(task)
    check_outputs({"--out": out})
    if (split is None) != (partition is None):
        render.error("give --split and --partition together, or neither")
        raise typer.Exit(EXIT_USAGE)
    with library_errors():
        rows, unlabelled = truth_from_dataset(
            task, dataset, split, partition, slice_level=slice_level, jobs=jobs
        )
        atomic_write_text(out, truth_csv(task, rows, out.absolute().parent))
    left_out = f"; {len(unlabelled)} without the label left out" if unlabelled else ""
    render.plain(f"wrote the {task} truth of {len(rows.values)} patients to {out}{left_out}")


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the JSON Schema files into.")] = Path(
        "schemas/benchmark"
    ),
) -> None:
    """Export the JSON Schemas of the benchmark files.

    The predictions and truth files of every task, and the reports.
    """
    from strokemodels.benchmark.schemas import export_benchmark_schemas

    check_outputs(folders={"--out": out})
    with library_errors():
        written = export_benchmark_schemas(out)
    for path in written:
        typer.echo(str(path))


zoo_commands.register(app)
app.command()(run_command.run)


def main() -> None:
    """Run the `strokebench` program."""
    run(app)
