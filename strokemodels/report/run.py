"""``strokebench run``: from a folder of patients (or the built-in phantoms) to a leaderboard per task,
``summary.json`` and ``report.html``, every step the library function of the matching command.

validate (errors stop the run; with ``strict`` warnings too) -> for each task the dataset can serve:
the paper's split -> the models' pipelines (``perfusion`` first where only the CTP holds the maps) ->
training on every fold -> prediction -> scoring with 95% bootstrap intervals -> the leaderboard beside
the published rows -> the report. A rerun skips every finished step (``store``) and writes the same
bytes; a changed input redoes what depends on it.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from strokedata import load_dataset
from strokedata.dataset import Dataset
from strokedata.errors import StrokedataError
from strokedata.executor import Executor, Progress
from strokedata.io import atomic_write_text
from strokedata.labels import favourable_recanalization
from strokedata.splits import dataset_hash
from strokedata.validation.report import ValidationReport
from strokemodels.benchmark import TASKS
from strokemodels.report.balance import partition_balance, reproduce
from strokemodels.report.plan import DEFAULT_MODELS, PROTOCOLS, TASK_ORDER, Budget, plan_task
from strokemodels.report.store import StepStore, digest, folder_key
from strokemodels.report.summary import (
    CodeCount,
    Cohort,
    ModelResult,
    RunSummary,
    TaskResult,
    ValidationSummary,
)
from strokemodels.report.task_steps import (
    TaskContext,
    TaskNotServed,
    model_result,
    placed,
    preprocessed,
    split_of,
    task_leaderboard,
)
from strokemodels.spec import ModelSpec

SUMMARY, REPORT, VALIDATION = "summary.json", "report.html", "validation.json"
PHANTOMS = 40
"""Patients of the built-in phantom cohort a run generates without a dataset."""


@dataclass(frozen=True)
class Sources:
    """Where a model's predictions, its data and the split are, and whether a test partition was
    predicted (else: out-of-fold predictions of every patient)."""

    predictions: Path
    data: Path
    split: Path
    has_test: bool


class RunFolderError(StrokedataError):
    """The run folder cannot be used for this dataset (it lies inside it)."""


class RunStopped(StrokedataError):
    """The dataset did not pass validation: the run stops before training; ``report`` holds why."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class RunOptions:
    """What ``strokebench run`` is asked for (defaults: the built-in phantoms, every task, the default
    models, the quick budget)."""

    out: Path
    dataset: Path | None = None
    tasks: tuple[str, ...] = TASK_ORDER
    models: tuple[str, ...] | None = None
    budget: Budget = "quick"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    strict: bool = False
    seed: int = 0
    bootstrap: int = 1000
    phantoms: int = PHANTOMS
    jobs: int | None = None
    executor: Executor | None = field(default=None, compare=False)


def _say(on_step: Callable[[str], None] | None, text: str) -> None:
    if on_step is not None:
        on_step(text)


def chosen_models(options: RunOptions) -> dict[str, list[ModelSpec]]:
    """Return the models of each asked task (each once): the defaults, every model ('all') or those
    named; ZooError for an unknown name or a model of a task not asked for."""
    from strokemodels.errors import ZooError
    from strokemodels.registry import get_model, list_models

    tasks = list(dict.fromkeys(options.tasks))
    if options.models is None:
        return {task: [get_model(name).spec for name in DEFAULT_MODELS[task]] for task in tasks}
    if options.models == ("all",):
        return {task: list_models(task=task) for task in tasks}
    named = [get_model(name).spec for name in dict.fromkeys(options.models)]
    for spec in named:
        if spec.task not in tasks:
            raise ZooError(f"{spec.name} is a {spec.task} model: add {spec.task} to --tasks, or leave it out")
    return {task: [spec for spec in named if spec.task == task] for task in tasks}


def _generated(options: RunOptions, store: StepStore, on_step: Callable[[str], None] | None) -> Path:
    """Return the built-in phantom cohort of the run, generated once into
    ``out/data/phantoms-<patients>-seed<seed>`` (a half-written cohort from an interruption is generated
    again; another count or seed gets its own folder)."""
    from strokedata.phantoms import generate_dataset, preset

    name = f"phantoms-{options.phantoms}-seed{options.seed}"
    root = options.out / "data" / name
    key = digest({"patients": options.phantoms, "seed": options.seed, "preset": "tiny"})
    if store.done(name, key) is not None and root.is_dir():
        return root
    _say(on_step, f"generating {options.phantoms} phantom patients")
    partial = options.out / "work" / f"{name}.partial"
    if partial.is_dir():
        shutil.rmtree(partial)  # the run's own half-written cohort
    generate_dataset(
        partial,
        options.phantoms,
        preset("tiny"),
        seed=options.seed,
        jobs=options.jobs,
        executor=options.executor,
    )
    root.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(root)
    store.finish(name, key, {})
    return root


