"""Spellings of labels and clinical values in other people's tables, mapped onto the toolkit's vocabulary.

Every mapping is an explicit table (``LOCATION_SPELLINGS``, ``SIDE_SPELLINGS``, ``MTICI_SPELLINGS``,
``SEX_SPELLINGS``): a spelling is compared after ``spelling_key`` (lower case; runs of spaces, hyphens,
underscores, dots, slashes, commas and brackets become one space), so "ICA-T", "ica_t" and " ICA  T " are
one spelling. A value that matches no entry raises ``UnknownSpelling``: it is reported, never guessed.
Empty cells and the tokens of ``MISSING`` ("NA", "unknown", "-", ...) mean unknown (None).

Extend a mapping for one run with ``LabelNormaliser.with_aliases`` (the CLI's ``--alias``), or for good by
adding spellings to the tables here. Values used but deliberately absent: plain "ICA" (cervical, petrous
or terminal?), "MCA" (which segment?), "TICI 2" (2a or 2b?).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, cast

from strokedata.manifest import (
    MTICI,
    MTICI_GRADES,
    OCCLUSION_LOCATIONS,
    OCCLUSION_SIDES,
    OcclusionLocation,
    OcclusionSide,
)

K = TypeVar("K", bound=str)

LabelField = Literal["occlusion_location", "occlusion_side", "mtici", "sex"]
"""The fields whose spellings are normalised."""

_SEPARATORS = re.compile(r"[\s\-_./,;:()\[\]]+")

MISSING = frozenset({"", "na", "n a", "nan", "none", "null", "unknown", "unk", "not available", "nd", "?"})
"""Spellings (after spelling_key) that mean 'unknown': the label is left unset and nothing is reported."""

LOCATION_SPELLINGS: dict[OcclusionLocation, tuple[str, ...]] = {
    "ICA-T": (
        "ICA-T",
        "ICAT",
        "ICA T",
        "ICA terminus",
        "ICA terminal",
        "terminal ICA",
        "ICA-T occlusion",
        "ICA bifurcation",
        "carotid T",
        "carotid terminus",
        "T occlusion",
        "carotid T occlusion",
    ),
    "M1": ("M1", "M1 segment", "MCA M1", "M1 MCA", "MCA M1 segment", "M1 occlusion", "M1 MCA occlusion"),
    "M2": ("M2", "M2 segment", "MCA M2", "M2 MCA", "MCA M2 segment", "M2 occlusion", "M2 MCA occlusion"),
}
"""Occlusion site -> the spellings accepted for it."""

SIDE_SPELLINGS: dict[OcclusionSide, tuple[str, ...]] = {
    "L": ("L", "left", "lt", "left side", "left hemisphere", "links", "li", "sinister"),
    "R": ("R", "right", "rt", "right side", "right hemisphere", "rechts", "re", "dexter"),
}
"""Occluded hemisphere -> the spellings accepted for it (English, and German 'links' / 'rechts')."""

MTICI_SPELLINGS: dict[MTICI, tuple[str, ...]] = {
    "0": ("0", "0.0", "TICI 0", "mTICI 0", "grade 0"),
    "1": ("1", "1.0", "TICI 1", "mTICI 1", "grade 1"),
    "2a": ("2a", "TICI 2a", "mTICI 2a", "grade 2a"),
    "2b": ("2b", "TICI 2b", "mTICI 2b", "grade 2b", "eTICI 2b50", "eTICI 2b67", "2b50", "2b67"),
    "2c": ("2c", "TICI 2c", "mTICI 2c", "grade 2c", "eTICI 2c"),
    "3": ("3", "3.0", "TICI 3", "mTICI 3", "grade 3", "eTICI 3"),
}
"""mTICI grade -> the spellings accepted for it; eTICI 2b50 and 2b67 both lie within mTICI 2b (50-89%)."""

SEX_SPELLINGS: dict[str, tuple[str, ...]] = {
    "F": ("F", "female", "woman", "w", "weiblich"),
    "M": ("M", "male", "man", "maennlich", "männlich"),
    "other": ("other", "diverse", "divers", "x"),
}
"""clinical 'sex' value -> the spellings accepted for it."""


class UnknownSpelling(ValueError):
    """A value matches no spelling of its field's mapping."""

    def __init__(self, label: str, value: str) -> None:
        super().__init__(f"{label} '{value}' is not a known spelling")
        self.label = label
        self.value = value


def spelling_key(text: str) -> str:
    """Return ``text`` as compared with the tables: lower case, separators collapsed to single spaces.

    >>> spelling_key("  ICA-T "), spelling_key("m1_Segment"), spelling_key("TICI(2c)")
    ('ica t', 'm1 segment', 'tici 2c')
    """
    return _SEPARATORS.sub(" ", text.strip().lower()).strip()


def _index(spellings: Mapping[K, tuple[str, ...]]) -> dict[str, str]:
    """Return {spelling_key(spelling): value} of a spelling table."""
    table: dict[str, str] = {}
    for value, variants in spellings.items():
        for variant in (str(value), *variants):
            table[spelling_key(variant)] = value
    return table


