"""Shared fixtures: a tiny clean dataset built once, copied for each test that changes it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.builders import build_dataset

settings.register_profile(
    "strokebench", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("strokebench")


@pytest.fixture(scope="session")
def pristine_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean 4-patient dataset shared by all tests; never modify it (use ``dataset``)."""
    return build_dataset(tmp_path_factory.mktemp("pristine") / "data", n_patients=4)


@pytest.fixture
def dataset(pristine_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the clean dataset that a test may corrupt."""
    return Path(shutil.copytree(pristine_dataset, tmp_path / "data", symlinks=True))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for a module's tests, restored afterwards: small networks run faster on one
    thread than on several of a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
