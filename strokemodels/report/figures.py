"""The report's pictures (matplotlib, Agg), each returned as PNG bytes: a confusion matrix, ROC curves
with a 95% bootstrap band, a calibration diagram, per-class or per-region F1, training curves.
Same numbers, same bytes: no timestamp or software tag is written into the PNGs."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

DPI = 90
BLUE, ORANGE, GREEN, RED, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#999999"
CYCLE = (BLUE, ORANGE, GREEN, RED, "#CC79A7", "#56B4E9", "#F0E442")


def figure_of(width: float, height: float, columns: int = 1):  # type: ignore[no-untyped-def]
    """Return a new (figure, axes) on the Agg canvas: ``columns`` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height), dpi=DPI)


def png(figure) -> bytes:  # type: ignore[no-untyped-def]
    """Return ``figure`` as PNG bytes without metadata, and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def confusion_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> bytes:
    """Return a confusion matrix (rows truth, columns prediction) with counts in the cells."""
    values = np.asarray(matrix, dtype=float)
    figure, axes = figure_of(1.2 + 0.8 * len(labels), 1.0 + 0.7 * len(labels))
    axes.imshow(values, cmap="Blues", vmin=0, vmax=max(1.0, values.max()))
    for (row, column), count in np.ndenumerate(values):
        dark = count > values.max() / 2
        axes.text(column, row, f"{int(count)}", ha="center", va="center", color="white" if dark else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 2 else 0)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    return png(figure)


def roc_points(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (false positive rates, true positive rates, AUC) of binary ``truth`` against ``score``
    (scikit-learn's roc_curve and auc); NaN AUC when one class is absent."""
    from sklearn.metrics import auc, roc_curve  # type: ignore[import-untyped]

    if truth.min() == truth.max():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    fpr, tpr, _ = roc_curve(truth, score)
    return fpr, tpr, float(auc(fpr, tpr))


def roc_band(
    truth: np.ndarray, score: np.ndarray, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (a grid of false positive rates, the 2.5th and 97.5th percentiles of the true positive
    rate there) over bootstrap resamples of the patients (resamples with one class skipped)."""
    grid = np.linspace(0, 1, 101)
    generator = np.random.default_rng(seed)
    curves = []
    for _ in range(resamples):
        chosen = generator.integers(0, len(truth), len(truth))
        if truth[chosen].min() == truth[chosen].max():
            continue
        fpr, tpr, _ = roc_points(truth[chosen], score[chosen])
        curves.append(np.interp(grid, fpr, tpr))
    if not curves:
        return grid, grid, grid
    low, high = np.percentile(np.array(curves), [2.5, 97.5], axis=0)
    return grid, low, high


def _unit_square(figure, axes, labels: tuple[str, str], title: str, legend: str) -> bytes:  # type: ignore[no-untyped-def]
    """Return the PNG of a plot on [0, 1] x [0, 1] with its diagonal (chance, or perfect calibration)
    dotted, its axis labels, legend and title."""
    axes.plot([0, 1], [0, 1], color=GREY, linestyle=":", linewidth=1)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=8, loc=legend)
    axes.set_title(title, fontsize=10)
    return png(figure)


def roc_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], resamples: int, seed: int, title: str) -> bytes:
    """Return ROC curves, one per named (truth 0/1, score) pair, each with its 95% bootstrap band."""
    figure, axes = figure_of(4.2, 3.8)
    for index, (name, (truth, score)) in enumerate(curves.items()):
        colour = CYCLE[index % len(CYCLE)]
        fpr, tpr, area = roc_points(truth, score)
        grid, low, high = roc_band(truth, score, resamples, seed + index)
        axes.fill_between(grid, low, high, color=colour, alpha=0.18, linewidth=0)
        axes.plot(fpr, tpr, color=colour, label=f"{name} (AUC {area:.2f})")
    return _unit_square(figure, axes, ("false positive rate", "true positive rate"), title, "lower right")


def calibration_png(pairs: dict[str, tuple[np.ndarray, np.ndarray]], title: str, bins: int = 5) -> bytes:
    """Return a reliability diagram: per named (truth 0/1, probability) pair, the observed frequency in
    each of ``bins`` equal-width probability bins against the bin's mean probability."""
    figure, axes = figure_of(4.2, 3.8)
    edges = np.linspace(0, 1, bins + 1)
    for index, (name, (truth, probability)) in enumerate(pairs.items()):
        which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        mean = [float(probability[which == b].mean()) for b in used]
        observed = [float(truth[which == b].mean()) for b in used]
        axes.plot(mean, observed, marker="o", color=CYCLE[index % len(CYCLE)], label=name)
    return _unit_square(figure, axes, ("predicted probability", "observed frequency"), title, "upper left")


def f1_png(names: Sequence[str], scores: Sequence[float | None], title: str) -> bytes:
    """Return horizontal bars of F1 per class or region (an undefined F1 drawn as an empty bar, 'n/a')."""
    figure, axes = figure_of(4.6, 0.9 + 0.28 * len(names))
    values = [0.0 if s is None else s for s in scores]
    axes.barh(range(len(names)), values, color=BLUE)
    for index, score in enumerate(scores):
        axes.text(
            (score or 0) + 0.01, index, "n/a" if score is None else f"{score:.2f}", va="center", fontsize=8
        )
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xlabel("F1")
    axes.set_title(title, fontsize=10)
    return png(figure)


def curves_png(runs: Sequence[dict[str, list[float | None]]], metric: str, title: str) -> bytes:
    """Return the training loss (left axis) and the validation ``metric`` (right axis) of each run by
    epoch, one colour per run (fold)."""
    figure, axes = figure_of(5.0, 3.2)
    other = axes.twinx()
    for index, run in enumerate(runs):
        colour = CYCLE[index % len(CYCLE)]
        epochs = [e for e in run.get("epoch", []) if e is not None]
        loss = [np.nan if v is None else v for v in run.get("train_loss", [])]
        axes.plot(epochs, loss, color=colour, marker="o", label=f"fold {index} loss")
        if metric in run:
            values = [np.nan if v is None else v for v in run[metric]]
            other.plot(epochs, values, color=colour, linestyle="--", marker="x")
    axes.set_xlabel("epoch")
    axes.set_ylabel("training loss (solid)")
    other.set_ylabel(f"{metric} (dashed)")
    axes.set_title(title, fontsize=10)
    return png(figure)
