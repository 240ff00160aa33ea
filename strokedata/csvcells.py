"""CSV files a spreadsheet cannot turn against its user (CSV or formula injection).

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets when the file is opened. Every CSV the toolkit writes prefixes
such a cell with an apostrophe (the usual neutralisation, OWASP's advice), which spreadsheets show as
text; a cell that already begins with an apostrophe gets a second one, so that ``restore`` gives back
exactly the original text. Numbers (``-3.5``, ``+1e-3``) are left as they are: they are not formulas.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise(cell: str) -> str:
    """Return ``cell`` as written to a CSV file: with a leading apostrophe when a spreadsheet would run
    it as a formula (or when it already starts with an apostrophe), unchanged otherwise."""
    if cell[:1] == "'" or (cell[:1] in TRIGGERS and not _NUMBER.match(cell)):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """Return the original text of a cell read from a CSV file the toolkit wrote (``neutralise``
    undone); any other cell comes back unchanged."""
    if cell[:1] == "'" and neutralise(cell[1:]) == cell:
        return cell[1:]
    return cell


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Return CSV text (``\\n`` line ends) of a header and rows, every text cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow([neutralise(cell) if isinstance(cell, str) else cell for cell in row])
    return buffer.getvalue()
