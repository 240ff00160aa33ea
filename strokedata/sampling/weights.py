"""Class weights against imbalance (000: "log-smoothed inverse frequency class weights, plus resampling")
and a seeded weighted sampler.

``class_weights`` gives the log-smoothed weights for a weighted loss; ``inverse_frequency_weights`` the
plain balanced ones; ``positive_weights`` the per-region weights of multi-label vectors (003's 15
regions); ``sample_weights`` turns class weights into one weight per sample and ``WeightedSampler``
draws indices with them, reproducibly per (seed, epoch), as a ``torch.utils.data.DataLoader`` sampler.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Empty = Literal["error", "zero"]
"""What a class without samples gets: a ValueError naming it, or the weight 0 (never drawn)."""

MU = 0.15
"""The smoothing constant of ``class_weights``' default (the common choice for this formula)."""


def _integer_labels(labels: ArrayLike, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1D int64 array; ValueError for non-integers, negatives or other shapes."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one class index per sample (1D), not shape {array.shape}")
    if array.size and not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        if array.dtype == object or not np.all(np.isfinite(array.astype(np.float64))):
            raise ValueError(
                f"{name} must be integer class indices (no None or NaN); drop unlabelled samples"
            )
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name} must be integer class indices, not fractions")
    result = array.astype(np.int64)
    if result.size and result.min() < 0:
        raise ValueError(f"{name} must be class indices >= 0; found {int(result.min())}")
    return result


def class_counts(labels: ArrayLike, n_classes: int | None = None) -> np.ndarray:
    """Return the number of samples of each class 0..n_classes-1 (int64); ``n_classes`` defaults to the
    largest label + 1, and a label at or beyond it is a ValueError.

    >>> class_counts([0, 2, 2, 2]).tolist()
    [1, 0, 3]
    """
    values = _integer_labels(labels)
    size = int(values.max()) + 1 if values.size else 0
    if n_classes is not None:
        if size > n_classes:
            raise ValueError(f"label {size - 1} does not fit {n_classes} classes")
        size = n_classes
    return np.bincount(values, minlength=size).astype(np.int64)


def _counts(labels: ArrayLike | None, counts: ArrayLike | None, n_classes: int | None) -> np.ndarray:
    """Return the class counts from exactly one of ``labels`` or ``counts`` (validated, int64)."""
    if (labels is None) == (counts is None):
        raise ValueError("give labels or counts, one of them")
    if labels is not None:
        return class_counts(labels, n_classes)
    values = _integer_labels(np.asarray(counts), "counts")
    if n_classes is not None and values.size != n_classes:
        raise ValueError(f"{values.size} counts given for {n_classes} classes")
    if values.size == 0 or values.sum() == 0:
        raise ValueError("the counts hold no sample")
    return values


def _no_samples(counts: np.ndarray, empty: Empty, what: str = "class") -> np.ndarray:
    """Return the indices of zero counts; ValueError naming them when ``empty`` is "error"."""
    if empty not in ("error", "zero"):
        raise ValueError(f"empty must be 'error' or 'zero', not {empty!r}")
    missing = np.flatnonzero(counts == 0)
    if missing.size and empty == "error":
        names = ", ".join(str(int(c)) for c in missing)
        raise ValueError(
            f"{what} {names} has no sample, so its inverse frequency is infinite; pass n_classes / counts "
            "without it, or empty='zero' to give it the weight 0"
        )
    return missing


def class_weights(
    labels: ArrayLike | None = None,
    *,
    counts: ArrayLike | None = None,
    n_classes: int | None = None,
    mu: float = MU,
    empty: Empty = "error",
) -> np.ndarray:
    """Return log-smoothed inverse frequency weights in class order (float64):
    ``w_c = max(1, ln(mu * N / n_c))``, N the number of samples, n_c those of class c.

    The logarithm flattens plain inverse frequency (a class 100 times rarer gets ln(100) = 4.6 times the
    weight, not 100) and the floor 1 keeps common classes at the unweighted loss. A class gets more
    than 1 only when its frequency n_c / N is below mu / e (5.5 % for mu = 0.15): with mu = 0.15, the
    000 cohort (ICA-T 14.8 %, M1 58.8 %, M2 26.4 %) gets 1, 1, 1; raise mu (e.g. 1: 1.91, 1, 1.33) to
    weight its classes. Rarer classes never weigh less.

    Args:
        labels: one class index per sample; or give ``counts``, the samples per class in class order.
        n_classes: the number of classes (default: the largest label + 1).
        mu: the smoothing constant, > 0.
        empty: a class with no sample: "error" (ValueError naming it) or "zero" (weight 0).

    >>> class_weights(counts=[90, 9, 1], mu=1.0).round(3).tolist()
    [1.0, 2.408, 4.605]
    """
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"mu must be a positive number, not {mu!r}")
    counts_array = _counts(labels, counts, n_classes)
    missing = _no_samples(counts_array, empty)
    total = float(counts_array.sum())
    with np.errstate(divide="ignore"):
        weights = np.maximum(1.0, np.log(mu * total / counts_array.astype(np.float64)))
    weights[missing] = 0.0
    return weights


