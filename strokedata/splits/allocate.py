"""Allocation of patients to partitions: exact per-class stratification, and a greedy for groups and
multi-label strata. Pure functions on arrays; they return partition indices, never data.

Order never depends on how the input was listed: every tie is broken by ``order_keys``, which the
caller derives from the seed and the patient ids.
"""

from __future__ import annotations

import numpy as np


def exact_allocation(classes: list[str], order_keys: list[str], fractions: list[float]) -> np.ndarray:
    """Return a partition index per item such that every class's count in partition p is within one of
    ``fractions[p]`` times the class size; partition sizes stay within one per class of their ideals.

    Classes are processed in sorted order; each class takes floor(n_c f_p) per partition, then its
    remaining items go to the partitions with the largest fractional parts, ties going to the partition
    furthest below its overall target so far. Inside a class, items are placed in ``order_keys`` order.
    """
    weights = np.asarray(fractions, dtype=np.float64)
    result = np.full(len(classes), -1, dtype=np.int64)
    assigned = np.zeros(len(weights))
    placed = 0
    by_class: dict[str, list[tuple[str, int]]] = {}
    for index, (key, label) in enumerate(zip(order_keys, classes, strict=True)):
        by_class.setdefault(label, []).append((key, index))
    for label in sorted(by_class):
        members = sorted(by_class[label])
        ideal = len(members) * weights
        counts = np.floor(ideal + 1e-9).astype(np.int64)
        remainder = len(members) - int(counts.sum())
        placed += len(members)
        deficit = placed * weights - (assigned + counts)
        fractional = ideal - counts
        order = sorted(
            range(len(weights)), key=lambda p: (-round(float(fractional[p]), 9), -float(deficit[p]), p)
        )
        for p in order[:remainder]:
            counts[p] += 1
        assigned += counts
        start = 0
        for p, count in enumerate(counts):
            for _, index in members[start : start + count]:
                result[index] = p
            start += count
    return result


def greedy_allocation(
    unit_counts: np.ndarray,
    order_keys: list[str],
    fractions: list[float],
    initial: np.ndarray | None = None,
    fixed: dict[int, int] | None = None,
) -> np.ndarray:
    """Return a partition index per unit (a group of patients, or one patient) for multi-label or grouped
    strata: units go, rarest label first, to the partition whose squared deviation from its desired
    per-label counts grows least.

    ``unit_counts`` is (units, labels): how many of a unit's patients carry each label; a last column
    should count the unit's patients so that sizes are balanced too. ``initial`` (partitions, labels)
    holds counts already placed (extending a split); ``fixed`` maps unit -> partition for units that
    must stay where they are (a group already in a partition). Deviations are weighted by the inverse
    of each label's total, so rare labels count as much as common ones.
    """
    counts = np.asarray(unit_counts, dtype=np.float64)
    weights = np.asarray(fractions, dtype=np.float64)
    current = np.zeros((len(weights), counts.shape[1])) if initial is None else initial.astype(np.float64)
    result = np.full(len(counts), -1, dtype=np.int64)
    for unit, partition in (fixed or {}).items():
        result[unit] = partition
        current[partition] += counts[unit]
    total = current.sum(axis=0) + counts[result < 0].sum(axis=0)
    desired = weights[:, None] * total[None, :]
    scale = 1.0 / np.maximum(total, 1.0)
    frequency = np.where(counts > 0, total[None, :], np.inf).min(axis=1)
    pending = [u for u in range(len(counts)) if result[u] < 0]
    pending.sort(key=lambda u: (frequency[u], -counts[u].sum(), order_keys[u]))
    for unit in pending:
        before = ((current - desired) ** 2 * scale).sum(axis=1)
        after = ((current + counts[unit] - desired) ** 2 * scale).sum(axis=1)
        room = desired[:, -1] - current[:, -1]
        best = min(range(len(weights)), key=lambda p: (round(after[p] - before[p], 12), -room[p], p))
        result[unit] = best
        current[best] += counts[unit]
    return result
