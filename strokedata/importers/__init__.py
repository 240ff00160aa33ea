"""Importers: other people's folder layouts -> the canonical dataset layout (``strokedata import``).

One module per layout reads the source into a ``Scan`` (``scan_ami``, ``scan_isles2018``,
``scan_isles24``, ``scan_table``); ``run_import`` writes it: ``dataset.json``, one ``patient.json`` per
patient and the images as relative symbolic links to the source files (or copies, or hard links), each
patient folder atomically, nothing rewritten when unchanged, the source only read. docs/importers.md
describes every layout's mapping and the guarantees.
"""

from strokedata.importers.ami import import_ami, scan_ami
from strokedata.importers.isles24 import import_isles24, scan_isles24
from strokedata.importers.isles2018 import import_isles2018, read_slab_map, scan_isles2018
from strokedata.importers.normalise import LabelNormaliser, UnknownSpelling
from strokedata.importers.report import (
    IMPORT_MODES,
    ImporterError,
    ImportMode,
    ImportNote,
    ImportOptions,
    ImportReport,
    LabelProblem,
    PatientOutcome,
    PatientSource,
    Scan,
)
from strokedata.importers.table import TableColumns, import_table, scan_table
from strokedata.importers.writer import EXCLUDED_CSV, run_import

__all__ = [
    "EXCLUDED_CSV",
    "IMPORT_MODES",
    "ImportMode",
    "ImportNote",
    "ImportOptions",
    "ImportReport",
    "ImporterError",
    "LabelNormaliser",
    "LabelProblem",
    "PatientOutcome",
    "PatientSource",
    "Scan",
    "TableColumns",
    "UnknownSpelling",
    "import_ami",
    "import_isles24",
    "import_isles2018",
    "import_table",
    "read_slab_map",
    "run_import",
    "scan_ami",
    "scan_isles24",
    "scan_isles2018",
    "scan_table",
]
