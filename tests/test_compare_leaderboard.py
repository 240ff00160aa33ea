"""compare (paired bootstrap, McNemar, DeLong), the leaderboard and its rank stability, and what
``strokebench score`` writes: each checked against the separately scored models or a recomputation."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn import metrics as sk
from typer.testing import CliRunner

from cli.strokebench_app import app
from strokemodels.benchmark import TASKS, Rows, ScoringError, TaskCard, score
from strokemodels.benchmark.compare import CompareReport, compare, compare_files
from strokemodels.benchmark.evidence import resample_weights
from strokemodels.benchmark.leaderboard import (
    PUBLISHED,
    LeaderboardEntry,
    entries_from,
    leaderboard,
    rank_stability,
    read_leaderboard,
    record,
)

OCCLUSION = ["ICA-T", "M1", "M2"]
runner = CliRunner()

_TRIPLES = st.lists(
    st.tuples(st.sampled_from(OCCLUSION), st.sampled_from(OCCLUSION), st.sampled_from(OCCLUSION)),
    min_size=2,
    max_size=60,
)
_PROBABILITY = st.integers(0, 20).map(lambda k: k / 20)  # a coarse grid: ties in the scores
_RECANALIZATION = st.lists(st.tuples(st.booleans(), _PROBABILITY, _PROBABILITY), min_size=0, max_size=50)
_BOTH_CLASSES = [(True, 0.9, 0.8), (True, 0.3, 0.6), (False, 0.2, 0.1), (False, 0.7, 0.4)]


def _occlusion(triples: list[tuple[str, str, str]]) -> tuple[Rows, Rows, Rows]:
    """Return (truth, model A, model B) from (truth, A, B) class names per patient."""
    ids = [f"p{i}" for i in range(len(triples))]
    truth, a, b = (Rows({pid: row[k] for pid, row in zip(ids, triples, strict=True)}) for k in range(3))
    return truth, a, b


def _recanalization(rows: list[tuple[bool, float, float]]) -> tuple[Rows, Rows, Rows]:
    """Return (truth, model A, model B) from (label, probability of A, probability of B) per patient."""
    ids = [f"p{i}" for i in range(len(rows))]
    truth = Rows({pid: int(t) for pid, (t, _, _) in zip(ids, rows, strict=True)})

    def model(k: int) -> Rows:
        probabilities = {pid: row[k] for pid, row in zip(ids, rows, strict=True)}
        return Rows(
            {pid: int(p >= 0.5) for pid, p in probabilities.items()},
            scores={pid: (p,) for pid, p in probabilities.items()},
        )

    return truth, model(1), model(2)


def _shuffled(rows: Rows, seed: int) -> Rows:
    items = list(rows.values.items())
    random.Random(seed).shuffle(items)
    scores = list(rows.scores.items())
    random.Random(seed + 1).shuffle(scores)
    return Rows(dict(items), scores=dict(scores))


def _check_against_separate_scores(task: str, report: CompareReport, a: Rows, b: Rows, truth: Rows) -> None:
    """The point values are those of ``score`` for each model; the difference is B - A."""
    score_a = score(task, a, truth, bootstrap=0)
    score_b = score(task, b, truth, bootstrap=0)
    assert list(report.metrics) == [m for m in TASKS[task].metrics if m in score_a.metrics]
    assert report.n == score_a.n == len(truth.values)
    for name, metric in report.metrics.items():
        assert metric.a == score_a.metrics[name].value, name
        assert metric.b == score_b.metrics[name].value, name
        if metric.a is None or metric.b is None:
            assert metric.difference is None, name
            continue
        assert metric.difference == pytest.approx(metric.b - metric.a, abs=1e-9), name
        assert metric.ci95 is not None, name
        low, high = metric.ci95
        assert low - 1e-9 <= metric.difference <= high + 1e-9, name


# ---------------------------------------------------------------------------------------------------------
# compare: differences, intervals, symmetry, determinism


@settings(max_examples=30)
@given(_TRIPLES, st.integers(0, 10_000))
def test_occlusion_differences_are_b_minus_a_of_the_separate_scores(
    triples: list[tuple[str, str, str]], seed: int
) -> None:
    truth, a, b = _occlusion(triples)
    report = compare("occlusion", a, b, truth, bootstrap=200, seed=seed)
    _check_against_separate_scores("occlusion", report, a, b, truth)
    assert report.unit == "patient" and report.bootstrap == 200 and report.seed == seed
    assert report.missing_scored_as_wrong == {"A": 0, "B": 0}
    same = compare("occlusion", a, a, truth, bootstrap=100, seed=seed)  # a model against itself
    assert all(m.difference == 0.0 and m.ci95 == (0.0, 0.0) for m in same.metrics.values())
    [test] = same.tests
    assert test.name == "McNemar (exact)" and test.p_value == 1.0 and test.detail == {"b": 0.0, "c": 0.0}


@settings(max_examples=30)
@given(_RECANALIZATION, st.integers(0, 10_000))
def test_recanalization_differences_are_b_minus_a_of_the_separate_scores(
    rows: list[tuple[bool, float, float]], seed: int
) -> None:
    truth, a, b = _recanalization(_BOTH_CLASSES + rows)
    report = compare("recanalization", a, b, truth, bootstrap=200, seed=seed)
    _check_against_separate_scores("recanalization", report, a, b, truth)
    assert next(iter(report.metrics)) == "roc_auc"
    delong = {test.name: test for test in report.tests}.get("DeLong (roc_auc)")
    if delong is not None:  # one sign convention, B - A, in the table and in the test's detail
        difference = report.metrics["roc_auc"].difference
        assert delong.detail["difference_b_minus_a"] == pytest.approx(difference, abs=1e-12)
        if delong.statistic is not None and difference:
            assert (delong.statistic > 0) == (difference > 0)


@settings(max_examples=30)
@given(_RECANALIZATION, st.integers(0, 10_000))
def test_a_model_compared_with_itself_differs_by_nothing(
    rows: list[tuple[bool, float, float]], seed: int
) -> None:
    truth, a, _ = _recanalization(_BOTH_CLASSES + rows)
    report = compare("recanalization", a, a, truth, bootstrap=150, seed=seed)
    for name, metric in report.metrics.items():
        assert metric.a == metric.b and metric.difference == 0.0, name
        assert metric.ci95 == (0.0, 0.0), name
    by_name = {test.name: test for test in report.tests}
    assert set(by_name) == {"McNemar (exact)", "DeLong (roc_auc)"}
    assert by_name["McNemar (exact)"].p_value == 1.0
    assert by_name["McNemar (exact)"].detail == {"b": 0.0, "c": 0.0}
    assert by_name["DeLong (roc_auc)"].p_value == 1.0 and by_name["DeLong (roc_auc)"].statistic == 0.0


@settings(max_examples=30)
@given(_RECANALIZATION, st.integers(0, 10_000))
def test_swapping_the_models_negates_the_differences_and_mirrors_the_intervals(
    rows: list[tuple[bool, float, float]], seed: int
) -> None:
    truth, a, b = _recanalization(_BOTH_CLASSES + rows)
    forward = compare("recanalization", a, b, truth, bootstrap=150, seed=seed)
    backward = compare("recanalization", b, a, truth, bootstrap=150, seed=seed, names=("B", "A"))
    for name, metric in forward.metrics.items():
        mirrored = backward.metrics[name]
        assert (mirrored.a, mirrored.b) == (metric.b, metric.a), name
        assert mirrored.difference == pytest.approx(-metric.difference, abs=1e-12), name  # type: ignore[operator]
        assert metric.ci95 is not None and mirrored.ci95 is not None
        assert mirrored.ci95 == pytest.approx((-metric.ci95[1], -metric.ci95[0]), abs=1e-12), name
    forward_tests = {test.name: test for test in forward.tests}
    backward_tests = {test.name: test for test in backward.tests}
    assert set(forward_tests) == set(backward_tests)
    mcnemar_f, mcnemar_b = forward_tests["McNemar (exact)"], backward_tests["McNemar (exact)"]
    assert (mcnemar_b.detail["b"], mcnemar_b.detail["c"]) == (mcnemar_f.detail["c"], mcnemar_f.detail["b"])
    assert mcnemar_b.p_value == mcnemar_f.p_value
    delong_f, delong_b = forward_tests["DeLong (roc_auc)"], backward_tests["DeLong (roc_auc)"]
    assert delong_b.p_value == pytest.approx(delong_f.p_value, rel=1e-9, abs=1e-15)
    assert (delong_b.detail["auc_a"], delong_b.detail["auc_b"]) == (
        delong_f.detail["auc_b"],
        delong_f.detail["auc_a"],
    )
    if delong_f.statistic is None:
        assert delong_b.statistic is None
    else:
        assert delong_b.statistic == pytest.approx(-delong_f.statistic, abs=1e-12)


@settings(max_examples=25)
@given(_TRIPLES, st.integers(0, 10_000))
def test_compare_is_seeded_and_ignores_the_order_of_the_rows(
    triples: list[tuple[str, str, str]], seed: int
) -> None:
    truth, a, b = _occlusion(triples)
    first = compare("occlusion", a, b, truth, bootstrap=150, seed=seed)
    assert compare("occlusion", a, b, truth, bootstrap=150, seed=seed) == first
    reordered = compare(
        "occlusion",
        _shuffled(a, seed),
        _shuffled(b, seed + 1),
        _shuffled(truth, seed + 2),
        bootstrap=150,
        seed=seed,
    )
    assert reordered == first


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1))
def test_the_paired_interval_is_narrower_than_the_unpaired_one_for_correlated_models(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    true = rng.integers(0, 3, n)
    guess_a = np.where(rng.uniform(size=n) < 0.7, true, (true + rng.integers(1, 3, n)) % 3)
    guess_b = guess_a.copy()
    changed = rng.choice(n, size=3, replace=False)
    guess_b[changed] = (guess_b[changed] + rng.integers(1, 3, 3)) % 3  # 3 of 200 predictions changed
    ids = [f"p{i:03d}" for i in range(n)]
    truth = Rows({pid: OCCLUSION[t] for pid, t in zip(ids, true, strict=True)})
    a = Rows({pid: OCCLUSION[g] for pid, g in zip(ids, guess_a, strict=True)})
    b = Rows({pid: OCCLUSION[g] for pid, g in zip(ids, guess_b, strict=True)})
    report = compare("occlusion", a, b, truth, bootstrap=400, seed=seed % 10_000)
    own = [score("occlusion", m, truth, bootstrap=400, seed=seed % 10_000) for m in (a, b)]
    half_widths = []
    for scored in own:
        interval = scored.metrics["accuracy"].ci95
        assert interval is not None
        half_widths.append((interval[1] - interval[0]) / 2)
    paired = report.metrics["accuracy"].ci95
    assert paired is not None
    assert paired[1] - paired[0] < sum(half_widths)
    assert paired[1] - paired[0] <= 3 * 4 / n  # only the 3 changed patients move the difference
    # the difference is carried by the changed patients alone: at most 3 per n in the point estimate
    assert abs(report.metrics["accuracy"].difference or 0.0) <= 3 / n + 1e-12


# ---------------------------------------------------------------------------------------------------------
# compare: the paired tests against hand counts and scikit-learn


@settings(max_examples=40)
@given(_RECANALIZATION)
def test_mcnemar_counts_and_delong_aucs_agree_with_a_direct_computation(
    rows: list[tuple[bool, float, float]],
) -> None:
    truth, a, b = _recanalization([*rows, (True, 0.5, 0.4)])  # never empty
    report = compare("recanalization", a, b, truth, bootstrap=0)
    assert all(metric.ci95 is None for metric in report.metrics.values())
    ids = sorted(truth.values)
    label = np.array([truth.values[pid] for pid in ids])
    right_a = np.array([a.values[pid] for pid in ids]) == label
    right_b = np.array([b.values[pid] for pid in ids]) == label
    by_name = {test.name: test for test in report.tests}
    mcnemar = by_name["McNemar (exact)"]
    b_count, c_count = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    assert mcnemar.detail == {"b": b_count, "c": c_count}
    assert mcnemar.statistic == min(b_count, c_count)
    expected_p = 1.0 if b_count + c_count == 0 else binomtest(min(b_count, c_count), b_count + c_count).pvalue
    assert mcnemar.p_value == pytest.approx(expected_p, rel=1e-9)
    positives = int(label.sum())
    if positives >= 2 and len(ids) - positives >= 2:
        delong = by_name["DeLong (roc_auc)"]
        scores_a = [a.scores[pid][0] for pid in ids]
        scores_b = [b.scores[pid][0] for pid in ids]
        assert delong.detail["auc_a"] == pytest.approx(sk.roc_auc_score(label, scores_a), abs=1e-12)
        assert delong.detail["auc_b"] == pytest.approx(sk.roc_auc_score(label, scores_b), abs=1e-12)
        assert delong.detail["auc_a"] == pytest.approx(report.metrics["roc_auc"].a, abs=1e-9)
        assert 0.0 <= delong.p_value <= 1.0
    else:
        assert "DeLong (roc_auc)" not in by_name
        assert any(note.startswith("no DeLong test of roc_auc") for note in report.notes)


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(OCCLUSION),
            st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
            st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
        ),
        min_size=6,
        max_size=50,
    )
)
def test_occlusion_delong_per_class_aucs_agree_with_scikit_learn(
    rows: list[tuple[str, tuple[int, int, int], tuple[int, int, int]]],
) -> None:
    ids = [f"p{i}" for i in range(len(rows))]
    truth = Rows({pid: label for pid, (label, _, _) in zip(ids, rows, strict=True)})

    def model(k: int) -> Rows:
        probabilities = {
            pid: tuple(w / sum(row[k]) for w in row[k]) for pid, row in zip(ids, rows, strict=True)
        }
        return Rows(
            {pid: OCCLUSION[int(np.argmax(p))] for pid, p in probabilities.items()}, scores=probabilities
        )

    a, b = model(1), model(2)
    report = compare("occlusion", a, b, truth, bootstrap=50)
    by_name = {test.name: test for test in report.tests}
    ordered = sorted(truth.values)
    labels = [truth.values[pid] for pid in ordered]
    for c, name in enumerate(OCCLUSION):
        positive = np.array([label == name for label in labels])
        test_name = f"DeLong (roc_auc[{name}])"
        if 2 <= positive.sum() <= len(labels) - 2:
            found = by_name[test_name]
            expected_a = sk.roc_auc_score(positive, [a.scores[pid][c] for pid in ordered])
            expected_b = sk.roc_auc_score(positive, [b.scores[pid][c] for pid in ordered])
            assert found.detail["auc_a"] == pytest.approx(expected_a, abs=1e-12)
            assert found.detail["auc_b"] == pytest.approx(expected_b, abs=1e-12)
        else:
            assert test_name not in by_name
    assert "roc_auc_ovr" in report.metrics


def test_comparing_a_model_with_probabilities_to_one_without_does_not_crash() -> None:
    truth = Rows({f"p{i}": OCCLUSION[i % 3] for i in range(30)})
    with_scores = Rows(
        dict(truth.values),
        scores={pid: tuple(float(label == c) for c in OCCLUSION) for pid, label in truth.values.items()},
    )
    without = Rows({pid: "M1" for pid in truth.values})
    try:
        report = compare("occlusion", with_scores, without, truth, bootstrap=50)
    except ScoringError:
        return  # refusing the pair with a message is acceptable
    assert report.metrics["accuracy"].difference == pytest.approx(1 / 3 - 1.0)


# ---------------------------------------------------------------------------------------------------------
# compare_files and `strokebench compare`


def _write_occlusion_files(folder: Path, n: int = 30) -> tuple[Path, Path, Path]:
    truth, a, b = folder / "truth.csv", folder / "a.csv", folder / "b.csv"
    truth.write_text("patient_id,label\n" + "".join(f"p{i},{OCCLUSION[i % 3]}\n" for i in range(n)))
    a.write_text("patient_id,prediction\n" + "".join(f"p{i},{OCCLUSION[(i // 2) % 3]}\n" for i in range(n)))
    b.write_text("patient_id,prediction\n" + "".join(f"p{i},{OCCLUSION[(i % 5) % 3]}\n" for i in range(n)))
    return truth, a, b


def test_compare_files_refuses_a_file_of_two_models_and_the_cli_writes_json_and_markdown(
    tmp_path: Path,
) -> None:
    truth, a, b = _write_occlusion_files(tmp_path)
    two = tmp_path / "two.csv"
    two.write_text(
        "patient_id,prediction,model\n"
        + "".join(f"p{i},{OCCLUSION[i % 3]},X\np{i},M1,Y\n" for i in range(30))
    )
    with pytest.raises(ScoringError, match="one model per file"):
        compare_files("occlusion", a, two, truth=truth, bootstrap=10)
    refused = runner.invoke(app, ["compare", str(two), str(b), "--task", "occlusion", "--truth", str(truth)])
    assert refused.exit_code == 2 and "one model per file" in refused.output

    out = tmp_path / "out.json"
    common = ["--task", "occlusion", "--truth", str(truth), "--bootstrap", "100", "--seed", "3"]
    result = runner.invoke(app, ["compare", str(a), str(b), *common, "--json", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert {"task", "a", "b", "n", "metrics", "tests"} <= set(saved)
    assert (saved["task"], saved["a"], saved["b"], saved["n"]) == ("occlusion", "a.csv", "b.csv", 30)
    expected = compare_files("occlusion", a, b, truth=truth, bootstrap=100, seed=3)
    assert CompareReport.model_validate(saved) == expected
    assert saved["metrics"]["accuracy"]["difference"] == pytest.approx(
        saved["metrics"]["accuracy"]["b"] - saved["metrics"]["accuracy"]["a"], abs=1e-9
    )
    assert [test["name"] for test in saved["tests"]] == ["McNemar (exact)"]

    markdown = runner.invoke(app, ["compare", str(a), str(b), *common, "--markdown"])
    assert markdown.exit_code == 0, markdown.output
    lines = markdown.output.splitlines()
    assert any(line.startswith("| metric") for line in lines)
    assert any(line.startswith("| accuracy |") for line in lines)
    assert any(line.startswith("| McNemar (exact) |") for line in lines)


# ---------------------------------------------------------------------------------------------------------
# the leaderboard: recording, replacing, ordering, published rows, corrupt files


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_score_name_records_runs_and_the_leaderboard_ranks_them_beside_published_baselines(
    tmp_path: Path,
) -> None:
    truth, a, b = _write_occlusion_files(tmp_path)
    board = tmp_path / "leaderboard.jsonl"
    common = ["--task", "occlusion", "--truth", str(truth), "--bootstrap", "100"]

    first = runner.invoke(app, ["score", str(a), *common, "--name", "run1"])
    assert first.exit_code == 0, first.output
    assert [line["name"] for line in _lines(board)] == ["run1"]
    again = runner.invoke(app, ["score", str(a), *common, "--name", "run1"])
    assert again.exit_code == 0, again.output
    assert [line["name"] for line in _lines(board)] == ["run1"]
    second = runner.invoke(app, ["score", str(b), *common, "--name", "run2"])
    assert second.exit_code == 0, second.output
    assert [line["name"] for line in _lines(board)] == ["run1", "run2"]

    multi = tmp_path / "multi.csv"
    multi.write_text(
        "patient_id,prediction,model\n"
        + "".join(f"p{i},{OCCLUSION[i % 3]},X\np{i},M2,Y\n" for i in range(30))
    )
    third = runner.invoke(app, ["score", str(multi), *common, "--name", "multi"])
    assert third.exit_code == 0, third.output
    entries = read_leaderboard(board)
    assert [entry.label for entry in entries] == ["run1", "run2", "multi/X", "multi/Y"]
    assert [entry.model for entry in entries] == [None, None, "X", "Y"]
    assert entries[0].predictions == "a.csv" and entries[2].predictions == "multi.csv"
    assert all(entry.replicates is not None and len(entry.replicates) == 100 for entry in entries)
    assert len({entry.truth_fingerprint for entry in entries}) == 1
    expected = score(
        "occlusion",
        Rows({f"p{i}": OCCLUSION[(i // 2) % 3] for i in range(30)}),
        Rows({f"p{i}": OCCLUSION[i % 3] for i in range(30)}),
        bootstrap=100,
    )
    assert entries[0].metrics["accuracy"] == expected.metrics["accuracy"]

    out = tmp_path / "board.json"
    shown = runner.invoke(
        app, ["leaderboard", "--task", "occlusion", "--leaderboard", str(board), "--json", str(out)]
    )
    assert shown.exit_code == 0, shown.output
    rows = json.loads(out.read_text())
    card = TASKS["occlusion"]
    primary = [row["metrics"][card.primary] for row in rows]
    defined = [value for value in primary if value is not None]
    assert primary == defined + [None] * (len(primary) - len(defined))  # undefined last
    assert defined == sorted(defined, reverse=True)  # best first
    published = [row for row in rows if row["source"] == PUBLISHED]
    assert sorted(row["name"] for row in published) == sorted(p.model for p in card.published)
    for row in published:
        assert row["rank_stability"] is None and row["primary_ci95"] is None
    scored = {row["name"]: row for row in rows if row["source"] != PUBLISHED}
    assert set(scored) == {"run1", "run2", "multi/X", "multi/Y"}
    assert len(rows) == len(card.published) + 4
    assert scored["multi/X"]["metrics"]["accuracy"] == 1.0
    for row in scored.values():
        assert row["source"].startswith("scored (") and row["n"] == 30
        assert row["rank_stability"] is not None and 0.0 <= row["rank_stability"] <= 1.0
    assert scored["multi/X"]["rank_stability"] == 1.0  # perfect on every resample: always first
    single = runner.invoke(app, ["score", str(a), *common, "--name", "multi"])
    assert single.exit_code == 0, single.output  # recording a name again replaces all its models
    assert [entry.label for entry in read_leaderboard(board)] == ["run1", "run2", "multi"]
    runner.invoke(app, ["score", str(multi), *common, "--name", "multi"])

    with board.open("a") as handle:
        handle.write('{"task": "occlusion", "name": \n')
    broken = runner.invoke(app, ["leaderboard", "--task", "occlusion", "--leaderboard", str(board)])
    assert broken.exit_code == 2 and "line 5" in broken.output
    refused = runner.invoke(app, ["score", str(a), *common, "--name", "run3"])
    assert refused.exit_code == 2 and "line 5" in refused.output


def test_leaderboard_option_without_a_name_is_refused_and_an_empty_board_shows_baselines(
    tmp_path: Path,
) -> None:
    truth, a, _ = _write_occlusion_files(tmp_path)
    refused = runner.invoke(
        app,
        ["score", str(a), "--task", "occlusion", "--truth", str(truth), "--leaderboard", str(tmp_path / "x")],
    )
    assert refused.exit_code == 2 and "--name" in refused.output
    assert not (tmp_path / "x").exists()
    out = tmp_path / "empty.json"
    shown = runner.invoke(
        app,
        [
            "leaderboard",
            "--task",
            "recanalization",
            "--leaderboard",
            str(tmp_path / "none.jsonl"),
            "--json",
            str(out),
        ],
    )
    assert shown.exit_code == 0, shown.output
    rows = json.loads(out.read_text())
    assert [row["name"] for row in rows] == [
        p.model for p in sorted(TASKS["recanalization"].published, key=lambda p: -p.metrics["roc_auc"])
    ]


def test_a_leaderboard_line_without_the_primary_metric_is_reported_with_its_line(tmp_path: Path) -> None:
    truth, a, _ = _write_occlusion_files(tmp_path)
    common = ["--task", "occlusion", "--truth", str(truth), "--bootstrap", "20"]
    assert runner.invoke(app, ["score", str(a), *common, "--name", "run1"]).exit_code == 0
    board = tmp_path / "leaderboard.jsonl"
    [line] = _lines(board)
    with board.open("a") as handle:
        handle.write(json.dumps({**line, "name": "edited", "metrics": {}}) + "\n")
    shown = runner.invoke(app, ["leaderboard", "--task", "occlusion", "--leaderboard", str(board)])
    assert shown.exit_code == 2 and "line 2" in shown.output


def test_a_recorded_run_with_undefined_resamples_can_be_read_back(tmp_path: Path) -> None:
    labels = {f"p{i}": int(i < 2) for i in range(12)}  # 2 positives of 12: many resamples hold none
    predicted = Rows(
        {pid: int(i % 3 == 0) for i, pid in enumerate(labels)},
        scores={pid: ((i % 5) / 5,) for i, pid in enumerate(labels)},
    )
    report = score("recanalization", predicted, Rows(labels), bootstrap=200, replicates=True)
    assert report.replicates is not None and None in report.replicates
    predictions = tmp_path / "pred.csv"
    predictions.write_text("recorded")
    board = tmp_path / "leaderboard.jsonl"
    record(board, entries_from([report], "run", predictions))
    [entry] = read_leaderboard(board)
    assert entry.metrics == entries_from([report], "run", predictions)[0].metrics


# ---------------------------------------------------------------------------------------------------------
# rank stability


def _entry(report: object, name: str, folder: Path) -> LeaderboardEntry:
    predictions = folder / f"{name}.csv"
    predictions.write_text(name)
    [entry] = entries_from([report], name, predictions)  # type: ignore[list-item]
    return entry


def _stability_by_hand(card: TaskCard, entries: list[LeaderboardEntry]) -> dict[int, float]:
    """Rank stability recomputed from the replicates: ranks by counting strictly better runs."""
    lower = card.primary in card.lower_is_better

    def better(x: float | None, y: float | None) -> bool:  # x strictly better than y, undefined worst
        x_ok = x is not None and not np.isnan(x)
        y_ok = y is not None and not np.isnan(y)
        if not x_ok:
            return False
        if not y_ok:
            return True
        return bool(x < y) if lower else bool(x > y)  # type: ignore[operator]

    groups: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for index, entry in enumerate(entries):
        if entry.replicates is not None and entry.metrics[card.primary].value is not None:
            groups[(entry.truth_fingerprint, entry.seed, entry.bootstrap)].append(index)
    result = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in members:
            value = entries[i].metrics[card.primary].value
            point_rank = sum(better(entries[j].metrics[card.primary].value, value) for j in members)
            replicates = entries[i].replicates
            assert replicates is not None
            kept = 0
            for r, own in enumerate(replicates):
                rank = sum(better(entries[j].replicates[r], own) for j in members)  # type: ignore[index]
                kept += rank == point_rank
            result[i] = kept / len(replicates)
    return result


def test_a_run_better_on_every_patient_keeps_its_rank_on_every_resample(tmp_path: Path) -> None:
    truth = Rows({f"p{i}": OCCLUSION[i % 3] for i in range(25)})
    wrong = Rows({pid: OCCLUSION[(OCCLUSION.index(v) + 1) % 3] for pid, v in truth.values.items()})
    entries = [
        _entry(score("occlusion", model, truth, bootstrap=80, replicates=True), name, tmp_path)
        for model, name in ((wrong, "wrong"), (truth, "perfect"))
    ]
    assert rank_stability(TASKS["occlusion"], entries) == {0: 1.0, 1: 1.0}
    rows = [row for row in leaderboard("occlusion", entries) if row.source != PUBLISHED]
    assert [(row.name, row.rank_stability) for row in rows] == [("perfect", 1.0), ("wrong", 1.0)]


def test_two_runs_of_equal_quality_swap_places_and_a_run_alone_gets_no_stability(tmp_path: Path) -> None:
    n = 20
    truth = Rows({f"p{i:02d}": OCCLUSION[i % 3] for i in range(n)})
    ids = sorted(truth.values)

    def right_on(half: range) -> Rows:
        return Rows(
            {
                pid: truth.values[pid]
                if i in half
                else OCCLUSION[(OCCLUSION.index(truth.values[pid]) + 1) % 3]
                for i, pid in enumerate(ids)
            }
        )

    first, second = right_on(range(0, n // 2)), right_on(range(n // 2, n))
    entries = [
        _entry(score("occlusion", model, truth, bootstrap=200, seed=5, replicates=True), name, tmp_path)
        for model, name in ((first, "first"), (second, "second"))
    ]
    assert entries[0].metrics["accuracy"].value == entries[1].metrics["accuracy"].value == 0.5
    stability = rank_stability(TASKS["occlusion"], entries)
    assert set(stability) == {0, 1}
    assert all(0.0 < value < 1.0 for value in stability.values())
    assert stability == pytest.approx(_stability_by_hand(TASKS["occlusion"], entries), abs=1e-12)
    # tied at the point: each keeps rank 1 unless the other wins the resample, so the shares sum to 1 + ties
    ties = np.mean(np.equal(entries[0].replicates, entries[1].replicates))
    assert stability[0] + stability[1] == pytest.approx(1.0 + ties, abs=1e-12)

    alone = [entries[0]]
    assert rank_stability(TASKS["occlusion"], alone) == {}
    [row] = [row for row in leaderboard("occlusion", alone) if row.source != PUBLISHED]
    assert row.rank_stability is None
    unreplicated = [entries[0], entries[1].model_copy(update={"replicates": None})]
    assert rank_stability(TASKS["occlusion"], unreplicated) == {}


@settings(max_examples=25)
@given(
    st.integers(3, 30),
    st.integers(2, 4),
    st.integers(20, 120),
    st.integers(0, 10_000),
)
def test_rank_stability_equals_a_recomputation_from_the_replicates(
    tmp_path: Path, n: int, models: int, bootstrap: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    truth = Rows({f"p{i}": OCCLUSION[k] for i, k in enumerate(labels)})
    other_truth = Rows({**truth.values, "p0": OCCLUSION[(labels[0] + 1) % 3]})  # another fingerprint
    entries = []
    for m in range(models):
        guess = np.where(rng.uniform(size=n) < rng.uniform(0.2, 0.9), labels, rng.integers(0, 3, n))
        model = Rows({f"p{i}": OCCLUSION[k] for i, k in enumerate(guess)})
        entries.append(
            _entry(
                score("occlusion", model, truth, bootstrap=bootstrap, seed=seed, replicates=True),
                f"m{m}",
                tmp_path,
            )
        )
        if m == 0:  # the same predictions on another truth, with the same seed and resamples
            elsewhere = score(
                "occlusion", model, other_truth, bootstrap=bootstrap, seed=seed, replicates=True
            )
            entries.append(_entry(elsewhere, "elsewhere", tmp_path))
    card = TASKS["occlusion"]
    stability = rank_stability(card, entries)
    assert entries[1].truth_fingerprint != entries[0].truth_fingerprint
    assert 1 not in stability  # alone on its truth: not ranked with the others
    assert set(stability) == set(range(len(entries))) - {1}
    assert stability == pytest.approx(_stability_by_hand(card, entries), abs=1e-12)
    # rows carry the stability of their own entry
    by_name = {row.name: row.rank_stability for row in leaderboard("occlusion", entries)}
    for index, entry in enumerate(entries):
        assert by_name[entry.label] == stability.get(index)


# ---------------------------------------------------------------------------------------------------------
# replicates: the primary metric on the resamples of resample_weights


@settings(max_examples=30)
@given(
    st.lists(st.tuples(st.sampled_from(OCCLUSION), st.sampled_from(OCCLUSION)), min_size=1, max_size=40),
    st.integers(1, 200),
    st.integers(0, 10_000),
)
def test_replicates_are_the_accuracy_of_explicit_index_resamples(
    pairs: list[tuple[str, str]], bootstrap: int, seed: int
) -> None:
    truth = Rows({f"p{i}": t for i, (t, _) in enumerate(pairs)})
    predicted = Rows({f"p{i}": p for i, (_, p) in enumerate(pairs)})
    report = score("occlusion", predicted, truth, bootstrap=bootstrap, seed=seed, replicates=True)
    assert report.replicates is not None and len(report.replicates) == bootstrap
    n = len(pairs)
    ids = sorted(truth.values)  # patients in the order of the evidence
    correct = np.array([predicted.values[pid] == truth.values[pid] for pid in ids], dtype=np.float64)
    drawn = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))  # one chunk: n * B is small
    multiplicities = np.stack([np.bincount(row, minlength=n) for row in drawn]).astype(np.float64)
    weights = np.concatenate(list(resample_weights(n, bootstrap, seed)))
    np.testing.assert_array_equal(weights, multiplicities)
    for b in range(bootstrap):
        by_index = correct[drawn[b]].mean()
        by_weight = (multiplicities[b] * correct).sum() / multiplicities[b].sum()
        assert by_index == pytest.approx(by_weight, abs=1e-12)
        assert report.replicates[b] == pytest.approx(by_index, abs=1e-9)
    without = score("occlusion", predicted, truth, bootstrap=bootstrap, seed=seed)
    assert without.replicates is None
    assert "replicates" not in without.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------------------
# `strokebench score`: Markdown and JSON


def test_score_prints_markdown_and_writes_the_json_shapes(tmp_path: Path) -> None:
    truth, a, _ = _write_occlusion_files(tmp_path)
    common = ["--task", "occlusion", "--truth", str(truth), "--bootstrap", "100"]
    markdown = runner.invoke(app, ["score", str(a), *common, "--markdown"])
    assert markdown.exit_code == 0, markdown.output
    lines = markdown.output.splitlines()
    assert any(line.startswith("| metric | value | 95% CI |") for line in lines)
    assert any(line.startswith("| accuracy (primary) |") for line in lines)
    for name, policy in TASKS["occlusion"].policies.items():
        assert f"- {name}: {policy}" in markdown.output
    assert not (tmp_path / "leaderboard.jsonl").exists()  # nothing recorded without --name

    single = tmp_path / "single.json"
    result = runner.invoke(app, ["score", str(a), *common, "--json", str(single)])
    assert result.exit_code == 0, result.output
    saved = json.loads(single.read_text())
    assert isinstance(saved, dict)
    assert {"task", "n", "metrics", "confusion_matrix", "per_fold"} <= set(saved)
    assert saved["task"] == "occlusion" and saved["n"] == 30 and saved["per_fold"] is None
    accuracy = saved["metrics"]["accuracy"]
    assert set(accuracy) == {"value", "ci95"} and len(accuracy["ci95"]) == 2
    assert accuracy["ci95"][0] <= accuracy["value"] <= accuracy["ci95"][1]
    matrix = saved["confusion_matrix"]
    assert matrix["labels"] == OCCLUSION
    assert len(matrix["matrix"]) == 3 and all(len(row) == 3 for row in matrix["matrix"])
    assert sum(map(sum, matrix["matrix"])) == 30
    assert accuracy["value"] == pytest.approx(sum(matrix["matrix"][k][k] for k in range(3)) / 30)

    multi = tmp_path / "multi.csv"
    multi.write_text(
        "patient_id,prediction,model\n"
        + "".join(f"p{i},{OCCLUSION[i % 3]},X\np{i},M2,Y\n" for i in range(30))
    )
    several = tmp_path / "several.json"
    result = runner.invoke(app, ["score", str(multi), *common, "--json", str(several), "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output.count("| metric | value | 95% CI |") == 2
    reports = json.loads(several.read_text())
    assert isinstance(reports, list) and [r["model"] for r in reports] == ["X", "Y"]
    assert reports[0]["metrics"]["accuracy"]["value"] == 1.0
    assert reports[1]["metrics"]["accuracy"]["value"] == pytest.approx(10 / 30)