def _mtici_key(text: str) -> str:
    """Return the key of an mTICI spelling: no separators, no 'mTICI' / 'TICI' / 'eTICI' / 'grade' prefix
    ('TICI 2 c', 'mTICI2C' and '2c' all become '2c')."""
    key = spelling_key(text).replace(" ", "")
    for prefix in ("etici", "mtici", "tici", "grade"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


@dataclass(frozen=True)
class LabelNormaliser:
    """Spelling -> value tables of each field; ``with_aliases`` returns a copy with more spellings."""

    locations: Mapping[str, str] = field(default_factory=lambda: _index(LOCATION_SPELLINGS))
    sides: Mapping[str, str] = field(default_factory=lambda: _index(SIDE_SPELLINGS))
    mtici_grades: Mapping[str, str] = field(
        default_factory=lambda: {_mtici_key(k): v for k, v in _index(MTICI_SPELLINGS).items()}
    )
    sexes: Mapping[str, str] = field(default_factory=lambda: _index(SEX_SPELLINGS))

    def with_aliases(self, label: LabelField, aliases: Mapping[str, str]) -> LabelNormaliser:
        """Return a normaliser that also maps each spelling of ``aliases`` to its value.

        Raises ValueError when a value is not in the field's vocabulary.
        """
        allowed: dict[LabelField, tuple[str, ...]] = {
            "occlusion_location": OCCLUSION_LOCATIONS,
            "occlusion_side": OCCLUSION_SIDES,
            "mtici": MTICI_GRADES,
            "sex": tuple(SEX_SPELLINGS),
        }
        for spelling, value in aliases.items():
            if value not in allowed[label]:
                raise ValueError(
                    f"alias '{spelling}' -> '{value}': {label} must be one of {', '.join(allowed[label])}"
                )
        if label == "mtici":
            return replace(
                self, mtici_grades={**self.mtici_grades, **{_mtici_key(k): v for k, v in aliases.items()}}
            )
        extra = {spelling_key(k): v for k, v in aliases.items()}
        attribute = {"occlusion_location": "locations", "occlusion_side": "sides", "sex": "sexes"}[label]
        return replace(self, **{attribute: {**getattr(self, attribute), **extra}})

    def location(self, text: str) -> OcclusionLocation | None:
        """Return the occlusion site ``text`` spells, None when it means unknown; raise UnknownSpelling."""
        key = spelling_key(text)
        if key in MISSING:
            return None
        if key not in self.locations:
            raise UnknownSpelling("occlusion_location", text)
        return cast(OcclusionLocation, self.locations[key])

    def side(self, text: str) -> OcclusionSide | None:
        """Return the hemisphere ``text`` spells, None when it means unknown; raise UnknownSpelling."""
        key = spelling_key(text)
        if key in MISSING:
            return None
        if key not in self.sides:
            raise UnknownSpelling("occlusion_side", text)
        return cast(OcclusionSide, self.sides[key])

    def occlusion(self, text: str) -> tuple[OcclusionLocation | None, OcclusionSide | None]:
        """Return (site, side) of a site spelling that may carry the side first or last ("left M1",
        "ICA-T (R)", "L-M2"); the side is None when the text names none. Raises UnknownSpelling."""
        key = spelling_key(text)
        if key in MISSING:
            return None, None
        if key in self.locations:
            return cast(OcclusionLocation, self.locations[key]), None
        words = key.split(" ")
        for side_words, rest in ((words[:1], words[1:]), (words[-1:], words[:-1])):
            side_key, rest_key = " ".join(side_words), " ".join(rest)
            if rest and side_key in self.sides and rest_key in self.locations:
                location = cast(OcclusionLocation, self.locations[rest_key])
                return location, cast(OcclusionSide, self.sides[side_key])
        raise UnknownSpelling("occlusion_location", text)

    def mtici(self, text: str) -> MTICI | None:
        """Return the mTICI grade ``text`` spells, None when it means unknown; raise UnknownSpelling."""
        if spelling_key(text) in MISSING:
            return None
        key = _mtici_key(text)
        if key not in self.mtici_grades:
            raise UnknownSpelling("mtici", text)
        return cast(MTICI, self.mtici_grades[key])

    def sex(self, text: str) -> str | None:
        """Return 'F', 'M' or 'other' for a spelling of sex, None when unknown; raise UnknownSpelling."""
        key = spelling_key(text)
        if key in MISSING:
            return None
        if key not in self.sexes:
            raise UnknownSpelling("sex", text)
        return self.sexes[key]


_INTEGER = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}


def clinical_value(text: str) -> int | float | bool | str | None:
    """Return a table cell as a clinical value: None when missing, else an int, a float, a bool
    (true/false/yes/no) or the stripped text.

    >>> [clinical_value(t) for t in ("", "NA", "71", "7.5", "yes", "TNK")]
    [None, None, 71, 7.5, True, 'TNK']
    """
    stripped = text.strip()
    key = spelling_key(stripped)
    if key in MISSING:
        return None
    if _INTEGER.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped):
        return float(stripped)
    if key in _BOOLEANS:
        return _BOOLEANS[key]
    return stripped


def clinical_key(name: str) -> str:
    """Return a column name as a clinical key: snake_case, a letter first, at most 64 characters.

    >>> clinical_key("NIHSS at admission"), clinical_key("mRS 3 months"), clinical_key("3-month mRS")
    ('nihss_at_admission', 'mrs_3_months', 'c_3_month_mrs')
    """
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"c_{key}".rstrip("_")
    return key[:64]
