"""``strokebench run``: parse the options, call ``strokemodels.report.run_benchmark``, show the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render, render_data
from cli.errors import EXIT_INVALID, check_outputs, library_errors, option_errors
from cli.options import SchedulerOption, cluster_executor


def _names(text: str | None, known: list[str], option: str) -> tuple[str, ...] | None:
    """Return the comma-separated names of ``text`` (None: the default); BadParameter for unknown ones."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if known and name not in known]
    if not names or unknown:
        raise typer.BadParameter(
            f"{option} '{text}': choose among {', '.join(known)}"
            + (", or all" if option == "--models" else "")
        )
    return names


def run(
    dataset: Annotated[
        Path | None, typer.Argument(help="A canonical dataset (default: the built-in phantoms, generated).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Run folder: report.html, summary.json, each step.")
    ] = Path("strokebench-run"),
    tasks: Annotated[
        str | None,
        typer.Option(help="Tasks, comma-separated (default: occlusion,recanalization,core,clot-regions)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="Models, comma-separated, or 'all' (default: the rule baselines and one network per task)."
        ),
    ] = None,
    budget: Annotated[
        str, typer.Option(help="quick (few epochs, small inputs) or paper (each paper's recipe).")
    ] = "quick",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict/--allow-warnings",
            help="--strict stops on validation warnings too; --allow-warnings (the default) goes on.",
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the phantoms, splits, training and bootstrap.")
    ] = 0,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples behind each 95% interval.")
    ] = 1000,
    phantoms: Annotated[
        int, typer.Option(min=1, help="Without DATASET: how many phantom patients to generate.")
    ] = 40,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Run the whole benchmark: validate, split, preprocess, train, predict, score, report.

    Every task the dataset can serve, each by its paper's protocol, into OUT/report.html (one
    self-contained page) and OUT/summary.json. A rerun skips finished steps. Exit status: 0 done,
    1 the dataset is invalid (nothing trained), 2 usage error, 130 interrupted (run again to resume).
    """
    from strokemodels.registry import list_models
    from strokemodels.report import RunOptions, RunStopped, run_benchmark
    from strokemodels.report.plan import TASK_ORDER

    check_outputs(folders={"--out": out})
    with option_errors():
        chosen_tasks = _names(tasks, list(TASK_ORDER), "--tasks") or TASK_ORDER
        chosen_models = _names(models, [], "--models")
        if chosen_models and chosen_models != ("all",):
            _names(models, [spec.name for spec in list_models()], "--models")
        if budget not in ("quick", "paper"):
            raise typer.BadParameter(f"--budget '{budget}': choose quick or paper")
        if device not in ("auto", "cpu", "cuda"):
            raise typer.BadParameter(f"--device '{device}': choose auto, cpu or cuda")
    options = RunOptions(
        out=out,
        dataset=dataset,
        tasks=tuple(chosen_tasks),
        models=chosen_models,
        budget=budget,  # type: ignore[arg-type]
        device=device,  # type: ignore[arg-type]
        strict=strict,
        seed=seed,
        bootstrap=bootstrap,
        phantoms=phantoms,
        jobs=jobs,
    )
    interrupted = "interrupted; run the same command again to resume (finished steps are kept)"
    shared = [path for path in (dataset, out) if path is not None]
    stopped: RunStopped | None = None
    with (
        library_errors(interrupted),
        cluster_executor(scheduler, jobs, shared),
        render.progress_bar() as progress,
    ):
        try:
            summary = run_benchmark(options, on_step=render.plain, progress=progress)
        except RunStopped as problem:
            stopped = problem
    if stopped is not None:
        render_data.render_report(stopped.report)
        render.error(str(stopped))
        raise typer.Exit(EXIT_INVALID)
    for task in summary.tasks:
        if task.served:
            render.plain(f"{task.task}: {len(task.models)} model(s) scored on {task.scored_on}")
        else:
            render.note(f"{task.task} not run: {task.reason}")
    render.plain(f"report: {out / 'report.html'}")
    render.plain(f"summary: {out / 'summary.json'}")
