"""Thresholded segmentation metrics: ADer's mIoU-max.

mIoU-max (Zhang et al., ADer, arXiv 2404.10760): the category's maps are min-max normalised to [0, 1]
together, binarised as ``> th`` at ``th`` = 0, 0.05, ..., 1 (ADer's ``np.arange(0, 1 + 1e-3, 0.05)``), and
the IoU of all predicted against all anomalous pixels of the category, intersection / (union + 1e-8) as
ADer writes it, is maximised over the 21 thresholds. Counts come from the sorted scores, so each
threshold costs a binary search, not a pass over the maps.
"""

from __future__ import annotations

import numpy as np

ADER_THRESHOLDS = np.arange(0.0, 1.0 + 1e-3, 0.05)
ADER_EPS = 1e-8


def _above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of the ascending ``sorted_values`` are > each threshold."""
    return len(sorted_values) - np.searchsorted(sorted_values, thresholds, side="right")


def miou_max(maps: np.ndarray, masks: np.ndarray) -> float:
    """ADer's mIoU-max of ``maps`` (N x H x W) against boolean ``masks``; NaN when the maps are constant
    (ADer's normalisation divides by max - min)."""
    lo, hi = float(maps.min()), float(maps.max())
    if hi == lo:
        return float("nan")
    norm = (maps.astype(np.float64) - lo) / (hi - lo)
    predicted = _above(np.sort(norm, axis=None), ADER_THRESHOLDS)
    intersection = _above(np.sort(norm[masks]), ADER_THRESHOLDS)
    union = predicted + int(masks.sum()) - intersection
    return float(np.max(intersection / (union + ADER_EPS)))
