"""Exact threshold-free ranking metrics from sorted score values.

Every metric here is a function of, for each distinct threshold v, the counts
tp(v) = #positives >= v and fp(v) = #negatives >= v. Precision-recall quantities only change
at distinct positive values, and the ROC area is the Mann-Whitney statistic, so negatives are
only ever counted against the sorted distinct positive values: negatives outside the positives'
range are just counted, the rest are sorted in chunks on all cores (``np.sort`` releases the GIL)
and searched with the sorted positive values. Ties are treated as scikit-learn treats them.
A curve may also be one segment of a longer one (its values a range of the scores, ``tp_before``
positives above it): AU-ROC's count and AP are then that segment's share, F1-max its best, which is
how the streamed pass (``streaming``) adds them up.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

PARALLEL_SORT_MIN = 1_000_000


@dataclass(frozen=True)
class Curve:
    """Counts at each distinct positive score value, in descending order of value."""

    tp: np.ndarray  # positives >= value
    fp: np.ndarray  # negatives >= value
    fp_above: np.ndarray  # negatives > value
    n_pos: int
    n_neg: int
    tp_before: int = 0  # positives above the curve's values (a segment of a longer curve)

    def counts(self) -> np.ndarray:
        """Positives at each value."""
        return np.diff(self.tp, prepend=self.tp_before)


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def sorted_chunks(values: np.ndarray) -> list[np.ndarray]:
    """``values`` split into one ascending-sorted chunk per core (one chunk when small)."""
    workers = cores()
    if len(values) < PARALLEL_SORT_MIN or workers == 1:
        return [np.sort(values)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(np.sort, np.array_split(values, workers)))


def _count_at_least(chunks: list[np.ndarray], values: np.ndarray, side: str) -> np.ndarray:
    """Number of chunk elements >= (side='left') or > (side='right') each ascending value."""
    return sum(len(c) - np.searchsorted(c, values, side=side) for c in chunks)


def curve(pos_sorted: np.ndarray, neg: np.ndarray) -> Curve:
    """Counts for ascending-sorted positive scores and (unsorted) negative scores of the same dtype."""
    values, first = np.unique(pos_sorted, return_index=True)  # ascending, first occurrence
    lo, hi = values[0], values[-1]
    inside = neg[(neg >= lo) & (neg <= hi)]
    n_above = int(np.count_nonzero(neg > hi))
    chunks = sorted_chunks(inside)
    fp = n_above + _count_at_least(chunks, values, "left")
    fp_above = n_above + _count_at_least(chunks, values, "right")
    tp = len(pos_sorted) - first
    return Curve(tp[::-1], fp[::-1], fp_above[::-1], len(pos_sorted), len(neg))


def u_statistic(c: Curve) -> int:
    """Twice the Mann-Whitney count of (positive, negative) pairs ranked right, a tie counting half: exact
    (integers) while 2 n_pos n_neg fits in int64, else summed in float64."""
    below = c.n_neg - c.fp  # negatives < value
    ties = c.fp - c.fp_above  # negatives == value
    dtype = np.int64 if 2 * c.n_pos * c.n_neg < 2**63 else np.float64
    return int(np.sum(c.counts() * (2 * below + ties), dtype=dtype))


def auroc(c: Curve) -> float:
    """Area under the ROC curve = P(pos > neg) + P(pos == neg) / 2 (trapezoidal ROC with ties)."""
    return u_statistic(c) / (2.0 * c.n_pos * c.n_neg)


def average_precision(c: Curve) -> float:
    """Step-wise AP as ``sklearn.metrics.average_precision_score``: sum of dRecall * precision."""
    precision = c.tp / (c.tp + c.fp)
    return float(np.sum(c.counts() / c.n_pos * precision))


def f1_max(c: Curve) -> float:
    """Best F1 over all thresholds (the best threshold is always at a positive value)."""
    return float(np.max(2 * c.tp / (c.tp + c.fp + c.n_pos)))
