"""Metrics as pure functions of counts, vectorised over a leading axis of bootstrap resamples.

Conventions (as scikit-learn with zero_division=0): precision or recall with a zero denominator is 0;
F1 is 0 when precision + recall is 0. Counts arrays have shape (..., K, K) for a confusion matrix
(rows = truth, columns = prediction), so one call scores the point estimate and every resample.
"""

from __future__ import annotations

import numpy as np


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Return numerator / denominator, 0 where the denominator is 0."""
    shape = np.broadcast(numerator, denominator).shape
    return np.asarray(np.divide(numerator, denominator, out=np.zeros(shape), where=denominator != 0))


def confusion_metrics(confusion: np.ndarray, classes: list[str]) -> dict[str, np.ndarray]:
    """Return accuracy, balanced accuracy, macro F1 and per-class precision, recall, F1 of (..., K, K)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    truth_totals = confusion.sum(axis=-1)
    predicted_totals = confusion.sum(axis=-2)
    precision = _divide(true_positive, predicted_totals)
    recall = _divide(true_positive, truth_totals)
    f1 = _divide(2 * precision * recall, precision + recall)
    present = truth_totals > 0
    result = {
        "accuracy": _divide(true_positive.sum(axis=-1), confusion.sum(axis=(-2, -1))),
        "balanced_accuracy": _divide((recall * present).sum(axis=-1), present.sum(axis=-1)),
        "macro_f1": f1.mean(axis=-1),
    }
    for k, name in enumerate(classes):
        result[f"precision[{name}]"] = precision[..., k]
        result[f"recall[{name}]"] = recall[..., k]
        result[f"f1[{name}]"] = f1[..., k]
    return result


def binary_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Return accuracy, precision, sensitivity and specificity of (..., 2, 2) counts (class 1 positive)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tn, fp = confusion[..., 0, 0], confusion[..., 0, 1]
    fn, tp = confusion[..., 1, 0], confusion[..., 1, 1]
    return {
        "accuracy": _divide(tp + tn, tp + tn + fp + fn),
        "precision": _divide(tp, tp + fp),
        "sensitivity": _divide(tp, tp + fn),
        "specificity": _divide(tn, tn + fp),
    }


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Return ROC-AUC of (..., n) binary truth and scores (Mann-Whitney, ties half); NaN with one class."""
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    ranks_sorted = _average_ranks(sorted_scores)
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=-1)
    positives = truth.sum(axis=-1)
    negatives = truth.shape[-1] - positives
    rank_sum = (ranks * truth).sum(axis=-1)
    auc = (rank_sum - positives * (positives + 1) / 2) / np.where(
        positives * negatives > 0, positives * negatives, 1
    )
    return np.where(positives * negatives > 0, auc, np.nan)


def _average_ranks(sorted_values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of values sorted along the last axis, ties sharing their average rank."""
    n = sorted_values.shape[-1]
    positions = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), sorted_values.shape)
    new_value = np.ones(sorted_values.shape, dtype=bool)
    new_value[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    run_id = np.cumsum(new_value, axis=-1) - 1
    rows = np.arange(int(np.prod(sorted_values.shape[:-1])), dtype=np.int64).reshape(
        (*sorted_values.shape[:-1], 1)
    )
    flat_runs = (run_id + n * rows).ravel()
    sums = np.bincount(flat_runs, weights=positions.ravel(), minlength=int(flat_runs.max()) + 1)
    counts = np.bincount(flat_runs, minlength=int(flat_runs.max()) + 1)
    return np.asarray((sums / np.maximum(counts, 1))[flat_runs].reshape(sorted_values.shape))


def multilabel_metrics(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, exact: np.ndarray, labels: list[str]
) -> dict[str, np.ndarray]:
    """Return micro F1, precision, recall, label-wise accuracy, exact match, macro F1 and per-label F1.

    ``tp``, ``fp``, ``fn``, ``tn`` are (..., L) totals per label; ``exact`` is (..., 2): rows predicted
    exactly, rows in all. Macro F1 leaves out labels with no truth and no prediction.
    """
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    micro_precision = _divide(tp.sum(axis=-1), (tp + fp).sum(axis=-1))
    micro_recall = _divide(tp.sum(axis=-1), (tp + fn).sum(axis=-1))
    per_label = _divide(2 * tp, 2 * tp + fp + fn)
    defined = (tp + fp + fn) > 0
    result = {
        "micro_f1": _divide(2 * micro_precision * micro_recall, micro_precision + micro_recall),
        "micro_precision": micro_precision,
        "micro_recall": micro_recall,
        "label_accuracy": _divide((tp + tn).sum(axis=-1), (tp + fp + fn + tn).sum(axis=-1)),
        "exact_match": _divide(exact[..., 0].astype(np.float64), exact[..., 1].astype(np.float64)),
        "macro_f1": _divide((per_label * defined).sum(axis=-1), defined.sum(axis=-1)),
    }
    for k, name in enumerate(labels):
        result[f"f1[{name}]"] = per_label[..., k]
    return result
