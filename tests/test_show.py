"""`strokedata show`: distinct slices with the clot among them, the patient's sides where the convention
puts them, every outline colour and territory named, and a title a reader can parse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.strokedata_app import app
from strokedata.manifest import Modality
from strokedata.show import _load_rows, _oriented, _read_manifest, choose_slices, render_patient, title

runner = CliRunner()


@given(depth=st.integers(1, 60), count=st.integers(1, 12), clot_at=st.none() | st.integers(0, 59))
def test_slices_are_distinct_as_many_as_possible_and_hold_the_clot(
    depth: int, count: int, clot_at: int | None
) -> None:
    clot = None
    if clot_at is not None and clot_at < depth:
        clot = np.zeros((4, 4, depth), np.uint8)
        clot[1, 1, clot_at] = 1
    chosen = choose_slices(depth, clot, count)
    assert chosen == sorted(set(chosen)) and len(chosen) == min(count, depth)
    assert all(0 <= z < depth for z in chosen)
    if clot is not None:
        assert clot_at in chosen


def test_the_patients_left_is_on_the_image_right_in_radiological_convention() -> None:
    section = np.zeros((5, 3))  # (x, y) in RAS: x = 0 is the patient's far left
    section[0, 1] = 1
    radiological, neurological = _oriented(section, "radiological"), _oriented(section, "neurological")
    assert radiological.shape == (3, 5)
    assert np.argwhere(radiological)[0].tolist() == [1, 4]  # last column: the image's right
    assert np.argwhere(neurological)[0].tolist() == [1, 0]


def test_the_title_names_site_occlusion_grade_clot_territories_and_convention(pristine_dataset: Path) -> None:
    folder = pristine_dataset / "p001"
    manifest = _read_manifest(folder, "p001")
    images = _load_rows(folder, manifest, 3)
    text = title(manifest, images, [f"R_{i}" for i in range(15)], "radiological")
    assert text.splitlines()[0] == "p001  |  site: site1  |  M1 occlusion, right  |  mTICI 1"
    assert text.splitlines()[1].startswith("clot in: R ")
    assert "radiological convention" in text.splitlines()[2]
    assert {len(image.sections) for m, image in images.items() if m is not Modality.CTP} == {3}


def test_show_draws_every_row_and_refuses_bad_ids(pristine_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "p001.png"
    for flag in ([], ["--neurological"]):
        arguments = ["show", str(pristine_dataset), "p001", "--out", str(out), "--slices", "2", *flag]
        result = runner.invoke(app, arguments)
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in ("../p001", "p001/../p002"):
        result = runner.invoke(app, ["show", str(pristine_dataset), bad, "--out", str(out)])
        assert result.exit_code == 2 and "not a patient id" in result.output
    with pytest.raises(Exception, match="convention"):
        render_patient(pristine_dataset, "p001", out, convention="sideways")  # type: ignore[arg-type]
