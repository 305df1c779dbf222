"""Paired comparison of two methods on one test set: DeLong's test for the difference of two image AU-ROCs.

Both AU-ROCs and their covariance come from the structural components of the Mann-Whitney statistic
(DeLong, DeLong & Clarke-Pearson 1988), computed with midranks in O(N log N) (Sun & Xu 2014): for a
positive x, V10(x) = P(x > negative) + P(x = negative) / 2 over the negatives; for a negative y,
V01(y) likewise over the positives. The difference's variance is var(V10)/m + var(V01)/n of the
component differences; z = difference / its standard error, two-sided p from the normal distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass(frozen=True)
class Paired:
    """Two methods' AU-ROCs on the same images, their difference (a - b), its standard error, z and p."""

    auroc_a: float
    auroc_b: float
    difference: float
    std_error: float
    z: float
    p: float


def components(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of one method's scores: (V10 of each positive, V01 of each negative)."""
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    ranks = rankdata(np.concatenate([pos, neg]))  # midranks: ties count half
    v10 = (ranks[:m] - rankdata(pos)) / n  # negatives below each positive (+ half the tied ones)
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # positives above each negative (+ half the tied ones)
    return v10, v01


def delong(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray) -> Paired:
    """DeLong's paired test of AU-ROC(a) - AU-ROC(b) on the same images (``labels``: 1 anomalous)."""
    labels = np.asarray(labels).astype(bool)
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if not (a.shape == b.shape == labels.shape and a.ndim == 1):
        raise ValueError(f"scores {a.shape}, {b.shape} and labels {labels.shape} must be equal 1-D shapes")
    m, n = int(labels.sum()), int((~labels).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least 2 anomalous and 2 normal images, got {m} and {n}")
    (v10_a, v01_a), (v10_b, v01_b) = components(a, labels), components(b, labels)
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    variance = np.var(v10_a - v10_b, ddof=1) / m + np.var(v01_a - v01_b, ddof=1) / n
    se = math.sqrt(max(float(variance), 0.0))
    difference = auc_a - auc_b
    if se == 0.0:  # the same ranking (or no spread): no evidence of a difference
        return Paired(auc_a, auc_b, difference, 0.0, 0.0 if difference == 0 else math.copysign(math.inf, difference),
                      1.0 if difference == 0 else 0.0)
    z = difference / se
    return Paired(auc_a, auc_b, difference, se, z, float(2 * norm.sf(abs(z))))
