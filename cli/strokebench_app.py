"""The `strokebench` program: benchmark commands (the tasks and scoring arrive with the benchmark)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render

app = typer.Typer(
    name="strokebench",
    help="Stroke-imaging benchmarks: tasks, scoring and leaderboards against published baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from strokedata import __version__

        typer.echo(f"strokebench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Stroke-imaging benchmarks."""


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


def main() -> None:
    """Run the `strokebench` program."""
    app()
