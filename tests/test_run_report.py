"""``strokebench run``: the built-in phantoms to a leaderboard per task, summary.json and report.html;
resumed runs give the same bytes; tasks a dataset cannot serve are listed with the reason; an invalid
dataset stops before training; the report renders in headless Chromium without a broken picture, a
console error or a request leaving the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.strokebench_app import app
from strokedata.phantoms import generate_dataset, preset
from strokemodels.benchmark.leaderboard import PUBLISHED
from strokemodels.errors import ZooError
from strokemodels.report import RunOptions, RunStopped, RunSummary, run_benchmark, task_steps
from tests import browser

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODELS = ("majority-occlusion", "tmax-territory", "majority-recanalization", "rcbf-threshold", "cnn4")
"""One model per task (occlusion two, for rank stability): rules and a slice network (two epochs), so
that the run stays short."""
OUTPUTS = (
    "summary.json",
    "report.html",
    "core/predictions/rcbf-threshold.csv",
    "clot-regions/scores/cnn4.json",
)


def _options(out: Path, **changes: object) -> RunOptions:
    settings = {"out": out, "models": MODELS, "phantoms": 16, "bootstrap": 100, "jobs": 1, "device": "cpu"}
    return RunOptions(**{**settings, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    """A whole run on 16 generated phantoms, one model per task."""
    out = tmp_path_factory.mktemp("run") / "demo"
    return out, run_benchmark(_options(out))


def test_every_task_is_served_scored_and_ranked_beside_the_published_rows(
    demo: tuple[Path, RunSummary],
) -> None:
    out, summary = demo
    text = (out / "summary.json").read_text()
    assert RunSummary.model_validate_json(text).model_dump_json(indent=2) + "\n" == text
    assert summary.model_dump_json(indent=2) + "\n" == text
    assert [t.task for t in summary.tasks if t.served] == [
        "occlusion",
        "recanalization",
        "core",
        "clot-regions",
    ]
    assert summary.validation.valid and summary.cohort.patients == 16
    for task in summary.tasks:
        model = task.models[-1]
        assert model.score.n > 0 and model.score.bootstrap == 100
        assert (out / model.predictions).is_file() and (out / task.task / "split.json").is_file()
        assert any(row.source == PUBLISHED for row in task.leaderboard)  # the papers' rows beside ours
        assert any(row.name == model.model and row.primary_ci95 is not None for row in task.leaderboard)
        assert sum(sum(counts.values()) for counts in task.partitions.values()) >= model.score.n
        assert any(command.startswith("strokebench train") for command in task.commands)
    occlusion = summary.tasks[0]
    stability = [row.rank_stability for row in occlusion.leaderboard if row.source != PUBLISHED]
    assert len(stability) == 2 and all(value is not None and 0 <= value <= 1 for value in stability)
    cnn4 = next(t for t in summary.tasks if t.task == "clot-regions").models[0]
    assert len(cnn4.curves) == 1 and cnn4.curves[0]["epoch"] == [1.0, 2.0]  # hold-out: one run, 2 epochs
    recanalization = next(t for t in summary.tasks if t.task == "recanalization")
    assert recanalization.models[0].runs == 5 and recanalization.models[0].score.per_fold  # out of fold


def test_the_report_is_one_light_accessible_file(demo: tuple[Path, RunSummary]) -> None:
    page = (demo[0] / "report.html").read_text()
    assert (demo[0] / "report.html").stat().st_size < 10 * 2**20
    images = re.findall(r"<img [^>]*>", page)
    assert images and all(re.search(r'src="data:image/png;base64,[^"]+"', tag) for tag in images)
    assert all(re.search(r'alt="[^"]{20,}"', tag) for tag in images)  # alt text that says something
    assert page.count("<table") == page.count("<caption>")
    assert not re.search(r"(src|href)=\"(?!data:|#)", page) and "url(" not in page and "<script" not in page
    for task in ("occlusion", "recanalization", "core", "clot-regions"):
        assert f'id="task-{task}"' in page
    assert "rcbf-threshold (core): the best predicted patients" in page  # montages named in the alt text


def test_a_rerun_skips_every_step_and_writes_the_same_bytes(demo: tuple[Path, RunSummary]) -> None:
    out = demo[0]
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    runs = sorted((out / "work").glob("train-*/*/*/run.json"))
    stamps = [run.stat().st_mtime_ns for run in runs]
    messages: list[str] = []
    run_benchmark(_options(out), on_step=messages.append)
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert [run.stat().st_mtime_ns for run in runs] == stamps  # nothing trained again
    assert not any(message.startswith("generating") for message in messages)
    for work in ("pipeline", "training", "predicting", "scoring"):
        assert not any(work in message for message in messages), messages


def test_an_interrupted_run_resumes_to_the_bytes_of_an_uninterrupted_one(
    demo: tuple[Path, RunSummary], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = task_steps.scored

    def interrupted(*arguments: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # the third model scored: recanalization's, after occlusion's two
            raise KeyboardInterrupt
        return real(*arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(task_steps, "scored", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(_options(tmp_path / "run"))
    assert not (tmp_path / "run" / "summary.json").exists()
    monkeypatch.setattr(task_steps, "scored", real)
    run_benchmark(_options(tmp_path / "run"))
    for name in OUTPUTS:
        assert (tmp_path / "run" / name).read_bytes() == (demo[0] / name).read_bytes(), name


def test_a_task_the_dataset_cannot_serve_is_listed_with_the_reason(tmp_path: Path) -> None:
    config = preset("tiny", modalities=["CTA", "SPIRAL", "ATLAS", "CLOT", "CBF", "CBV", "TMAX", "CORE"])
    data = generate_dataset(tmp_path / "data", 12, config, seed=2, jobs=1)
    summary = run_benchmark(
        _options(
            tmp_path / "run", dataset=data, tasks=("core", "clot-regions"), models=("rcbf-threshold", "cnn4")
        )
    )
    core, regions = summary.tasks
    assert core.served and not regions.served
    assert "cnn4" in regions.reason and "lack MCTA1" in regions.reason  # type: ignore[operator]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Not run:" in page and "lack MCTA1" in page


def test_an_invalid_dataset_stops_before_training_with_its_findings(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "data", 6, preset("tiny"), seed=3, jobs=1)
    victim = next(p for p in sorted(data.iterdir()) if p.is_dir())
    (victim / "cbf.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(RunStopped) as stopped:
        run_benchmark(_options(tmp_path / "run", dataset=data))
    assert not stopped.value.report.valid and victim.name in str(stopped.value.report.model_dump())
    assert not list((tmp_path / "run").glob("work/train-*"))  # nothing trained
    result = runner.invoke(app, ["run", str(data), "--out", str(tmp_path / "cli"), "--jobs", "1"])
    assert result.exit_code == 1 and victim.name in result.output and "nothing was trained" in result.output
    inside = runner.invoke(app, ["run", str(data), "--out", str(data / "run"), "--jobs", "1"])
    assert inside.exit_code == 2 and "inside the dataset" in inside.output and not (data / "run").exists()


@pytest.mark.skipif(browser.chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_report_renders_in_chromium_with_nothing_broken_or_fetched(
    demo: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"  # a copy alone in its folder: nothing beside it to fetch
    shutil.copyfile(demo[0] / "report.html", page)
    visit = browser.visit_page(page)
    assert visit.images >= 12 and not visit.broken_images
    assert not visit.errors and not visit.console
    outside = [url for url in visit.requests if url != page.as_uri() and not url.startswith("data:")]
    assert not outside
    for width, shot in visit.screenshots.items():
        assert shot.startswith(b"\x89PNG") and len(shot) > 10_000, width


def test_a_changed_input_changes_the_key_and_the_step_runs_again(tmp_path: Path) -> None:
    from strokemodels.report.store import StepStore, folder_key

    data = tmp_path / "data"
    (data / "p1").mkdir(parents=True)
    (data / "p1" / "image.nii").write_bytes(b"0" * 10)
    store, calls = StepStore(tmp_path / "run"), []

    def work() -> dict[str, object]:
        calls.append(1)
        return {"n": len(calls)}

    first = folder_key(data)
    assert store.once("validate", first, work) == ({"n": 1}, True)
    assert store.once("validate", folder_key(data), work) == ({"n": 1}, False)  # unchanged: skipped
    (data / "p1" / "image.nii").write_bytes(b"0" * 11)  # a changed file
    assert folder_key(data) != first and store.once("validate", folder_key(data), work) == ({"n": 2}, True)
    (data / "p2").mkdir()
    (data / "p2" / "patient.json").write_text("{}")  # an added patient
    assert store.once("validate", folder_key(data), work)[1]
    output = tmp_path / "out.json"
    output.write_text("{}")
    assert store.once("split", "k", work, unless_missing=output)[1]
    assert not store.once("split", "k", work, unless_missing=output)[1]  # done, its output there
    output.unlink()
    assert store.once("split", "k", work, unless_missing=output)[1]  # its output is gone: made again


def test_a_pipeline_failing_for_a_patient_of_the_split_leaves_the_model_out_with_the_patient(
    tmp_path: Path,
) -> None:
    import json

    data = generate_dataset(tmp_path / "data", 12, preset("tiny"), seed=5, jobs=1)
    manifest = json.loads((data / "p00003" / "patient.json").read_text())
    del manifest["images"]["NCCT"]  # the recanalization pipeline reads NCCT and CTA
    (data / "p00003" / "patient.json").write_text(json.dumps(manifest))
    (data / "p00003" / "ncct.nii.gz").unlink()
    (result,) = run_benchmark(
        _options(
            tmp_path / "run", dataset=data, tasks=("recanalization",), models=("majority-recanalization",)
        )
    ).tasks
    assert not result.served
    assert "p00003" in result.left_out["majority-recanalization"]
    assert "recanalization pipeline" in result.left_out["majority-recanalization"]
    assert str(tmp_path) not in (tmp_path / "run" / "summary.json").read_text()  # no path of the run


def test_maps_only_the_ctp_holds_are_computed_by_perfusion_first(tmp_path: Path) -> None:
    config = preset("tiny", modalities=["CTP", "CORE", "NCCT", "BRAIN_MASK"])
    data = generate_dataset(tmp_path / "data", 8, config, seed=6, jobs=1)
    (core,) = run_benchmark(
        _options(tmp_path / "run", dataset=data, tasks=("core",), models=("rcbf-threshold",))
    ).tasks
    assert core.served and core.perfusion and core.models[0].score.n == 8
    assert core.commands[0].startswith("strokedata perfusion DATASET")


def test_another_phantom_count_in_the_same_run_folder_gets_its_own_cohort(tmp_path: Path) -> None:
    from strokemodels.report.run import _generated, chosen_models
    from strokemodels.report.store import StepStore

    store, made = StepStore(tmp_path / "run"), []
    for count in (3, 4, 3):
        made.append(_generated(_options(tmp_path / "run", phantoms=count), store, None))
    assert [p.name for p in made] == ["phantoms-3-seed0", "phantoms-4-seed0", "phantoms-3-seed0"]
    assert [len([d for d in p.iterdir() if d.is_dir()]) for p in made] == [3, 4, 3]
    assert not list((tmp_path / "run" / "work").glob("*.partial"))
    with pytest.raises(ZooError, match="add clot-regions to --tasks"):
        chosen_models(_options(tmp_path / "run", tasks=("core",), models=("cnn4",)))
