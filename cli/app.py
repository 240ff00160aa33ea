"""The one way both programs are built: a typer app with the shared options (--version).

No `from __future__ import annotations` here: typer evaluates the closure's annotations at run time.
"""

from typing import Annotated

import typer


def _usage_names() -> None:
    """Show arguments in usage lines as DATASET (required) and [DATASET] (optional), as most command-line
    tools do; typer writes a required one as {dataset}, which reads as a set of choices."""
    from typer.core import TyperArgument

    def usage_name(self: TyperArgument) -> str:
        name = (self.metavar or self.name or "").upper()
        shown = name if self.required else f"[{name}]"
        return shown + ("..." if self.nargs != 1 else "")

    if hasattr(TyperArgument, "_usage_display_name"):  # typer >= 0.2x; older ones print NAME already
        setattr(TyperArgument, "_usage_display_name", usage_name)  # noqa: B010 (a method, replaced)


def make_app(program: str, help_text: str) -> typer.Typer:
    """Return a typer app for ``program`` with ``--version``, no shell-completion commands and plain help
    text (it wraps at any width without cutting values, and shows no <bool> beside flags)."""
    _usage_names()
    app = typer.Typer(
        name=program,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    def show_version(value: bool) -> None:
        if value:
            from strokedata import __version__

            typer.echo(f"{program} {__version__}")
            raise typer.Exit()

    @app.callback(help=help_text)
    def options(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=show_version, is_eager=True, help="Print the version and exit."
            ),
        ] = False,
    ) -> None:
        """Apply the options shared by every command."""

    return app


def run(app: typer.Typer) -> None:
    """Run ``app``; Ctrl-C outside a command's own handling (while starting up) exits 130 quietly."""
    import sys

    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
