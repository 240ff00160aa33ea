"""The direction of imports: cli -> strokemodels -> strokedata; only cli imports typer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FORBIDDEN = {
    "strokedata": {"strokemodels", "cli", "typer", "torch"},
    "strokemodels": {"cli", "typer"},
    "cli": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_architecture(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offences = {str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package]) for path in files}
    assert {name: bad for name, bad in offences.items() if bad} == {}


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import typer\nfrom strokemodels.zoo import x\n")
    assert _imports(module) >= {"typer", "strokemodels"}


def test_every_package_is_installed_by_a_regular_install() -> None:
    """pyproject.toml lists its packages by name: a folder missing there works in an editable install and
    breaks `pip install .`."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in FORBIDDEN
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
