"""The model zoo's commands of `strokebench`: models, train and predict. Each parses, calls
strokemodels.registry or strokemodels.training, and renders (cli/render_zoo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cli import render, render_zoo
from cli.errors import check_outputs, library_errors, option_errors
from cli.options import SchedulerOption, cluster_executor

Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")]
Jobs = Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Processes building the cache.")]
Cache = Annotated[
    Path | None,
    typer.Option("--cache", help="Training cache root (default: $STROKEBENCH_CACHE or ~/.cache)."),
]
LoaderWorkers = Annotated[
    int,
    typer.Option(
        min=0, help="Loader workers: processes on the CPU, reading threads on CUDA (results do not change)."
    ),
]


def _size(text: str | None) -> tuple[int, int, int] | None:
    """Return X,Y,Z as three positive integers (X,Y for a slice model: Z 1); typer.BadParameter otherwise."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (2, 3) or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise typer.BadParameter(
            f"--input-size '{text}': give positive integers X,Y,Z (e.g. 64,64,16), or X,Y for a slice model"
        )
    return int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 1


def _device(text: str) -> Literal["auto", "cpu", "cuda"]:
    """Return a --device value; typer.BadParameter for another."""
    if text == "auto":
        return "auto"
    if text == "cpu":
        return "cpu"
    if text == "cuda":
        return "cuda"
    raise typer.BadParameter(f"--device '{text}': choose auto, cpu or cuda")


def models(
    name: Annotated[str | None, typer.Argument(help="A model to show in full.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's models.")] = None,
) -> None:
    """List the zoo's models, or show one.

    Every registered model, ours and those of installed plugins (entry point group strokemodels.models),
    with its task, kind and parameter count; with NAME, its spec in full.
    """
    from strokemodels.registry import PLUGIN_PROBLEMS, get_model, list_models

    with library_errors():
        if name is not None:
            render_zoo.render_model(get_model(name).spec)
            return
        specs = list_models(task=task)
    render_zoo.render_models(specs)
    for problem in PLUGIN_PROBLEMS:
        render.note(f"a plugin could not be loaded: {problem}")


def train(
    task: Annotated[str, typer.Option(help="occlusion, recanalization, core or clot-regions.")],
    model: Annotated[str, typer.Option(help="A model of the task (`strokebench models --task T`).")],
    dataset: Annotated[Path, typer.Option(help="The dataset, preprocessed by the model's pipeline.")],
    split: Annotated[Path, typer.Option(help="The split file (strokedata split).")],
    fold: Annotated[
        int | None, typer.Option(min=0, help="The fold to train (its validation patients validate).")
    ] = None,
    all_folds: Annotated[
        bool, typer.Option("--all-folds", help="Train every fold, each into OUT/foldK.")
    ] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the paper's).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (default: the recipe's).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate, above 0 (default: the paper's).")] = None,
    select_by: Annotated[
        str | None,
        typer.Option(help="Metric choosing the best epoch (default: the recipe's, else the task's primary)."),
    ] = None,
    input_size: Annotated[
        str | None, typer.Option(help="X,Y,Z of the model's input (default: the paper's).")
    ] = None,
    device: Device = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast on CUDA.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/MODEL).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the weights, sampler and augmentation.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    jobs: Jobs = None,
    loader_workers: LoaderWorkers = 0,
    cache: Cache = None,
    stage1: Annotated[
        Path | None,
        typer.Option(help="A second stage (ctp-unet): the first stage's run (with --all-folds: its folder)."),
    ] = None,
    attention_stride: Annotated[
        int | None, typer.Option(min=1, help="core: pixels between attention-map patches (paper: 2).")
    ] = None,
    patches_per_epoch: Annotated[
        int | None, typer.Option(min=1, help="Patch models: patches per epoch (default: the recipe's).")
    ] = None,
    head_epochs: Annotated[
        int | None,
        typer.Option(min=0, help="Epochs training the output head alone before fine-tuning everything."),
    ] = None,
    init_weights: Annotated[
        Path | None, typer.Option(help="A local state dict to start from (matching keys); never downloaded.")
    ] = None,
) -> None:
    """Train a model on a split's fold.

    The paper's recipe unless overridden; a network validates every epoch and keeps its best and last
    checkpoint, a rule is fitted on the training partition. Exit status: 0 trained, 2 usage error, 130
    interrupted (resume with --resume).
    """
    from strokedata.splits import read_split
    from strokemodels.training.train import TrainRequest
    from strokemodels.training.train import train as run_training

    target = out or Path("runs") / model
    check_outputs(folders={"--out": target})
    with option_errors():
        size, chosen_device = _size(input_size), _device(device)
        if all_folds and fold is not None:
            raise typer.BadParameter("give --fold K or --all-folds, not both")
    with library_errors():
        folds: list[int | None] = [fold]
        if all_folds:
            count = len(read_split(split).folds or [])
            if not count:
                raise typer.BadParameter(f"{split} has no folds; leave out --all-folds")
            folds = list(range(count))
    resumable = "interrupted; the last finished epoch is saved: run the command again with --resume"
    for chosen in folds:
        folder = target / f"fold{chosen}" if all_folds else target
        request = TrainRequest(
            model=model, dataset=dataset, split=split, out=folder, fold=chosen, task=task, epochs=epochs,
            batch_size=batch_size, learning_rate=lr, select_by=select_by, input_size=size, seed=seed,
            device=chosen_device, amp=amp, loader_workers=loader_workers, jobs=jobs, cache_root=cache,
            resume=resume, attention_stride=attention_stride, init_weights=init_weights,
            samples_per_epoch=patches_per_epoch, head_epochs=head_epochs,
            stage1=None if stage1 is None else stage1 / f"fold{chosen}" if all_folds else stage1,
        )  # fmt: skip
        with library_errors(resumable), render.progress_bar(plain_skips={"epochs"}) as progress:
            run_training(request, progress, render_zoo.epoch_printer(folder))
        render_zoo.render_run(folder)