def _validated(
    options: RunOptions, store: StepStore, dataset: Path, name: str, progress: Progress | None
) -> ValidationReport:
    """Return the dataset's validation report (``strokedata validate``), written to ``validation.json``."""
    from strokedata import validate

    path = options.out / VALIDATION

    def work() -> dict[str, Any]:
        report = validate(dataset, jobs=options.jobs, executor=options.executor, progress=progress)
        atomic_write_text(path, report.model_copy(update={"dataset": name}).model_dump_json(indent=2) + "\n")
        return {}

    store.once("validate", folder_key(dataset), work, unless_missing=path)
    return ValidationReport.model_validate_json(path.read_text(encoding="utf-8"))


def validation_summary(report: ValidationReport) -> ValidationSummary:
    """Return the validation's counts and its findings grouped by code."""
    by_code: dict[str, list[Any]] = {}
    for finding in report.findings:
        by_code.setdefault(finding.code, []).append(finding)
    codes = []
    for code in sorted(by_code):
        findings = by_code[code]
        patients = sorted({f.patient_id or "dataset" for f in findings})
        codes.append(
            CodeCount(
                code=code,
                name=findings[0].name,
                severity=findings[0].severity,
                findings=len(findings),
                patients=len(patients),
                examples=patients[:5],
            )
        )
    return ValidationSummary(
        valid=report.valid,
        patients=report.n_patients,
        images=report.n_images,
        errors=report.errors,
        warnings=report.warnings,
        codes=codes,
    )


def cohort_of(manifests: list[Any]) -> Cohort:
    """Return the cohort's composition: patients by label value, by site and by modality."""

    def counts(values: list[Any]) -> dict[str, int]:
        return dict(sorted(Counter("missing" if v is None else str(v) for v in values).items()))

    favourable = [favourable_recanalization(m.labels.mtici) for m in manifests]
    labels = {
        "occlusion location": counts([m.labels.occlusion_location for m in manifests]),
        "occlusion side": counts([m.labels.occlusion_side for m in manifests]),
        "mTICI": counts([m.labels.mtici for m in manifests]),
        "recanalization": counts(
            [None if v is None else ("favourable" if v else "unfavourable") for v in favourable]
        ),
    }
    modalities = Counter(str(modality.value) for m in manifests for modality in m.images)
    return Cohort(
        patients=len(manifests),
        labels=labels,
        sites=counts([m.site for m in manifests]),
        modalities=dict(sorted(modalities.items())),
    )


def _not_served(task: str, reason: str, left_out: dict[str, str] | None = None) -> TaskResult:
    """Return the result of a task the dataset cannot serve, with the reason."""
    card, protocol = TASKS[task], PROTOCOLS[task]
    return TaskResult(
        task=task,
        title=card.title,
        protocol=protocol.description,
        served=False,
        reason=reason,
        left_out=left_out or {},
    )


def _reasons(left_out: dict[str, str]) -> str:
    return "; ".join(f"{name}: {why}" for name, why in left_out.items())


def _without_run_dir(message: str, run_dir: Path) -> str:
    """Return ``message`` with the run folder's path as RUN_DIR and its key-named work folders as
    <key>: the summary must not depend on where the run is or on the files' modification times."""
    for shown in (str(run_dir.resolve()), str(run_dir)):
        message = message.replace(shown, "RUN_DIR")
    return re.sub(r"\b[0-9a-f]{16}\b", "<key>", message)


