"""One task of ``strokebench run``: split -> pipelines (and perfusion) -> training on every fold ->
prediction -> scoring -> leaderboard, each step skipped when it already finished on the same inputs
(``store``). Every step calls the library function the matching command calls."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from strokedata.errors import StrokedataError
from strokedata.executor import Executor, Progress
from strokedata.io import atomic_write_text
from strokedata.splits import SplitError, make_split, read_split, write_split
from strokemodels.benchmark.leaderboard import PUBLISHED, LeaderboardRow, entries_from, leaderboard
from strokemodels.benchmark.scoring import ScoreReport, score_files
from strokemodels.report.plan import PROTOCOLS, Budget, pipeline_parameters, training_parameters
from strokemodels.report.store import StepStore, digest, file_key, folder_key
from strokemodels.report.summary import ModelResult
from strokemodels.spec import ModelSpec
from strokemodels.training.run import METRICS_FILE, RUN_FILE


class TaskNotServed(Exception):
    """The dataset cannot serve a task; the message says why."""


@dataclass(frozen=True)
class TaskContext:
    """What every step of a task needs: the run folder's store, the budget, the seed and the workers."""

    store: StepStore
    budget: Budget
    seed: int
    device: str
    jobs: int | None
    executor: Executor | None
    bootstrap: int
    progress: Progress | None
    on_step: Callable[[str], None] | None = None
    origin: str = ""
    """The command that made the dataset, when the run generated it (for the reproduce commands)."""

    def say(self, text: str) -> None:
        """Tell the caller which step starts (``on_step``), if it listens."""
        if self.on_step is not None:
            self.on_step(text)


class ModelNotRun(StrokedataError):
    """One model cannot run on this dataset (its pipeline failed for patients it needs)."""


def placed(split: Path) -> set[str]:
    """Return the ids a split file places in a partition (the excluded ones left out)."""
    return {pid for name, ids in read_split(split).partitions().items() if name != "excluded" for pid in ids}


def _failures_recorded(recorded: dict[str, Any], needed: set[str], what: str) -> None:
    """Raise ModelNotRun when a recorded pipeline run failed for a patient in ``needed`` (patients
    outside it, unlabelled or not in the split, may fail)."""
    inside = sorted(set(recorded.get("failed", {})) & needed)
    if inside:
        shown = "; ".join(f"{pid}: {recorded['failed'][pid]}" for pid in inside[:3])
        raise ModelNotRun(f"{what} failed for {len(inside)} patient(s) of the split: {shown}")


def split_of(context: TaskContext, task: str, source: Path, out: Path) -> Path:
    """Return the split file of ``task`` made on ``source`` by its paper's protocol, written to ``out``.
    Patients without a stratify key's value form their own stratum (core stratifies by side, which a
    segmentation dataset may not record); those without the task's label are left out at training."""
    protocol = PROTOCOLS[task]
    key = digest({"source": folder_key(source), "protocol": protocol.arguments(), "seed": context.seed})

    def work() -> dict[str, Any]:
        try:
            split, _ = make_split(
                source, seed=context.seed, missing="own-stratum", jobs=context.jobs, **protocol.arguments()
            )
        except SplitError as error:
            raise TaskNotServed(
                f"the paper's split ({protocol.description}) cannot be made: {error}"
            ) from None
        needed = {name: ids for name, ids in split.partitions().items() if name != "excluded"}
        if not protocol.has_test:
            needed.pop("test")
        empty = [name for name, ids in needed.items() if not ids]
        if empty:
            count = sum(len(ids) for ids in needed.values())
            raise TaskNotServed(
                f"the paper's split ({protocol.description}) of {count} patients leaves "
                f"{', '.join(empty)} empty: too few patients for this protocol"
            )
        write_split(split, out)
        return {}

    context.store.once(f"split-{task}", key, work, unless_missing=out)
    return out


