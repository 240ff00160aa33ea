"""User-supplied text made safe to print: control characters shown as escapes, never sent to a terminal.

A patient folder, a path, a site or a clinical string comes from someone else's files. Printed as it
is, a newline in it forges extra lines in a CI log (a fake "VALID" line), and an escape sequence
recolours or rewrites the terminal. ``printable`` writes every such character as its Python escape.
"""

from __future__ import annotations


def _escaped(char: str) -> str:
    """Return a character as its Python escape ('\\n', '\\x1b', '\\u202e')."""
    return char.encode("unicode_escape").decode("ascii")


def printable(text: str, keep_newlines: bool = False) -> str:
    """Return ``text`` with every non-printable character (controls such as NUL, newline, ESC and DEL,
    bidirectional overrides, other format characters) written as its escape; spaces stay, and so do
    newlines when ``keep_newlines`` (for multi-line messages composed by the toolkit itself)."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or char == " " or (keep_newlines and char == "\n") else _escaped(char)
        for char in text
    )
