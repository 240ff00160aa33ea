"""Rendering the zoo's commands: the model list and a model's spec, one line per training epoch, and a
finished run's summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cli.render import plain, print_table

if TYPE_CHECKING:
    from strokemodels.spec import ModelSpec


def _count(parameters: int) -> str:
    """Return a parameter count as 906.6 k or 33.4 M ('-' for none)."""
    if not parameters:
        return "-"
    return f"{parameters / 1e6:.1f} M" if parameters >= 1e6 else f"{parameters / 1e3:.1f} k"


def render_models(specs: list[ModelSpec]) -> None:
    """Print one row per model: task, name, kind, parameters, what it is."""
    rows = [[spec.task, spec.name, spec.kind, _count(spec.parameters), spec.summary] for spec in specs]
    print_table(
        (
            f"{len(specs)} models (strokebench models NAME shows one)",
            ["task", "model", "kind", "parameters", "what it is"],
            rows,
        )
    )


def render_model(spec: ModelSpec) -> None:
    """Print a model's spec: inputs, pipeline, shape, parameters, citation, recipe, departures."""
    plain(f"{spec.name} ({spec.task}, {spec.kind}): {spec.summary}")
    shape = " x ".join(str(n) for n in spec.input_shape) or "the images as they are"
    if spec.kind == "learned":
        shape += {"volume": " (a patient's volume)", "slice": " (one axial slice)", "patch": " (a patch)"}[
            spec.sample
        ]
    for label, text in (
        ("inputs", ", ".join(m.value for m in spec.inputs) or "none (the labels only)"),
        ("pipeline", spec.pipeline if spec.pipeline != "none" else "none: the canonical dataset as it is"),
        ("input shape", shape),
        *((("second stage of", f"{spec.stage_of} (train with --stage1 RUN)"),) if spec.stage_of else ()),
        ("parameters", f"{spec.parameters:,}"),
        ("citation", spec.citation),
    ):
        plain(f"  {label}: {text}")
    if spec.kind == "learned":
        recipe = spec.recipe
        sampler = ", weighted sampler" if recipe.weighted_sampler else ""
        weighted = (
            f" (class weights mu {recipe.class_weight_mu:g})" if "weighted" in recipe.loss + sampler else ""
        )
        extras = [
            f"positive labels weighted {recipe.positive_weight:g}" if recipe.positive_weight else "",
            f"early stopping after {recipe.patience} epochs" if recipe.patience else "",
            f"{recipe.samples_per_epoch} patches an epoch" if recipe.samples_per_epoch else "",
            f"attention maps every {recipe.attention_stride} pixels" if recipe.attention_stride else "",
            f"the head alone for {recipe.head_epochs} epochs" if recipe.head_epochs else "",
        ]
        plain(
            f"  recipe: {recipe.optimizer} at {recipe.learning_rate:g}, {recipe.schedule} schedule, "
            f"{recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.loss}{sampler}{weighted}, "
            f"augmentation {', '.join(recipe.augment) or 'none'}, best epoch by "
            + (recipe.select_by or "the task's primary metric")
            + "".join(f", {extra}" for extra in extras if extra)
        )
    for departure in spec.departures:
        plain(f"  departs from the paper: {departure}")


def epoch_printer(folder: Path) -> Callable[[dict[str, float | int]], None]:
    """Return a callback printing one line per epoch: loss, the validation metric, time left."""
    started = time.monotonic()
    first: list[int] = []

    def report(row: dict[str, float | int]) -> None:
        from strokemodels.training.run import read_record

        parameters = read_record(folder).parameters
        epoch, total = int(row["epoch"]), parameters.epochs
        first.append(epoch) if not first else None
        per_epoch = (time.monotonic() - started) / (epoch - first[0] + 1)
        metric = float(row.get(f"val_{parameters.select_by}", float("nan")))
        plain(
            f"{folder.name} epoch {epoch}/{total}: train loss {float(row['train_loss']):.4f}, "
            f"val {parameters.select_by} {metric:.4f}, {per_epoch:.1f} s per epoch, "
            f"about {per_epoch * (total - epoch):.0f} s left"
        )

    return report


def render_run(folder: Path) -> None:
    """Print where a run is: a network's best epoch and the validation metric that chose it, a rule's
    validation figure."""
    from strokemodels.training.run import METRICS_FILE, read_record

    record = read_record(folder)
    chosen = record.parameters.select_by
    if record.spec.kind == "rule":
        lines = (folder / METRICS_FILE).read_text().splitlines()
        row = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
        value = row.get(f"val_{chosen}")
        shown = f"{float(value):.4f}" if value else "undefined"
        plain(f"{record.model} fitted into {folder}: validation {chosen} {shown}")
    elif record.best_epoch is None or record.best_metric is None:
        plain(f"{record.model} trained into {folder}: no epoch gave a {chosen}")
    else:
        plain(
            f"{record.model} trained into {folder}: best {chosen} {record.best_metric:.4f} at epoch "
            f"{record.best_epoch} of {record.parameters.epochs}"
        )