def preprocessed(
    context: TaskContext, task: str, pipeline: str, source: Path, needed: set[str]
) -> tuple[Path, dict[str, Any]]:
    """Return (the dataset ``source`` through ``pipeline``, the parameters given it); ``source`` itself
    for the models that read the canonical dataset ('none'); 'perfusion' makes the maps from the CTP
    (``strokedata perfusion`` is that pipeline). ModelNotRun when the pipeline fails for a patient in
    ``needed``; others may fail (they are not in the split)."""
    if pipeline == "none":
        return source, {}
    parameters = pipeline_parameters(task, pipeline, context.budget)
    key = digest({"source": folder_key(source), "pipeline": pipeline, "parameters": parameters})
    out = context.store.folder(f"preprocess-{pipeline}", key)
    what = f"the {pipeline} pipeline"

    def work() -> dict[str, Any]:
        from strokedata.preprocess import preprocess_dataset

        context.say(f"  {what}")
        report = preprocess_dataset(
            source,
            pipeline,
            out,
            parameters=parameters,
            jobs=context.jobs,
            executor=context.executor,
            progress=context.progress,
        )
        return {"failed": {o.patient_id: o.reason for o in report.failed}}

    recorded, _ = context.store.once(f"preprocess-{pipeline}-{key}", key, work, unless_missing=out)
    _failures_recorded(recorded, needed, what)
    return out, parameters


def trained(
    context: TaskContext, spec: ModelSpec, data: Path, split: Path, stage1: list[Path] | None
) -> list[Path]:
    """Return the run folders of ``spec`` trained on every fold of ``split`` (the hold-out split: one),
    each resumed where an interruption left it and skipped when finished."""
    from strokemodels.training.train import TrainRequest

    folds: list[int | None] = list(range(len(read_split(split).folds or []))) or [None]
    overrides = training_parameters(spec.name, context.budget)
    key = digest(
        {
            "data": folder_key(data),
            "split": file_key(split),
            "model": spec.name,
            "overrides": overrides,
            "seed": context.seed,
            "device": context.device,
            "stage1": [run.relative_to(context.store.run_dir).as_posix() for run in stage1 or []],
        }
    )
    runs = []
    for index, fold in enumerate(folds):
        name = "holdout" if fold is None else f"fold{fold}"
        out = context.store.folder(f"train-{spec.task}-{spec.name}", key) / name
        fields: dict[str, Any] = {
            "model": spec.name, "dataset": data, "split": split, "out": out, "fold": fold, "task": spec.task,
            "seed": context.seed, "device": context.device, "jobs": context.jobs,
            "cache_root": context.store.run_dir / "work" / "cache", "resume": (out / RUN_FILE).is_file(),
            "stage1": None if stage1 is None else stage1[index], **overrides,
        }  # fmt: skip
        step = f"train-{spec.task}-{spec.name}-{out.name}-{key}"
        context.store.once(
            step, key, partial(_fit, context, TrainRequest(**fields)), unless_missing=out / RUN_FILE
        )
        runs.append(out)
    return runs


def _fit(context: TaskContext, request: Any) -> dict[str, Any]:
    """Train one fold (``strokemodels.training.train``) and return an empty record."""
    from strokemodels.training.train import train

    context.say(f"  {request.model}: {'resuming' if request.resume else 'training'} {request.out.name}")
    train(request)
    return {}


def _with_fold(text: str, fold: int) -> list[list[str]]:
    """Return the rows of a predictions CSV (header first) with a ``fold`` column added."""
    rows = list(csv.reader(io.StringIO(text)))
    return [[*rows[0], "fold"], *([*row, str(fold)] for row in rows[1:])]


def predicted(
    context: TaskContext, spec: ModelSpec, runs: list[Path], data: Path, split: Path, out: Path
) -> str:
    """Write the predictions of ``runs`` to ``out`` and return how they were combined: the fold models
    voting on the test partition, or each fold's model on its own validation patients (out of fold)."""
    from strokemodels.training.predict import PredictRequest, predict

    cache = context.store.run_dir / "work" / "cache"
    common = {
        "dataset": data,
        "split": split,
        "device": context.device,
        "jobs": context.jobs,
        "cache_root": cache,
    }
    if PROTOCOLS[spec.task].has_test:
        skip = spec.sample == "slice"
        predict(PredictRequest(tuple(runs), out=out, partition="test", skip_empty_slices=skip, **common))  # type: ignore[arg-type]
        return (
            f"{len(runs)} run(s) voting on the test partition"
            if len(runs) > 1
            else "one run on the test partition"
        )
    combined: list[list[str]] = []
    for fold, run in enumerate(runs):
        part = out.with_name(f"{out.stem}-fold{fold}.csv")
        predict(PredictRequest((run,), out=part, partition=f"fold{fold}", **common))  # type: ignore[arg-type]
        rows = _with_fold(part.read_text(encoding="utf-8"), fold)
        combined.extend(rows if not combined else rows[1:])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(combined)
    atomic_write_text(out, buffer.getvalue())
    return "out of fold: each fold's run on its validation patients"


