"""The `strokedata` program: dataset commands (validate, schema, phantom, show)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from cli import import_app, pipeline_commands, render, render_data
from cli.app import make_app, run
from cli.errors import EXIT_INVALID, EXIT_USAGE, EXIT_VALID, check_outputs, library_errors, option_errors
from cli.options import (
    SchedulerOption,
    cluster_executor,
    parse_assignments,
    parse_json_assignments,
    parse_names,
)

app = make_app(
    "strokedata",
    "Validated stroke-imaging datasets: check a folder (validate), generate phantoms (phantom), show a "
    "patient (show), tabulate patients (table), split them (split), preprocess them for a task (pipelines, "
    "preprocess), compute perfusion maps from the CTP (perfusion), import other layouts (import) and "
    "export the JSON Schemas (schema).",
)


def _inside(path: Path, folder: Path) -> bool:
    """Return True when ``path`` would be written inside ``folder``."""
    return path.resolve().is_relative_to(folder.resolve())


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
    split: Annotated[Path | None, typer.Option("--split", help="Also check this split file.")] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Check a dataset: manifests, files, geometry, values.

    Manifests, files, geometry, voxel values, labels and leakage between patients, each finding with a
    stable code (docs/validation.md).

    Exit status: 0 valid, 1 invalid, 2 usage error. The dataset is only read, never written.
    """
    from strokedata.io import atomic_write_text
    from strokedata.validation import ValidationConfig
    from strokedata.validation import validate as run_validation
    from strokedata.validation.report import PERFUSION_MAXIMA

    if json_out is not None and _inside(json_out, dataset):
        render.error(f"--json {json_out} lies inside the dataset; write the report outside {dataset}")
        raise typer.Exit(EXIT_USAGE)
    check_outputs({"--json": json_out})
    with option_errors():
        bounds = {modality.value: value for modality, value in PERFUSION_MAXIMA.items()}
        bounds.update(parse_assignments(perfusion_max or [], sorted(bounds), "--perfusion-max"))
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
    with (
        library_errors(),
        cluster_executor(scheduler, jobs, [dataset]),
        render.progress_bar() as progress,
    ):
        report = run_validation(dataset, config, split=split, jobs=jobs, progress=progress)
    if json_out is not None:
        with library_errors():
            atomic_write_text(json_out, report.model_dump_json(indent=2) + "\n")
    render_data.render_report(report)
    raise typer.Exit(EXIT_VALID if report.valid else EXIT_INVALID)


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the JSON Schema files into.")] = Path(
        "schemas"
    ),
) -> None:
    """Export the JSON Schemas of the dataset files.

    The dataset card, the patient manifest, the split file and the validation report.
    """
    from strokedata.schemas import export_schemas

    check_outputs(folders={"--out": out})
    with library_errors():
        written = export_schemas(out)
    for path in written:
        typer.echo(str(path))


