"""Every model of the zoo keeps the contract of strokemodels.testing (plugins run the same checks)."""

from __future__ import annotations

import pytest

from strokemodels.testing import Check, model_checks

CHECKS = model_checks()


@pytest.mark.parametrize(
    ("name", "check"), CHECKS, ids=[f"{name}-{check.__name__.strip('_')}" for name, check in CHECKS]
)
def test_every_zoo_model_keeps_the_contract(name: str, check: Check) -> None:
    check(name)