def scored(context: TaskContext, spec: ModelSpec, predictions: Path, data: Path, split: Path) -> ScoreReport:
    """Return the score of ``predictions`` (``strokebench score``): on the test partition, or pooled
    over the out-of-fold predictions with per-fold figures; bootstrap resamples kept for rank stability."""
    has_test = PROTOCOLS[spec.task].has_test
    (report,) = score_files(
        spec.task,
        predictions,
        dataset=data,
        split=split if has_test else None,
        partition="test" if has_test else None,
        bootstrap=context.bootstrap,
        seed=context.seed,
        replicates=True,
        workers=context.jobs,
    )
    return report


def model_result(
    context: TaskContext, spec: ModelSpec, task_dir: Path, data: Path, split: Path, stage1: list[Path] | None
) -> tuple[ModelResult, list[Path]]:
    """Return the result of one model of a task (trained, predicted, scored) and its runs: each of the
    three a step of its own, so that another ``bootstrap`` scores again without predicting again."""
    runs = trained(context, spec, data, split, stage1)
    predictions = task_dir / "predictions" / f"{spec.name}.csv"
    score_file = task_dir / "scores" / f"{spec.name}.json"
    inputs = {"runs": [folder_key(run) for run in runs], "data": folder_key(data), "split": file_key(split)}

    def predict_step() -> dict[str, Any]:
        context.say(f"  {spec.name}: predicting")
        predictions.parent.mkdir(parents=True, exist_ok=True)
        return {"ensemble": predicted(context, spec, runs, data, split, predictions)}

    made, _ = context.store.once(
        f"predict-{spec.task}-{spec.name}", digest(inputs), predict_step, unless_missing=predictions
    )

    def score_step() -> dict[str, Any]:
        context.say(f"  {spec.name}: scoring")
        report = scored(context, spec, predictions, data, split)
        score_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(score_file, report.model_dump_json(indent=2) + "\n")
        return {"replicates": report.replicates}  # the score file leaves them out

    key = digest({"predictions": file_key(predictions), "bootstrap": context.bootstrap, "seed": context.seed})
    recorded, _ = context.store.once(
        f"score-{spec.task}-{spec.name}", key, score_step, unless_missing=score_file
    )
    report = ScoreReport.model_validate_json(score_file.read_text(encoding="utf-8"))
    replicates = recorded.get("replicates")
    report = report.model_copy(update={"replicates": None if replicates is None else tuple(replicates)})
    result = ModelResult(
        model=spec.name,
        kind=spec.kind,
        runs=len(runs),
        ensemble=made["ensemble"],
        predictions=predictions.relative_to(context.store.run_dir).as_posix(),
        score=report,
        curves=[_curves(run) for run in runs] if spec.kind == "learned" else [],
    )
    return result, runs


def _curves(run: Path) -> dict[str, list[float | None]]:
    """Return a run's metrics CSV by column (epoch, train_loss, lr, val_...), values rounded to 6
    significant digits; None where a value is empty or not finite."""
    rows = list(csv.DictReader(io.StringIO((run / METRICS_FILE).read_text(encoding="utf-8"))))
    return {column: [_number(row[column]) for row in rows] for column in (rows[0] if rows else {})}


def _number(text: str | None) -> float | None:
    """Return the finite number in ``text`` to 6 significant digits, or None."""
    try:
        value = float(text or "nan")
    except ValueError:
        return None
    return float(f"{value:.6g}") if math.isfinite(value) else None


def task_leaderboard(task: str, task_dir: Path, results: list[ModelResult]) -> list[LeaderboardRow]:
    """Return the leaderboard rows of the task's scored models (best first), then its published
    baselines (other cohorts: never ranked with ours), and
    write the entries to ``task_dir/leaderboard.jsonl`` (``strokebench leaderboard --leaderboard``)."""
    entries = []
    for result in results:
        predictions = task_dir / "predictions" / f"{result.model}.csv"
        entries.extend(entries_from([result.score], result.model, predictions))
    atomic_write_text(task_dir / "leaderboard.jsonl", "".join(e.model_dump_json() + "\n" for e in entries))
    rows = leaderboard(task, entries)  # best first; ours before the published rows of other cohorts
    return [row for row in rows if row.source != PUBLISHED] + [row for row in rows if row.source == PUBLISHED]
