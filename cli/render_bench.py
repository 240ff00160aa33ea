"""Rendering the benchmark commands' results: task cards, scores, comparisons and leaderboards, as rich
tables or as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from cli.render import (
    TableData,
    console,
    err_console,
    interval,
    markdown_table,
    note,
    number,
    plain,
    print_table,
)
from strokedata.safetext import printable

if TYPE_CHECKING:
    from strokemodels.benchmark import ScoreReport, TaskCard
    from strokemodels.benchmark.compare import CompareReport
    from strokemodels.benchmark.leaderboard import LeaderboardRow
    from strokemodels.benchmark.tasks import PublishedResult


def render_task_list(cards: list[TaskCard]) -> None:
    """Print one line per task: name, title, primary metric, published baselines."""
    rows = [[card.name, card.title, card.primary, str(len(card.published))] for card in cards]
    print_table(("Benchmark tasks", ["task", "title", "primary metric", "published baselines"], rows))


def _published_table(card: TaskCard) -> TableData:
    """Return the published baselines of a task: the first three metrics as columns, any other figure a
    row reports (a per-class precision, say) named in the last column."""
    reported = [m for m in card.metrics if any(m in result.metrics for result in card.published)]
    shown = reported[:3]

    def figure(result: PublishedResult, metric: str) -> str:
        spread = f" +- {result.std[metric]:g}" if metric in result.std else ""
        return f"{result.metrics[metric]:g}{spread}"

    rows = [
        [
            result.model,
            str(result.n or "-"),
            result.protocol,
            *(figure(result, m) if m in result.metrics else "-" for m in shown),
            ", ".join(f"{m} {figure(result, m)}" for m in result.metrics if m not in shown) or "-",
        ]
        for result in card.published
    ]
    headers = ["model", "n", "protocol", *shown, "other figures"]
    return "Published baselines (other cohorts, not comparable without care)", headers, rows


def render_task(card: TaskCard) -> None:
    """Print a task card in full, published baselines marked as such."""
    plain(f"{card.name}: {card.title}")
    for label, text in (
        ("source", card.source),
        ("inputs", ", ".join(card.inputs)),
        ("label", card.label),
        ("truth", card.truth),
        ("predictions", card.prediction_format),
        ("metrics", ", ".join(card.metrics)),
    ):
        plain(f"  {label}: {text}")
    for name, policy in card.policies.items():
        plain(f"  policy, {name}: {policy}")
    print_table(_published_table(card))


def _score_tables(report: ScoreReport, card: TaskCard) -> list[TableData]:
    who = f" {report.model}" if report.model else ""
    units = f", {report.n_units} slices" if report.unit == "slice" else ""
    resamples = f"95% CI from {report.bootstrap} bootstrap resamples"
    title = f"{report.task}{who}: n = {report.n} patients{units}, {resamples}"
    rows = [
        [name + (" (primary)" if name == card.primary else ""), number(metric.value), interval(metric.ci95)]
        for name, metric in report.metrics.items()
    ]
    tables: list[TableData] = [(title, ["metric", "value", "95% CI"], rows)]
    if report.per_fold is not None and report.fold_mean_std is not None:
        metrics = list(report.fold_mean_std)
        fold_rows = [[f.fold, str(f.n), *(number(f.metrics[m]) for m in metrics)] for f in report.per_fold]
        fold_rows.append(
            [
                "mean +- std",
                "",
                *(f"{number(mean)} +- {number(std)}" for mean, std in report.fold_mean_std.values()),
            ]
        )
        tables.append(
            (f"{report.task}{who}: per fold (std: sample, ddof 1)", ["fold", "n", *metrics], fold_rows)
        )
    if report.confusion_matrix is not None:
        matrix = report.confusion_matrix
        tables.append(
            (
                f"{report.task}{who}: confusion matrix (rows: truth, columns: prediction)",
                ["", *matrix.labels],
                [
                    [label, *(str(c) for c in row)]
                    for label, row in zip(matrix.labels, matrix.matrix, strict=True)
                ],
            )
        )
    return tables


def _score_notes(report: ScoreReport) -> list[str]:
    notes = []
    if report.missing_scored_as_wrong:
        notes.append(
            f"{report.missing_scored_as_wrong} {report.unit}s without a prediction were scored as wrong "
            "(--allow-missing)"
        )
    if report.not_in_any_fold:
        notes.append(
            f"{report.not_in_any_fold} patients without a prediction have no fold: they count in the pooled "
            "metrics, not in the per-fold ones"
        )
    if report.outside_partition_not_scored:
        notes.append(
            f"{report.outside_partition_not_scored} predicted patients of the dataset lie outside the "
            "partition scored and were left aside"
        )
    if report.unlabelled_not_scored:
        notes.append(
            f"{report.unlabelled_not_scored} patients of the dataset lack the {report.task} label and were "
            "not scored"
        )
    return notes


def render_scores(report: ScoreReport, card: TaskCard) -> None:
    """Print each metric with its 95% CI, per-fold metrics, the confusion matrix and the policies."""
    for data in _score_tables(report, card):
        print_table(data)
    for text in _score_notes(report):
        err_console.print(f"[yellow]warning:[/] {escape(printable(text))}", highlight=False, soft_wrap=True)
    for name, policy in report.policies.items():
        console.print(f"policy, {name}: {policy}", markup=False, highlight=False, soft_wrap=True)


def markdown_scores(reports: list[ScoreReport], card: TaskCard) -> str:
    """Return the reports as Markdown tables, followed by their notes and the task's policies."""
    parts = [markdown_table(data) for report in reports for data in _score_tables(report, card)]
    notes = [text for report in reports for text in _score_notes(report)]
    policies = [f"- {name}: {policy}" for name, policy in card.policies.items()]
    return "\n".join(
        parts + ["\n".join(f"- {text}" for text in notes) + "\n"] * bool(notes) + ["\n".join(policies)]
    )


