"""The model registry: ``register_model``, ``get_model`` and ``list_models``, ours and plugins alike.

A model is registered as a ``ModelSpec`` (data: readable without torch) and a builder called as
``build(spec, seed)`` that returns a ``torch.nn.Module`` for a learned model or a ``RuleModel``
(strokemodels.zoo.rules) for a rule. The zoo's own modules register when first asked for; third-party
packages declare an entry point in the group ``strokemodels.models`` whose object, once loaded, has
registered its models (a module using ``register_model``) or is a ``ModelEntry`` or a list of them.
Entry points are loaded on the first lookup, never on import, so a model is found whether or not its
module happened to be imported, and listing builds no network.

Example:
    >>> from strokemodels.registry import list_models
    >>> [spec.name for spec in list_models(task="occlusion", pattern="cbam*")]
    ['cbam3d']
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from strokemodels.errors import ZooError
from strokemodels.spec import ModelSpec

ENTRY_POINT_GROUP = "strokemodels.models"
_BUILTIN_MODULES = (
    "strokemodels.zoo.occlusion",
    "strokemodels.zoo.recanalization",
    "strokemodels.zoo.core",
    "strokemodels.zoo.clot_regions",
    "strokemodels.zoo.baselines",
)

Builder = Callable[[ModelSpec, int], Any]
"""``build(spec, seed)``: a torch.nn.Module (learned) or a RuleModel (rule), seeded."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its spec, its builder and where it comes from (a distribution's name)."""

    spec: ModelSpec
    build: Builder
    source: str


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False
PLUGIN_PROBLEMS: list[str] = []
"""Entry points that could not be loaded, each with the reason (listed by ``strokebench models``)."""


def register_model(spec: ModelSpec, source: str | None = None) -> Callable[[Builder], Builder]:
    """Return a decorator registering a builder under ``spec.name``; a name registered twice by different
    builders is a ZooError."""

    def register(build: Builder) -> Builder:
        _add(ModelEntry(spec, build, source or build.__module__.split(".")[0]))
        return build

    return register


def _add(entry: ModelEntry) -> None:
    existing = _REGISTRY.get(entry.spec.name)
    if existing is not None and existing.build is not entry.build:
        raise ZooError(
            f"two models are called '{entry.spec.name}' ({existing.source} and {entry.source}); a plugin "
            "must choose another name"
        )
    _REGISTRY[entry.spec.name] = entry


def _load() -> None:
    """Import the zoo's modules and load every entry point of the group, once."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in _BUILTIN_MODULES:
        import_module(module)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        distribution = point.dist.name if point.dist is not None else point.value
        try:
            loaded = point.load()
        except Exception as error:  # a broken plugin must not break the zoo; it is reported instead
            PLUGIN_PROBLEMS.append(f"{distribution} ({point.value}): {type(error).__name__}: {error}")
            continue
        found = loaded if isinstance(loaded, list | tuple) else [loaded]
        for item in found:
            if isinstance(item, ModelEntry):
                _add(item)


def get_model(name: str) -> ModelEntry:
    """Return the model called ``name``; ZooError suggesting the nearest names when there is none."""
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    nearest = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(nearest)}?" if nearest else ""
    raise ZooError(f"unknown model '{name}'{hint} (`strokebench models` lists them)")


def list_models(task: str | None = None, pattern: str | None = None) -> list[ModelSpec]:
    """Return the specs of the registered models, by task then name, of ``task`` only and matching the
    shell-style ``pattern`` (``'cbam*'``) when given."""
    _load()
    chosen: Iterable[ModelEntry] = _REGISTRY.values()
    if task is not None:
        chosen = [entry for entry in chosen if entry.spec.task == task]
    if pattern is not None:
        chosen = [entry for entry in chosen if fnmatch.fnmatchcase(entry.spec.name, pattern)]
    return sorted((entry.spec for entry in chosen), key=lambda spec: (spec.task, spec.name))
