"""The pipeline commands of `strokedata`: pipelines, preprocess and perfusion. Each parses, calls
strokedata.preprocess (perfusion is its "perfusion" pipeline), and renders (cli/render_data.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render, render_data
from cli.errors import EXIT_INVALID, EXIT_VALID, check_outputs, library_errors, option_errors
from cli.options import SchedulerOption, cluster_executor, parse_json_assignments

Jobs = Annotated[
    int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores).")
]


def pipelines(
    name: Annotated[str | None, typer.Argument(help="Show one pipeline's parameters.")] = None,
) -> None:
    """List the preprocessing pipelines, or show one.

    One pipeline's steps, and its parameters with their defaults.
    """
    from strokedata.preprocess import PIPELINES, get_pipeline

    if name is None:
        render_data.render_pipelines(list(PIPELINES.values()))
        return
    with option_errors():
        try:
            chosen = get_pipeline(name)
        except ValueError as problem:
            raise typer.BadParameter(str(problem)) from None
    render_data.render_pipeline(chosen)


def preprocess(
    dataset: Annotated[Path, typer.Argument(help="Dataset root (only read).")],
    pipeline: Annotated[
        str,
        typer.Option(
            "--task",
            "--pipeline",
            "-p",
            help="The task whose pipeline to run: occlusion, recanalization, core or clot-regions "
            "(--pipeline and -p are the same option).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder of the new dataset (outside the input).")],
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a parameter as NAME=VALUE, VALUE in JSON (e.g. register=false, "
            "tmax_range=[0,16]); repeatable. `strokedata pipelines NAME` lists them.",
        ),
    ] = None,
    compress: Annotated[
        bool,
        typer.Option(
            "--compress/--no-compress",
            help="Write .nii.gz (the default, like every dataset strokebench writes) or, with "
            "--no-compress, .nii: about 3 times larger, faster to read again.",
        ),
    ] = True,
    jobs: Jobs = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Preprocess a dataset for a task into a new dataset.

    The task's pipeline over every patient, written as a new canonical dataset with provenance.

    Patients whose inputs and parameters are unchanged are skipped; a patient that fails is reported and
    the others go on. Exit status: 0 all done, 1 some patient failed, 2 usage error.
    """
    with option_errors():
        overrides = parse_json_assignments(set_values or [], "--set")
    _run_pipeline(dataset, pipeline, out, overrides, compress, jobs, scheduler)


def _run_pipeline(
    dataset: Path,
    pipeline: str,
    out: Path,
    overrides: dict[str, object],
    compress: bool,
    jobs: int | None,
    scheduler: str | None,
) -> None:
    """Run a pipeline over a dataset with progress, render the report and exit with its status."""
    from strokedata.preprocess import preprocess_dataset

    check_outputs(folders={"--out": out})
    resume = "interrupted; every patient folder written is complete: run the command again to resume"
    with (
        library_errors(resume),
        cluster_executor(scheduler, jobs, [dataset, out]),
        render.progress_bar() as progress,
    ):
        report = preprocess_dataset(
            dataset,
            pipeline,
            out,
            parameters=overrides,
            compress=compress,
            jobs=jobs,
            progress=progress,
        )
    render_data.render_preprocess(report)
    raise typer.Exit(EXIT_VALID if report.ok else EXIT_INVALID)


def perfusion(
    dataset: Annotated[Path, typer.Argument(help="Dataset root (only read).")],
    out: Annotated[Path, typer.Option("--out", help="Folder of the new dataset (outside the input).")],
    method: Annotated[
        str | None,
        typer.Option(
            help="Deconvolution: bcsvd (the default: block-circulant SVD, insensitive to a delayed bolus), "
            "osvd (bcSVD with a per-voxel threshold from the oscillation index) or ssvd (standard SVD).",
        ),
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a setting as NAME=VALUE, VALUE in JSON (e.g. spatial_sigma_mm=0, "
            'aif="aif_mask.nii.gz"); repeatable. `strokedata pipelines perfusion` lists them.',
        ),
    ] = None,
    compress: Annotated[
        bool, typer.Option("--compress/--no-compress", help="Write .nii.gz (the default) or .nii.")
    ] = True,
    jobs: Jobs = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Compute perfusion maps from each patient's 4D CTP into a new dataset.

    CBF (ml/100 g/min), CBV (ml/100 g), MTT, TMAX and TTP (s) on the CTP's grid, by deconvolution with
    an automatically selected arterial input function; the method, every parameter and the AIF/VOF are
    recorded in each patient's provenance (docs/perfusion.md). Like preprocess: resumable, the input
    only read, a failing patient reported with the reason. Exit status: 0 all done, 1 some patient
    failed, 2 usage error.
    """
    with option_errors():
        overrides = parse_json_assignments(set_values or [], "--set")
        if method is not None:
            if method not in ("bcsvd", "osvd", "ssvd"):
                raise typer.BadParameter(f"--method '{method}': choose bcsvd, osvd or ssvd")
            if overrides.get("method", method) != method:
                raise typer.BadParameter(f"--method {method} and --set method={overrides['method']} disagree")
            overrides["method"] = method
    _run_pipeline(dataset, "perfusion", out, overrides, compress, jobs, scheduler)


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the `strokedata` app."""
    app.command()(pipelines)
    app.command()(preprocess)
    app.command()(perfusion)