def inverse_frequency_weights(
    labels: ArrayLike | None = None,
    *,
    counts: ArrayLike | None = None,
    n_classes: int | None = None,
    empty: Empty = "error",
) -> np.ndarray:
    """Return balanced weights in class order (float64): ``w_c = N / (K * n_c)``, K the classes with
    samples; as sample weights they draw every class equally often (scikit-learn's "balanced").

    >>> inverse_frequency_weights([0, 0, 0, 1]).tolist()
    [0.6666666666666666, 2.0]
    """
    counts_array = _counts(labels, counts, n_classes)
    missing = _no_samples(counts_array, empty)
    present = counts_array.size - missing.size
    weights = np.zeros(counts_array.size, dtype=np.float64)
    nonzero = counts_array > 0
    weights[nonzero] = counts_array.sum() / (present * counts_array[nonzero])
    return weights


def positive_weights(labels: ArrayLike, *, mu: float = MU, empty: Empty = "error") -> np.ndarray:
    """Return a weight per label of multi-label vectors (e.g. the 15 regions of 003): the log-smoothed
    formula of ``class_weights`` with N the number of samples and n_k those positive for label k,
    ``w_k = max(1, ln(mu * N / n_k))`` (float64, label order), to weigh the positive term of a binary
    cross-entropy per label (``pos_weight``).

    Args:
        labels: (samples, labels) of 0 / 1.
        mu: the smoothing constant, > 0.
        empty: a label never positive: "error" (ValueError naming it) or "zero" (weight 0).

    >>> positive_weights([[1, 0], [0, 0], [0, 1], [0, 0]], mu=1.0).round(3).tolist()
    [1.386, 1.386]
    """
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"mu must be a positive number, not {mu!r}")
    array = np.asarray(labels)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"labels must be (samples, labels) with at least one sample, not {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ValueError("multi-label vectors must hold 0 and 1 only")
    positives = (array == 1).sum(axis=0).astype(np.int64)
    missing = _no_samples(positives, empty, "label")
    with np.errstate(divide="ignore"):
        weights = np.asarray(np.maximum(1.0, np.log(mu * array.shape[0] / positives.astype(np.float64))))
    weights[missing] = 0.0
    return weights


def sample_weights(labels: ArrayLike, class_weights: ArrayLike) -> np.ndarray:
    """Return one weight per sample, the weight of its class: ``class_weights[labels]`` (float64).

    With ``inverse_frequency_weights`` a ``WeightedSampler`` draws the classes equally often; with the
    log-smoothed ``class_weights`` class c is drawn in proportion to ``n_c * w_c``.

    >>> sample_weights([0, 1, 1], [0.5, 2.0]).tolist()
    [0.5, 2.0, 2.0]
    """
    values = _integer_labels(labels)
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1:
        raise ValueError(f"class_weights must be one weight per class, not shape {weights.shape}")
    if values.size and int(values.max()) >= weights.size:
        raise ValueError(f"label {int(values.max())} has no class weight ({weights.size} given)")
    result: np.ndarray = weights[values]
    return result


class WeightedSampler:
    """Draw ``num_samples`` indices with probability proportional to ``weights``, the same ones for the
    same (seed, epoch), other ones for another epoch; a ``torch.utils.data.DataLoader`` sampler
    (``DataLoader(dataset, sampler=WeightedSampler(...))``) that needs no torch import.

    Each epoch's draw comes from ``numpy.random.default_rng(SeedSequence([seed, epoch]))``; iterating
    twice without ``set_epoch`` gives the same indices twice, so call ``set_epoch(epoch)`` at the start
    of every epoch (as with torch's DistributedSampler). Draws happen in the main process, so the
    number of loader workers never changes them.

    Args:
        weights: one non-negative finite weight per dataset item, not all 0 (e.g. ``sample_weights``).
        num_samples: indices per epoch; default the number of weights.
        seed: a non-negative integer.
        replacement: draw with replacement (default); without, ``num_samples`` may not exceed the
            number of positive weights.

    Example:
        >>> sampler = WeightedSampler([1.0, 0.0, 1.0], 4, seed=0)
        >>> len(sampler), sorted(set(sampler))
        (4, [0, 2])
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        num_samples: int | None = None,
        *,
        seed: int,
        replacement: bool = True,
    ) -> None:
        values = np.asarray(weights, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"weights must be one weight per item (1D, not empty), not shape {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
            raise ValueError("weights must be finite, >= 0 and not all 0")
        count = values.size if num_samples is None else num_samples
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise ValueError(f"num_samples must be a positive integer, not {num_samples!r}")
        if not replacement and count > np.count_nonzero(values):
            raise ValueError(
                f"cannot draw {count} distinct indices from {np.count_nonzero(values)} positive weights; "
                "use replacement=True or fewer samples"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        self.weights = values
        self.num_samples = int(count)
        self.seed = int(seed)
        self.replacement = bool(replacement)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose indices the next iteration yields (a non-negative integer)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, not {epoch!r}")
        self.epoch = int(epoch)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """Return the indices (int64) drawn for ``epoch`` (default: the current one)."""
        chosen = self.epoch if epoch is None else epoch
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, chosen]))
        probabilities = self.weights / self.weights.sum()
        drawn = rng.choice(
            self.weights.size, size=self.num_samples, replace=self.replacement, p=probabilities
        )
        return np.asarray(drawn, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        """Return an iterator over the current epoch's indices as Python ints."""
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        """Return the number of indices per epoch."""
        return self.num_samples
