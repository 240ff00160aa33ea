"""The `strokebench` program: benchmark commands (the tasks and scoring arrive with the benchmark)."""

from __future__ import annotations

from cli import render
from cli.app import make_app

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


def main() -> None:
    """Run the `strokebench` program."""
    app()