@app.command(name="split")
def split_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset root.")],
    stratify: Annotated[
        list[str] | None,
        typer.Option(
            help="Stratify key (repeatable; several combine): occlusion, side, mtici, "
            "recanalization, regions, site."
        ),
    ] = None,
    test_size: Annotated[
        float, typer.Option(min=0, max=0.95, help="Held-out test fraction (0: none).")
    ] = 0.15,
    folds: Annotated[int | None, typer.Option(min=2, help="k-fold cross-validation over the rest.")] = None,
    val_size: Annotated[
        float | None, typer.Option(min=0.01, max=0.95, help="Hold-out validation fraction of the rest.")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option(help="'site' or a clinical field: a group never straddles partitions.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed gives the same split.")] = 0,
    missing: Annotated[
        str, typer.Option(help="Patients lacking a stratify label: error, exclude or own-stratum.")
    ] = "error",
    extend: Annotated[
        Path | None, typer.Option(help="Existing split file: keep its assignments, place new patients only.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Split file to write (JSON).")] = Path("splits.json"),
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write rows patient_id,partition,fold.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes for derived labels.")
    ] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Split a dataset reproducibly into partitions.

    Stratified, grouped or multi-label, a test set and k folds or a validation set; see docs/splits.md.
    """
    from strokedata.splits import extend_split, make_split, read_split, write_split
    from strokedata.splits.model import Missing

    for target in (out, csv_out):
        if target is not None and _inside(target, dataset):
            render.error(f"{target} lies inside the dataset; write the split outside {dataset}")
            raise typer.Exit(EXIT_USAGE)
    check_outputs({"--out": out, "--csv": csv_out})
    with option_errors():
        if missing not in get_args(Missing):
            raise typer.BadParameter(f"--missing '{missing}': choose error, exclude or own-stratum")
        missing_rule = cast(Missing, missing)
        if extend is None and not stratify:
            raise typer.BadParameter("give at least one --stratify key (for example --stratify occlusion)")
        if extend is None and folds is None and val_size is None:
            folds = 5
    with library_errors(), cluster_executor(scheduler, jobs, [dataset]):
        if extend is not None:
            split, report = extend_split(dataset, read_split(extend), jobs=jobs)
        else:
            with option_errors():
                split, report = make_split(
                    dataset,
                    stratify or [],
                    test_size=test_size,
                    folds=folds,
                    val_size=val_size,
                    group_by=group_by,
                    seed=seed,
                    missing=missing_rule,
                    jobs=jobs,
                )
        write_split(split, out, csv_out)
    render_data.render_split(split, report)
    render.plain(f"wrote {out}" + (f" and {csv_out}" if csv_out else ""))


@app.command()
def phantom(
    out: Annotated[Path, typer.Option("--out", help="New or empty folder to write the dataset into.")],
    n: Annotated[int, typer.Option("-n", "--patients", min=1, help="Number of patients.")],
    seed: Annotated[int, typer.Option(min=0, help="Cohort seed: patient i depends on (seed, i) only.")] = 0,
    preset_name: Annotated[
        str,
        typer.Option(
            "--preset",
            help="tiny (64x64x16, for tests), realistic (the papers' sizes; about 3 GB of memory and "
            "45 s per patient being generated, per worker) or digital (a Kudo 2013-style CTP phantom of "
            "blocks sweeping CBV, MTT and delay).",
        ),
    ] = "tiny",
    occlusion_mix: Annotated[
        str | None,
        typer.Option(
            help="Each patient's chance of each site, e.g. ICA-T=0.148,M1=0.588,M2=0.264 (the default): "
            "drawn per patient, so counts vary around it (docs/phantoms.md says why).",
        ),
    ] = None,
    modalities: Annotated[
        list[str] | None,
        typer.Option(help="Modalities to write, comma-separated or repeated (default: all)."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores).")
    ] = None,
    ctp_options: Annotated[
        list[str] | None,
        typer.Option(
            "--ctp",
            help="A CTP option as NAME=VALUE (JSON): noise_hu, bolus_delay, dispersion (s), residue "
            '("exponential", "box", "triangular"), arterial_partial_volume, delays (digital); repeatable. '
            "Defaults keep the phantom as before (docs/phantoms.md).",
        ),
    ] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Generate synthetic stroke phantoms as a dataset.

    Every modality, labels coherent with the images, no patient data (docs/phantoms.md). The realistic
    preset (the papers' sizes) needs about 3 GB of memory per patient being generated.
    """
    from strokedata.manifest import OCCLUSION_LOCATIONS, Modality
    from strokedata.phantoms import generate_dataset, preset

    with option_errors():
        overrides: dict[str, object] = {}
        if occlusion_mix is not None:
            overrides["occlusion_mix"] = parse_assignments(
                [occlusion_mix], list(OCCLUSION_LOCATIONS), "--occlusion-mix"
            )
        if modalities:
            overrides["modalities"] = parse_names(modalities, [m.value for m in Modality], "--modalities")
        if preset_name not in ("tiny", "realistic", "digital"):
            raise typer.BadParameter(f"--preset '{preset_name}': choose tiny, realistic or digital")
        if ctp_options:
            overrides["ctp"] = parse_json_assignments(ctp_options, "--ctp")
        config = preset(preset_name, **overrides)  # type: ignore[arg-type]
    check_outputs(folders={"--out": out})
    partial = f"interrupted; {out} holds only part of the dataset: delete it"
    with (
        library_errors(partial),
        cluster_executor(scheduler, jobs, [out]),
        render.progress_bar() as progress,
    ):
        root = generate_dataset(out, n, config, seed=seed, jobs=jobs, progress=progress)
    render.plain(f"wrote {n} phantom patients ({config.preset}, seed {seed}) to {root}")


@app.command()
def show(
    dataset: Annotated[Path, typer.Argument(help="Dataset root.")],
    patient_id: Annotated[str, typer.Argument(help="The patient to show.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="PNG file to write (default: PATIENT_ID.png).")
    ] = None,
    slices: Annotated[int, typer.Option(min=1, max=12, help="Axial slices per image.")] = 4,
    neurological: Annotated[
        bool,
        typer.Option(
            "--neurological",
            help="Show the patient's right on the image's right (default: radiological, right on the left).",
        ),
    ] = False,
) -> None:
    """Draw one patient as a PNG montage.

    Slices of each image, label outlines with a legend, the atlas territories named, L and R marked,
    the labels in the title; radiological convention unless --neurological.
    """
    from strokedata.show import render_patient

    target = out if out is not None else Path(f"{patient_id}.png")
    if _inside(target, dataset):
        render.error(f"--out {target} lies inside the dataset; write the picture outside {dataset}")
        raise typer.Exit(EXIT_USAGE)
    check_outputs({"--out": target})
    with library_errors():
        path = render_patient(
            dataset,
            patient_id,
            target,
            slices=slices,
            convention="neurological" if neurological else "radiological",
        )
    render.plain(f"wrote {path}")


@app.command()
def table(
    dataset: Annotated[Path, typer.Argument(help="Dataset root.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the table to a .csv or .parquet file (outside the dataset)."),
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Tabulate patients: labels, derived labels, geometry.

    One row per patient: manifest fields, derived labels, clinical scalars, image shapes and spacings. A
    summary on the terminal; every column with --out (CSV or Parquet).
    """
    from strokedata.io import atomic_write_bytes
    from strokedata.table import dataset_table, table_bytes

    if out is not None and out.suffix not in (".csv", ".parquet"):
        render.error(f"--out {out}: write a .csv or a .parquet file")
        raise typer.Exit(EXIT_USAGE)
    if out is not None and _inside(out, dataset):
        render.error(f"--out {out} lies inside the dataset; write the table outside {dataset}")
        raise typer.Exit(EXIT_USAGE)
    check_outputs({"--out": out})
    with (
        library_errors(),
        cluster_executor(scheduler, jobs, [dataset]),
        render.progress_bar() as progress,
    ):
        frame = dataset_table(dataset, jobs=jobs, progress=progress)
        payload = None if out is None else table_bytes(frame, out.suffix)
    if out is None or payload is None:
        render_data.render_dataset_table(frame)
        return
    with library_errors():
        atomic_write_bytes(out, payload)
    render.note(f"wrote {len(frame)} rows and {len(frame.columns)} columns to {out}")


pipeline_commands.register(app)
app.add_typer(import_app.app, name="import")


def main() -> None:
    """Run the `strokedata` program."""
    run(app)
