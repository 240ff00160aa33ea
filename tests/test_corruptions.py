"""Every check, injected alone into a clean dataset, yields exactly its own code; a clean one yields none."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from strokedata import validate
from strokedata.validation import CODES
from tests.builders import save
from tests.corruptions import CORRUPTIONS, VARIANTS, load

CASES = [(code, corrupt) for code, corrupt in CORRUPTIONS.items()] + [
    (code, corrupt) for code, corrupts in VARIANTS.items() for corrupt in corrupts
]


def test_clean_dataset_has_no_findings(pristine_dataset: Path) -> None:
    report = validate(pristine_dataset, jobs=1)
    assert report.findings == []
    assert report.valid and report.n_patients == 4 and report.n_images == 60
    assert report.image_bytes > 0


def test_every_code_has_an_injected_corruption() -> None:
    assert set(CORRUPTIONS) == set(CODES)


@pytest.mark.parametrize(("code", "corrupt"), CASES, ids=[f"{code}-{i}" for i, (code, _) in enumerate(CASES)])
def test_injected_corruption_yields_exactly_its_code(
    dataset: Path, code: str, corrupt: Callable[[Path], None]
) -> None:
    if code == "F009" and os.geteuid() == 0:
        pytest.skip("root reads every folder: tests/test_hostile_inputs.py drops privileges for F009")
    corrupt(dataset)
    split = dataset.parent / "split.json"
    report = validate(dataset, jobs=1, split=split if split.exists() else None)
    assert report.codes() == {code}, [f"{f.code} {f.file}: {f.message}" for f in report.findings]
    finding = report.findings[0]
    assert finding.severity == CODES[code].severity
    assert finding.message.endswith(CODES[code].fix)
    assert report.valid == (CODES[code].severity == "warning")


def test_nan_in_a_float_label_map_is_reported_once(dataset: Path) -> None:
    path = dataset / "p001" / "atlas.nii.gz"
    data, affine = load(path)
    data = data.astype(np.float32)
    data[0, 0, 0] = np.nan
    save(path, data, affine)
    assert [f.code for f in validate(dataset, jobs=1).findings] == ["V001"]