def run_task(
    context: TaskContext, task: str, specs: list[ModelSpec], loaded: Dataset
) -> tuple[TaskResult, dict[str, Sources]]:
    """Return the result of one task on the ``loaded`` dataset, served (its models trained, scored and
    ranked) or why not, and where each model's predictions and data are (for the report's figures)."""
    from strokedata.splits import read_split
    from strokemodels.benchmark.truth import truth_from_dataset

    card, protocol = TASKS[task], PROTOCOLS[task]
    if not specs:
        return _not_served(task, "no model of this task was chosen (--models)"), {}
    dataset = loaded.root
    truth, _ = truth_from_dataset(task, dataset, jobs=context.jobs)
    manifests = [m for m in loaded if m.patient_id in truth.values]
    if not manifests:
        return _not_served(task, f"no patient has the task's label ({card.label})"), {}
    plan = plan_task(task, specs, manifests)
    if not plan.models:
        reason = f"no chosen model can run on this dataset ({_reasons(plan.left_out)})"
        return _not_served(task, reason, plan.left_out), {}
    task_dir = context.store.run_dir / task
    results: list[ModelResult] = []
    sources: dict[str, Sources] = {}
    runs_of: dict[str, list[Path]] = {}
    parameters: dict[str, dict[str, object]] = {}
    try:
        split = split_of(context, task, dataset, task_dir / "split.json")
    except TaskNotServed as reason:
        return _not_served(task, str(reason), plan.left_out), {}
    needed = placed(split) & set(truth.values)  # a pipeline may fail for the others
    for spec in plan.models:
        stage1 = runs_of.get(spec.stage_of) if spec.stage_of else None
        try:  # a model that cannot run here is listed with the reason; the others go on
            source = dataset
            if spec.name in plan.perfused:
                source, _ = preprocessed(context, task, "perfusion", dataset, needed)
            data, given = preprocessed(context, task, spec.pipeline, source, needed)
            scored_model, runs = model_result(context, spec, task_dir, data, split, stage1)
        except StrokedataError as problem:
            plan.left_out[spec.name] = _without_run_dir(str(problem), context.store.run_dir)
            continue
        if spec.pipeline != "none":
            parameters[spec.pipeline] = given
        results.append(scored_model)
        runs_of[spec.name] = runs
        where = context.store.run_dir / scored_model.predictions
        sources[spec.name] = Sources(where, data, split, protocol.has_test)
    if not results:
        return _not_served(task, f"no model could run ({_reasons(plan.left_out)})", plan.left_out), {}
    plan.models = [spec for spec in plan.models if spec.name in sources]
    result = TaskResult(
        task=task,
        title=card.title,
        protocol=protocol.description,
        served=True,
        pipeline_parameters=parameters,
        perfusion=bool(plan.perfused & set(sources)),
        split_hash=read_split(split).membership_hash,
        partitions=partition_balance(task, truth, split, manifests, list(loaded.card.atlas_regions)),
        scored_on="the test partition" if protocol.has_test else "out-of-fold predictions (cross-validation)",
        models=results,
        left_out=plan.left_out,
        leaderboard=task_leaderboard(task, task_dir, results),
        commands=reproduce(task, plan, context, parameters),
    )
    return result, sources


def run_benchmark(
    options: RunOptions, on_step: Callable[[str], None] | None = None, progress: Progress | None = None
) -> RunSummary:
    """Run every step for ``options`` into ``options.out`` and return the summary, also written as
    ``summary.json`` beside ``report.html``. Raises RunStopped when validation fails (nothing trained),
    ZooError for an unknown model, StrokedataError subclasses for unreadable data."""
    from strokemodels.report.html import write_report
    from strokemodels.training.train import resolve_device

    models = chosen_models(options)
    if options.dataset is not None and options.out.resolve().is_relative_to(options.dataset.resolve()):
        raise RunFolderError(
            f"--out {options.out} lies inside the dataset {options.dataset}: the run would write into your "
            "data; choose a run folder outside it"
        )
    options.out.mkdir(parents=True, exist_ok=True)
    store = StepStore(options.out)
    generated = options.dataset is None
    dataset = _generated(options, store, on_step) if options.dataset is None else options.dataset
    _say(on_step, f"validating {dataset.name}")
    report = _validated(options, store, dataset, dataset.name, progress)
    if not report.valid or (options.strict and report.warnings):
        what = f"{report.errors} error(s)" if not report.valid else f"{report.warnings} warning(s) (--strict)"
        raise RunStopped(
            f"{dataset}: validation found {what}; fix them, then run again (nothing was trained)", report
        )
    loaded = load_dataset(dataset)
    origin = (
        f"strokedata phantom --out DATASET -n {options.phantoms} --seed {options.seed}" if generated else ""
    )
    context = TaskContext(
        store,
        options.budget,
        options.seed,
        resolve_device(options.device),
        options.jobs,
        options.executor,
        options.bootstrap,
        progress,
        on_step,
        origin,
    )
    tasks, sources = [], {}
    for task in models:
        _say(on_step, f"{task}: {', '.join(spec.name for spec in models[task]) or 'no model'}")
        result, sources[task] = run_task(context, task, models[task], loaded)
        tasks.append(result)
    from strokemodels.training.run import versions

    summary = RunSummary(
        versions=versions(),
        dataset=loaded.card.name,
        dataset_hash=dataset_hash(loaded),
        generated=generated,
        budget=options.budget,
        seed=options.seed,
        validation=validation_summary(report),
        cohort=cohort_of(list(loaded)),
        tasks=tasks,
    )
    atomic_write_text(options.out / SUMMARY, summary.model_dump_json(indent=2) + "\n")
    _say(on_step, "writing the report")
    write_report(options.out / REPORT, summary, sources)
    return summary
