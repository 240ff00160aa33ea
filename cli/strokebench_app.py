"""The `strokebench` program: benchmark tasks, scoring, environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.app import make_app
from cli.errors import EXIT_USAGE, library_errors

app = make_app(
    "strokebench",
    "Stroke-imaging benchmarks: tasks, scoring and leaderboards against published baselines.",
)


@app.command()
def info() -> None:
    """Print the versions of strokebench and of the stack it runs on (paste them into bug reports)."""
    from rich.table import Table

    from strokedata.environment import versions

    table = Table(title="strokebench environment")
    table.add_column("component")
    table.add_column("version")
    for name, found in versions().items():
        table.add_row(name, found)
    render.console.print(table)


@app.command()
def tasks(
    name: Annotated[str | None, typer.Argument(help="A task to show in full.")] = None,
) -> None:
    """List the benchmark tasks, or show one: inputs, label, file format, metrics, policies, baselines."""
    from strokemodels.benchmark import TASKS

    if name is None:
        render.render_task_list(list(TASKS.values()))
        return
    if name not in TASKS:
        render.error(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
        raise typer.Exit(EXIT_USAGE)
    render.render_task(TASKS[name])


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="Predictions CSV (format: strokebench tasks TASK).")],
    task: Annotated[str, typer.Option(help="occlusion, recanalization or clot-regions.")],
    truth: Annotated[
        Path | None, typer.Option(help="Truth CSV: the predictions' format with 'label' columns.")
    ] = None,
    dataset: Annotated[Path | None, typer.Option(help="Derive the truth from this dataset instead.")] = None,
    split: Annotated[Path | None, typer.Option(help="With --dataset: a split file.")] = None,
    partition: Annotated[
        str | None, typer.Option(help="With --split: test, train, val or foldK (its validation patients).")
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the 95% CIs (0: none).")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Decision threshold on probabilities.")
    ] = 0.5,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Score patients without a prediction as wrong.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON.")] = None,
) -> None:
    """Score a predictions file against the truth: metrics with 95% bootstrap confidence intervals."""
    from strokedata.io import atomic_write_text
    from strokemodels.benchmark import TASKS, score_files

    if task not in TASKS:
        render.error(f"unknown task '{task}'; choose one of {', '.join(TASKS)}")
        raise typer.Exit(EXIT_USAGE)
    with library_errors():
        report = score_files(
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
        )
    render.render_scores(report, TASKS[task])
    if json_out is not None:
        atomic_write_text(json_out, report.model_dump_json(indent=2) + "\n")


def main() -> None:
    """Run the `strokebench` program."""
    app()
