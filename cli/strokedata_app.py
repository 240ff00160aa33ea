"""The `strokedata` program: dataset commands (validate, schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.app import make_app

app = make_app(
    "strokedata",
    "Validated stroke-imaging datasets: check a dataset folder, export the file schemas.",
)

EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parse_perfusion_max(values: list[str]) -> dict[str, float]:
    """Return {modality: bound} parsed from MODALITY=VALUE strings; raise typer.BadParameter."""
    from strokedata.validation.value_checks import PERFUSION

    allowed = sorted(modality.value for modality in PERFUSION)
    bounds = {}
    for text in values:
        name, _, number = text.partition("=")
        if name.upper() not in allowed:
            raise typer.BadParameter(f"'{text}': the modality must be one of {', '.join(allowed)}")
        try:
            bounds[name.upper()] = float(number)
        except ValueError:
            raise typer.BadParameter(f"'{text}': give MODALITY=NUMBER, for example CBF=1200") from None
    return bounds


@app.command()
def validate(
    dataset: Annotated[Path, typer.Argument(help="Dataset root: the folder holding dataset.json.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON to this file.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Count warnings as errors.")] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores).")
    ] = None,
    affine_tolerance: Annotated[
        float, typer.Option(min=0, help="Largest affine difference (mm) inside a co-registered group.")
    ] = 1e-3,
    max_voxels: Annotated[
        int, typer.Option(min=1, help="Refuse images whose header declares more voxels.")
    ] = 2**31 - 1,
    hu_min: Annotated[float, typer.Option(help="Lowest plausible CT value (HU).")] = -1100.0,
    hu_max: Annotated[float, typer.Option(help="Highest plausible CT value (HU).")] = 4000.0,
    perfusion_max: Annotated[
        list[str] | None,
        typer.Option(help="Upper plausible value of a perfusion map, as MODALITY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Check a dataset folder: manifests, files, geometry, values, labels and leakage.

    Exit status: 0 valid, 1 invalid, 2 usage error. The dataset is only read, never written.
    """
    from pydantic import ValidationError

    from strokedata import StrokedataError
    from strokedata.io import atomic_write_text
    from strokedata.validation import ValidationConfig
    from strokedata.validation import validate as run_validation
    from strokedata.validation.report import PERFUSION_MAXIMA

    if json_out is not None and json_out.resolve().is_relative_to(dataset.resolve()):
        render.error(f"--json {json_out} lies inside the dataset; write the report outside {dataset}")
        raise typer.Exit(EXIT_USAGE)
    try:
        bounds = {modality.value: value for modality, value in PERFUSION_MAXIMA.items()}
        bounds.update(_parse_perfusion_max(perfusion_max or []))
        config = ValidationConfig.model_validate(
            {
                "affine_tolerance": affine_tolerance,
                "max_voxels": max_voxels,
                "hu_range": (hu_min, hu_max),
                "perfusion_max": bounds,
                "strict": strict,
            },
            strict=False,
        )
    except (ValidationError, typer.BadParameter) as problem:
        message = problem.errors()[0]["msg"] if isinstance(problem, ValidationError) else str(problem)
        render.error(f"invalid option: {message}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        with render.progress_bar() as progress:
            report = run_validation(dataset, config, jobs=jobs, progress=progress)
    except StrokedataError as problem:
        render.error(str(problem))
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        render.error("interrupted; nothing was written")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    render.render_report(report)
    if json_out is not None:
        atomic_write_text(json_out, report.model_dump_json(indent=2) + "\n")
    raise typer.Exit(EXIT_VALID if report.valid else EXIT_INVALID)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the JSON Schema files into.")] = Path(
        "schemas"
    ),
) -> None:
    """Export the JSON Schemas of the dataset card, patient manifest and validation report."""
    from strokedata.schemas import export_schemas

    for path in export_schemas(out):
        typer.echo(str(path))


def main() -> None:
    """Run the `strokedata` program."""
    app()