def predict(
    run: Annotated[
        list[Path],
        typer.Option(
            "--run",
            help="A run folder (repeat for an ensemble; a folder of fold runs counts as all of them).",
        ),
    ],
    dataset: Annotated[Path, typer.Option(help="The dataset to predict, preprocessed like the runs' data.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions CSV to write (core: masks beside it).")],
    split: Annotated[Path | None, typer.Option(help="With --partition: predict one partition only.")] = None,
    partition: Annotated[str | None, typer.Option(help="test, train, val or foldK.")] = None,
    ensemble: Annotated[
        str, typer.Option(help="vote (the best model of each fold votes) or mean (probabilities).")
    ] = "vote",
    slice_level: Annotated[
        bool, typer.Option("--slice-level", help="clot-regions: one row per slice.")
    ] = False,
    skip_empty_slices: Annotated[
        bool,
        typer.Option("--skip-empty-slices", help="Slice networks: slices without tissue are not run (0)."),
    ] = False,
    device: Device = "auto",
    jobs: Jobs = None,
    scheduler: SchedulerOption = None,
    loader_workers: LoaderWorkers = 0,
    cache: Cache = None,
) -> None:
    """Predict with one run or a fold ensemble.

    Writes the task's predictions CSV with probabilities, ready for `strokebench score`. Exit status:
    0 written, 2 usage error (runs that do not fit together or the data).
    """
    from strokemodels.training.predict import PredictRequest
    from strokemodels.training.predict import predict as run_prediction
    from strokemodels.training.run import RUN_FILE

    check_outputs({"--out": out})
    with option_errors():
        if ensemble not in ("vote", "mean"):
            raise typer.BadParameter(f"--ensemble '{ensemble}': choose vote or mean")
        chosen_device = _device(device)
    runs: list[Path] = []
    for folder in run:  # a folder of fold runs stands for each of them
        inner = sorted(p for p in folder.iterdir() if (p / RUN_FILE).is_file()) if folder.is_dir() else []
        runs.extend(inner if not (folder / RUN_FILE).is_file() and inner else [folder])
    request = PredictRequest(
        runs=tuple(runs), dataset=dataset, out=out, split=split, partition=partition,
        ensemble="mean" if ensemble == "mean" else "vote", device=chosen_device,
        slice_level=slice_level, jobs=jobs, cache_root=cache, loader_workers=loader_workers,
        skip_empty_slices=skip_empty_slices,
    )  # fmt: skip
    from strokemodels.training.cache import default_cache_root

    shared = [dataset, cache or default_cache_root()]  # the workers build the cache: they must see it
    with (
        library_errors(),
        cluster_executor(scheduler, jobs, shared),
        render.progress_bar() as progress,
    ):
        summary = run_prediction(request, progress)
    render.plain(
        f"wrote {summary.task} predictions of {summary.patients} patients ({summary.members} run(s), "
        f"{ensemble} ensemble) to {summary.out}"
    )
    if summary.seen_in_training:
        seen = summary.seen_in_training
        render.note(
            f"{len(seen)} of the predicted patients ({', '.join(seen[:5])}{' ...' if len(seen) > 5 else ''}) "
            "were in a run's training or validation partition: their figures flatter the model; score the "
            "test partition for an honest estimate"
        )


def register(app: typer.Typer) -> None:
    """Add the zoo's commands to the `strokebench` app."""
    app.command()(models)
    app.command()(train)
    app.command()(predict)