def _compare_table(report: CompareReport) -> list[TableData]:
    title = (
        f"{report.task}: B - A, B = {report.b}, A = {report.a}, n = {report.n} patients, "
        f"paired 95% CI from {report.bootstrap} resamples"
    )
    rows = [
        [name, number(m.a), number(m.b), number(m.difference), interval(m.ci95)]
        for name, m in report.metrics.items()
    ]
    tables: list[TableData] = [(title, ["metric", report.a, report.b, "B - A", "95% CI"], rows)]
    if report.tests:
        tests = [
            [
                test.name,
                "-" if test.statistic is None else f"{test.statistic:.4g}",
                f"{test.p_value:.4g}",
                ", ".join(f"{k} {v:.4g}" for k, v in test.detail.items()),
            ]
            for test in report.tests
        ]
        tables.append(
            ("Paired tests (two-sided; statistics signed B - A)", ["test", "statistic", "p", "detail"], tests)
        )
    return tables


def render_compare(report: CompareReport) -> None:
    """Print the paired differences, the paired tests and the notes of a comparison."""
    for data in _compare_table(report):
        print_table(data)
    for text in report.notes:
        note(text)


def markdown_compare(report: CompareReport) -> str:
    """Return a comparison as Markdown tables and notes."""
    return "\n".join(
        [markdown_table(data) for data in _compare_table(report)] + [f"- {t}" for t in report.notes]
    )


def _leaderboard_table(rows: list[LeaderboardRow], card: TaskCard) -> TableData:
    shown = card.metrics[:3]  # the published baselines report at most three; --json has every metric
    headers = ["#", "name", "source", "n", "protocol", *shown, f"{card.primary} 95% CI", "rank stability"]
    cells = [
        [
            str(place),
            row.name,
            row.source,
            "-" if row.n is None else str(row.n),
            row.protocol,
            *("-" if row.metrics[m] is None else f"{row.metrics[m]:.4g}" for m in shown),
            interval(row.primary_ci95),
            "-" if row.rank_stability is None else f"{row.rank_stability:.0%}",
        ]
        for place, row in enumerate(rows, start=1)
    ]
    title = (
        f"Leaderboard {card.name}, by {card.primary}; rank stability: share of paired resamples in which a "
        "scored run keeps its rank among the runs on the same truth"
    )
    return title, headers, cells


def render_leaderboard(rows: list[LeaderboardRow], card: TaskCard) -> None:
    """Print the leaderboard of a task: scored runs and published baselines, marked as such."""
    print_table(_leaderboard_table(rows, card))


def markdown_leaderboard(rows: list[LeaderboardRow], card: TaskCard) -> str:
    """Return the leaderboard of a task as a Markdown table."""
    return markdown_table(_leaderboard_table(rows, card))
