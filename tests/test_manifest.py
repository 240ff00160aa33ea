"""The manifest models: JSON round trips, strictness, path safety; random invalid input never raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from strokedata.manifest import (
    MTICI_GRADES,
    OCCLUSION_LOCATIONS,
    DatasetCard,
    Labels,
    Modality,
    PatientManifest,
    Provenance,
)
from strokedata.validation import CODES
from strokedata.validation.manifest_checks import plan_patient

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
file_names = st.from_regex(r"[a-z0-9_]{1,12}(/[a-z0-9_]{1,8})?\.nii(\.gz)?", fullmatch=True)
clinical_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=10),
    st.floats(allow_nan=False, allow_infinity=False),
)
labels = st.builds(
    Labels,
    occlusion_location=st.none() | st.sampled_from(OCCLUSION_LOCATIONS),
    occlusion_side=st.none() | st.sampled_from(["L", "R"]),
    mtici=st.none() | st.sampled_from(MTICI_GRADES),
    regions=st.none() | st.lists(st.sampled_from([0, 1]), min_size=15, max_size=15),
)
manifests = st.builds(
    PatientManifest,
    patient_id=ids,
    site=st.none() | st.text(min_size=1, max_size=8),
    images=st.dictionaries(st.sampled_from(list(Modality)), file_names, max_size=6),
    labels=labels,
    clinical=st.dictionaries(st.from_regex(r"x[a-z0-9_]{0,8}", fullmatch=True), clinical_values, max_size=4),
    provenance=st.builds(
        Provenance,
        source=st.none() | st.text(max_size=8),
        original_ids=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    ),
)


@given(manifests)
def test_manifest_round_trips_through_json(manifest: PatientManifest) -> None:
    assert PatientManifest.model_validate_json(manifest.model_dump_json()) == manifest


@given(
    st.builds(
        DatasetCard,
        name=st.text(min_size=1, max_size=8),
        version=st.just("1"),
        license=st.just("CC0-1.0"),
        modalities=st.lists(st.sampled_from(list(Modality)), unique=True),
    )
)
def test_card_round_trips_through_json(card: DatasetCard) -> None:
    assert DatasetCard.model_validate_json(card.model_dump_json()) == card


def _minimal(**changes: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"patient_id": "p1", "images": {"CTA": "cta.nii.gz"}}
    content.update(changes)
    return content


@pytest.mark.parametrize(
    "changes",
    [
        {"unknown": 1},
        {"patient_id": "../p1"},
        {"patient_id": "p 1"},
        {"patient_id": ""},
        {"images": {"CTA": "/abs/cta.nii.gz"}},
        {"images": {"CTA": "../other/cta.nii.gz"}},
        {"images": {"CTA": "a\\cta.nii.gz"}},
        {"images": {"CTA": "cta.mha"}},
        {"images": {"PET": "pet.nii.gz"}},
        {"labels": {"mtici": 3}},
        {"labels": {"mtici": "2d"}},
        {"labels": {"occlusion_location": "M3"}},
        {"labels": {"regions": [0, 1]}},
        {"labels": {"regions": [2] * 15}},
        {"labels": {"extra": True}},
        {"clinical": {"Age": 50}},
        {"clinical": {"age": 150}},
        {"clinical": {"sex": "female"}},
        {"provenance": {"tool": "x"}},
    ],
)
def test_invalid_manifests_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PatientManifest.model_validate_json(json.dumps(_minimal(**changes)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """Valid-looking manifests with one random key replaced, added or removed."""
    keys = st.sampled_from(["patient_id", "site", "images", "labels", "clinical", "provenance", "other"])
    base = {
        "patient_id": "p1",
        "site": "a",
        "images": {"CTA": "cta.nii.gz"},
        "labels": {"mtici": "2b"},
        "clinical": {"age": 60},
        "provenance": {},
    }
    return st.builds(lambda key, value: {**base, key: value}, keys, json_values)


@given(
    st.one_of(
        json_values.map(json.dumps),
        _mutations().map(json.dumps),
        st.text(max_size=60),
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    )
)
def test_random_manifests_yield_findings_never_exceptions(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    root = tmp_path_factory.mktemp("random")
    (root / "p1").mkdir()
    (root / "p1" / "patient.json").write_text(text, encoding="utf-8")
    plan = plan_patient(root, "p1", None)
    assert all(finding.code in CODES for finding in plan.findings)
    assert all(finding.patient_id == "p1" for finding in plan.findings)
    if plan.manifest is None:
        assert any(finding.severity == "error" for finding in plan.findings)


def test_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "patient.json").write_text('{\n  "patient_id": "p1",\n  "images": {,}\n}')
    [finding] = plan_patient(tmp_path, "p1", None).findings
    assert finding.code == "M002"
    assert "line 3, column 14" in finding.message
    assert finding.file == "p1/patient.json"
