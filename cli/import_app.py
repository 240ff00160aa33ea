"""`strokedata import`: bring another layout (AMI folders, ISLES 2018, ISLES'24, a CSV + NIfTI files) into
the canonical dataset layout. Each command parses, calls strokedata.importers and renders the report.

Exit status: 0 every patient imported (patients left out by --require count as done), 1 some patient
failed or some label spelling could not be mapped, 2 usage error or unusable source / output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import render, render_data
from cli.errors import check_outputs, library_errors, option_errors
from cli.options import parse_names

if TYPE_CHECKING:
    from strokedata.importers import ImportOptions, ImportReport, LabelNormaliser
    from strokedata.manifest import Modality

app = typer.Typer(
    name="import",
    help="Import another layout as a canonical dataset.\n\nAMI folders, ISLES 2018, ISLES'24 or a CSV with "
    "NIfTI files; the source is only read (docs/importers.md).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_DONE, EXIT_PROBLEMS = 0, 1
_RESUME = "interrupted; every patient folder written is complete: run the command again to finish"

Out = Annotated[Path, typer.Option("--out", help="Folder of the new dataset (outside the source).")]
Copy = Annotated[bool, typer.Option("--copy", help="Copy the images instead of linking to them.")]
Link = Annotated[
    bool, typer.Option("--link", help="Hard-link the images (source and --out on one file system).")
]
Require = Annotated[
    list[str] | None,
    typer.Option(
        help="Modalities every patient must have, comma-separated (e.g. NCCT,CTA); the others are left "
        "out and listed in OUT/excluded.csv."
    ),
]
Name = Annotated[str | None, typer.Option(help="Dataset name in dataset.json (default: the layout's).")]
Licence = Annotated[
    str | None, typer.Option("--license", help="Licence in dataset.json (default: the layout's).")
]

_ALIAS_FIELDS = {
    "occlusion_location": "occlusion_location",
    "location": "occlusion_location",
    "occlusion_side": "occlusion_side",
    "side": "occlusion_side",
    "mtici": "mtici",
    "sex": "sex",
}


def _options(
    out: Path, copy: bool, link: bool, require: list[str] | None, name: str | None, licence: str | None
) -> ImportOptions:
    """Return the shared import options, once --out is known to be usable (else exit 2); raise
    typer.BadParameter for --copy with --link or a bad name."""
    from strokedata.importers import ImportOptions
    from strokedata.manifest import Modality

    check_outputs(folders={"--out": out})
    if copy and link:
        raise typer.BadParameter("choose one of --copy and --link (default: symbolic links)")
    names = parse_names(require or [], [m.value for m in Modality], "--require")
    if name is not None and not name.strip():
        raise typer.BadParameter("--name is empty")
    return ImportOptions(
        mode="copy" if copy else "hardlink" if link else "symlink",
        require=[Modality(value) for value in names],
        name=name,
        license=licence,
    )


def _finish(report: ImportReport) -> None:
    """Render the report and exit: 0 when every patient was imported or excluded by request, else 1."""
    render_data.render_import(report)
    raise typer.Exit(EXIT_DONE if report.ok else EXIT_PROBLEMS)


@app.command()
def ami(
    src: Annotated[Path, typer.Argument(help="Folder holding one folder per patient (CTA1.nii, ...).")],
    out: Out,
    copy: Copy = False,
    link: Link = False,
    require: Require = None,
    name: Name = None,
    licence: Licence = None,
) -> None:
    """Import AMI multiphase CTA folders.

    The layout of the AMI-Net report: CTA1, CTA2regA, CTA3regA, <id>_clot, ATLASMASKregA, SpiralregA.
    """
    from dataclasses import replace

    from strokedata.importers import import_ami

    with option_errors():
        options = _options(out, copy, link, require, name, licence)
    with library_errors(_RESUME), render.progress_bar() as progress:
        report = import_ami(src, out, replace(options, progress=progress))
    _finish(report)


@app.command()
def isles2018(
    src: Annotated[Path, typer.Argument(help="Folder holding TRAINING/ and TESTING/ (case_N folders).")],
    out: Out,
    slab_map: Annotated[
        Path | None,
        typer.Option(
            help="CSV with columns case,patient: slabs of one patient get one clinical.scan_group, which "
            "`strokedata split --group-by scan_group` keeps together."
        ),
    ] = None,
    copy: Copy = False,
    link: Link = False,
    require: Require = None,
    name: Name = None,
    licence: Licence = None,
) -> None:
    """Import ISLES 2018 (its SMIR export).

    A (x, y, z, 1, t) CTP is written as a 4D copy; the other files are linked or copied.
    """
    from dataclasses import replace

    from strokedata.importers import import_isles2018

    with option_errors():
        options = _options(out, copy, link, require, name, licence)
    with library_errors(_RESUME), render.progress_bar() as progress:
        report = import_isles2018(src, out, replace(options, progress=progress), slab_map=slab_map)
    _finish(report)


@app.command()
def isles24(
    src: Annotated[Path, typer.Argument(help="Folder holding raw_data/ (or rawdata/) and derivatives/.")],
    out: Out,
    space: Annotated[
        str,
        typer.Option(help="ncct: everything in NCCT space (derivatives); native: the acquired images."),
    ] = "ncct",
    lesion_as_core: Annotated[
        bool,
        typer.Option(help="Import the follow-up lesion mask (final infarct) as CORE (ncct space only)."),
    ] = True,
    copy: Copy = False,
    link: Link = False,
    require: Require = None,
    name: Name = None,
    licence: Licence = None,
) -> None:
    """Import ISLES'24 (BIDS).

    NCCT, CTA, CTP, perfusion maps, lesion mask and phenotype tables.
    """
    from dataclasses import replace

    from strokedata.importers import import_isles24

    with option_errors():
        options = _options(out, copy, link, require, name, licence)
        if space not in ("ncct", "native"):
            raise typer.BadParameter(f"--space '{space}': choose ncct or native")
    with library_errors(_RESUME), render.progress_bar() as progress:
        report = import_isles24(
            src,
            out,
            replace(options, progress=progress),
            space="ncct" if space == "ncct" else "native",
            lesion_as_core=lesion_as_core,
        )
    _finish(report)


def _patterns(texts: list[str]) -> dict[Modality, str]:
    """Return {modality: pattern} from MODALITY=pattern items; raise typer.BadParameter on a bad one."""
    from strokedata.manifest import Modality

    by_upper = {m.value: m for m in Modality}
    patterns: dict[Modality, str] = {}
    for item in texts:
        key, separator, pattern = item.partition("=")
        modality = by_upper.get(key.strip().upper())
        if not separator or modality is None or not pattern.strip():
            raise typer.BadParameter(
                f"--column '{item}': give MODALITY=pattern, MODALITY one of {', '.join(by_upper)}"
            )
        if modality in patterns:
            raise typer.BadParameter(f"--column: {modality.value} is given twice")
        patterns[modality] = pattern.strip()
    return patterns


def _normaliser(aliases: list[str]) -> LabelNormaliser:
    """Return the label normaliser with FIELD:SPELLING=VALUE aliases added; raise typer.BadParameter."""
    from typing import cast

    from strokedata.importers import LabelNormaliser
    from strokedata.importers.normalise import LabelField

    normaliser = LabelNormaliser()
    for item in aliases:
        field, colon, rest = item.partition(":")
        spelling, equals, value = rest.rpartition("=")
        chosen = _ALIAS_FIELDS.get(field.strip().lower())
        if not colon or not equals or chosen is None or not spelling.strip():
            raise typer.BadParameter(
                f"--alias '{item}': give FIELD:SPELLING=VALUE, FIELD one of location, side, mtici, sex"
            )
        try:
            normaliser = normaliser.with_aliases(cast(LabelField, chosen), {spelling: value.strip()})
        except ValueError as problem:
            raise typer.BadParameter(f"--alias '{item}': {problem}") from None
    return normaliser


@app.command()
def table(
    labels_csv: Annotated[Path, typer.Argument(help="CSV with one row per patient (id, labels, clinical).")],
    root: Annotated[Path, typer.Option("--root", help="Folder the image patterns start from.")],
    out: Out,
    column: Annotated[
        list[str],
        typer.Option(
            help="MODALITY=pattern, e.g. CBF={id}/cbf.nii.gz: {COLUMN} is the row's value, glob wildcards "
            "allowed, one file must match (repeatable)."
        ),
    ],
    id_column: Annotated[str, typer.Option(help="Column holding the patient id.")] = "id",
    location_column: Annotated[
        str | None, typer.Option(help="Column of the occlusion site (default: occlusion_location).")
    ] = None,
    side_column: Annotated[
        str | None, typer.Option(help="Column of the occluded side (default: occlusion_side).")
    ] = None,
    mtici_column: Annotated[
        str | None, typer.Option(help="Column of the mTICI grade (default: mtici).")
    ] = None,
    site_column: Annotated[str | None, typer.Option(help="Column of the site (default: site).")] = None,
    clinical: Annotated[
        list[str] | None,
        typer.Option(help="Clinical columns, comma-separated (default: every column not used otherwise)."),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra spelling, FIELD:SPELLING=VALUE, e.g. 'location:carotid top=ICA-T' (repeatable)."
        ),
    ] = None,
    copy: Copy = False,
    link: Link = False,
    require: Require = None,
    name: Name = None,
    licence: Licence = None,
) -> None:
    """Import a CSV with NIfTI files.

    Labels are normalised through documented spellings; unknown spellings are reported, never guessed.
    """
    from dataclasses import replace

    from strokedata.importers import TableColumns, import_table

    with option_errors():
        options = _options(out, copy, link, require, name, licence)
        patterns = _patterns(column)
        normaliser = _normaliser(alias or [])
        columns = TableColumns(
            id=id_column,
            occlusion_location=location_column,
            occlusion_side=side_column,
            mtici=mtici_column,
            site=site_column,
            clinical=None
            if clinical is None
            else [part.strip() for text in clinical for part in text.split(",") if part.strip()],
        )
    with library_errors(_RESUME), render.progress_bar() as progress:
        report = import_table(
            labels_csv,
            root,
            out,
            patterns,
            replace(options, progress=progress),
            columns=columns,
            normaliser=normaliser,
        )
    _finish(report)
