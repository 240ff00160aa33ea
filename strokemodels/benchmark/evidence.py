"""Predictions against the truth reduced to what every metric needs, and the metrics under patient weights.

A bootstrap resample is a vector of patient multiplicities (weights). Every metric here is a function
of weighted cell counts, weighted means over patients or weighted ranks, so one function scores the
point estimate (all weights 1), one fold (weights 0 or 1) and a thousand resamples at once. Two
models scored under the same weights are paired: that is what `compare` and rank stability use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from strokemodels.benchmark.metrics import Ranking

_CHUNK_ELEMENTS = 1 << 23  # weights held at once (resamples x patients): 64 MB of float64


@dataclass(frozen=True)
class Evidence:
    """One model's predictions paired with the truth, one entry per patient (and per unit).

    Units are what confusion counts count: patients, or slices at slice level (``owner`` then gives
    each unit's patient). ``cells`` holds each unit's (truth, prediction) cell; ``from_counts`` turns
    (..., n_cells) counts into metrics. ``values`` are per-patient metrics averaged over patients
    (segmentation); ``rankings`` are truth and scores scored by ROC-AUC; ``macros`` average
    other metrics (one-vs-rest AUC). ``correct`` is each patient's 0/1 correctness (McNemar).
    """

    patients: tuple[str, ...]
    cells: np.ndarray
    n_cells: int
    from_counts: Callable[[np.ndarray], dict[str, np.ndarray]]
    owner: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    rankings: dict[str, Ranking] = field(default_factory=dict)
    macros: dict[str, list[str]] = field(default_factory=dict)
    correct: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Return the number of patients."""
        return len(self.patients)

    @property
    def counts_only(self) -> bool:
        """Return True when every metric is a function of cell counts and each patient is one unit."""
        return self.owner is None and not self.values and not self.rankings


def counts_at(evidence: Evidence, weights: np.ndarray) -> np.ndarray:
    """Return the (B, n_cells) weighted cell counts for (B, n) patient weights."""
    unit_weights = weights if evidence.owner is None else weights[:, evidence.owner]
    rows = unit_weights.shape[0]
    offsets = evidence.cells[None, :] + evidence.n_cells * np.arange(rows)[:, None]
    counts = np.bincount(offsets.ravel(), weights=unit_weights.ravel(), minlength=rows * evidence.n_cells)
    return counts.reshape(rows, evidence.n_cells)


def metrics_at(evidence: Evidence, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Return every metric of ``evidence`` under (B, n) patient weights, each of shape (B,)."""
    weights = np.asarray(weights, dtype=np.float64)
    result = evidence.from_counts(counts_at(evidence, weights))
    totals = weights.sum(axis=1)
    for name, values in evidence.values.items():
        result[name] = np.divide(weights @ values, totals, out=np.full(len(totals), np.nan), where=totals > 0)
    for name, ranking in evidence.rankings.items():
        result[name] = ranking.auc(weights)
    for name, parts in evidence.macros.items():
        stacked = np.stack([result[part] for part in parts])
        defined = np.isfinite(stacked)
        count = defined.sum(axis=0)
        total = np.where(defined, stacked, 0.0).sum(axis=0)
        result[name] = np.divide(total, count, out=np.full(len(count), np.nan), where=count > 0)
    return result


def resample_weights(n: int, bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n) patient multiplicities of ``bootstrap`` resamples with replacement, seeded.

    The stream depends only on (n, bootstrap, seed): two models scored on the same patients get the
    same resamples, which pairs them.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(bootstrap, _CHUNK_ELEMENTS // max(n, 1)))
    for start in range(0, bootstrap, chunk):
        size = min(chunk, bootstrap - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        yield np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def point_metrics(evidence: Evidence) -> dict[str, float]:
    """Return every metric of ``evidence`` on all its patients."""
    return {name: float(value[0]) for name, value in metrics_at(evidence, np.ones((1, evidence.n))).items()}


def bootstrap_metrics(evidence: Evidence, bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """Return (bootstrap,) resampled values of every metric: patients drawn with replacement, seeded.

    When every metric is a function of the cell counts and each patient is one unit, a resample only
    changes how many patients fall in each cell, so it is drawn as one multinomial over the cells:
    exact in distribution and fast for millions of patients. Otherwise patients are resampled by
    index (``resample_weights``).
    """
    if evidence.counts_only:
        cells = np.bincount(evidence.cells, minlength=evidence.n_cells)
        draws = np.random.default_rng(seed).multinomial(
            evidence.n, cells / max(evidence.n, 1), size=bootstrap
        )
        return evidence.from_counts(draws.astype(np.float64))
    return paired_metrics([evidence], bootstrap, seed)[0]


def paired_metrics(evidences: list[Evidence], bootstrap: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Return each evidence's (bootstrap,) resampled metrics under the same resamples of the patients.

    All evidences must hold the same patients in the same order.
    """
    if any(e.patients != evidences[0].patients for e in evidences):
        raise ValueError("paired resampling needs the same patients in every evidence")
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in evidences]
    for weights in resample_weights(evidences[0].n, bootstrap, seed):
        for index, evidence in enumerate(evidences):
            parts[index].append(metrics_at(evidence, weights))
    return [
        {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]} for chunks in parts
    ]
