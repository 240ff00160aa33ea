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


class Ranking:
    """Binary truth and scores of n patients, sorted once, for ROC-AUC under any patient weights."""

    def __init__(self, truth: np.ndarray, scores: np.ndarray) -> None:
        self.truth = np.asarray(truth, dtype=bool)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.order = np.argsort(self.scores, kind="stable")
        ranked = self.scores[self.order]
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # runs of tied scores
        self.positive = self.truth[self.order]

    def auc(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Return ROC-AUC (Mann-Whitney, ties counting half): a 0-d array without ``weights``; with
        (B, n) patient multiplicities (bootstrap resamples), one AUC per row. NaN where positives or
        negatives weigh nothing."""
        n = self.truth.shape[0]
        rows = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1, n)
        if n == 0:
            empty = np.full(rows.shape[0], np.nan)
            return empty[0] if weights is None else empty
        ordered = rows[:, self.order]
        positives = np.add.reduceat(np.where(self.positive, ordered, 0.0), self.starts, axis=1)
        negatives = np.add.reduceat(ordered, self.starts, axis=1) - positives
        below = np.cumsum(negatives, axis=1) - negatives
        pairs = positives.sum(axis=1) * negatives.sum(axis=1)
        wins = (positives * (below + 0.5 * negatives)).sum(axis=1)
        auc = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)
        return auc[0] if weights is None else auc


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
