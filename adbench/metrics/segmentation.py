"""Thresholded segmentation metrics: ADer's mIoU-max and MVTec AD 2's SegF1.

mIoU-max (Zhang et al., ADer, arXiv 2404.10760): the category's maps are min-max normalised to [0, 1]
together, binarised as ``> th`` at ``th`` = 0, 0.05, ..., 1 (ADer's ``np.arange(0, 1 + 1e-3, 0.05)``), and
the IoU of all predicted against all anomalous pixels of the category, intersection / (union + 1e-8) as
ADer writes it, is maximised over the 21 thresholds. Counts come from the sorted scores, so each
threshold costs a binary search, not a pass over the maps.

SegF1 (Heckler-Kram et al., MVTec AD 2, 2025): the F1 of the maps binarised as ``> threshold`` against the
masks, over all test pixels of the category together, at a threshold chosen without test labels: mean
+ 3 std of the held-out normal images' pixel scores (``normal_threshold``), the baseline rule of MVTec
AD 2's paper with its validation images as the normals.
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


def normal_threshold(normal_maps: np.ndarray, k: float = 3.0) -> float:
    """mean + ``k`` std (population) of the pixel scores of anomaly-free images."""
    values = normal_maps.astype(np.float64)
    return float(values.mean() + k * values.std())


def seg_f1(maps: np.ndarray, masks: np.ndarray, threshold: float) -> float:
    """F1 = 2 TP / (2 TP + FP + FN) of ``maps > threshold`` against boolean ``masks``, all pixels together
    (1 when nothing is anomalous and nothing predicted)."""
    tp = wrong = 0  # FP + FN
    for amap, mask in zip(maps, masks, strict=True):  # compared in float64, an image at a time
        predicted = amap.astype(np.float64) > threshold
        tp += int(np.count_nonzero(predicted & mask))
        wrong += int(np.count_nonzero(predicted ^ mask))
    return 1.0 if tp + wrong == 0 else 2 * tp / (2 * tp + wrong)
