"""Exact AU-PRO: area under the per-region-overlap curve up to an FPR limit, divided by the limit.

Regions are the 8-connected components of each image's mask (never merged across images);
negatives are all normal pixels of all images. The curve passes through every distinct threshold;
between two distinct positive values PRO is constant (a horizontal run of negatives), so the
polyline through the points just above and at each positive value is the exact curve.
PRO is interpolated linearly at the limit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from adbench.metrics.ranking import Curve

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def region_weights(masks: np.ndarray) -> np.ndarray:
    """For every positive pixel (in ``masks[masks]`` order): 1 / (region size * number of regions)."""
    per_image, n_regions = [], 0
    for mask in masks:
        if not mask.any():
            continue
        lab, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
        flat = lab[mask]
        per_image.append(1.0 / np.bincount(flat)[flat])
        n_regions += n
    return np.concatenate(per_image) / n_regions


def aupro(weights_ascending: np.ndarray, c: Curve, limit: float) -> float:
    """AU-PRO from the region weights of the positives, in ascending order of their scores."""
    cum_w = np.cumsum(weights_ascending[::-1])
    # PRO at each distinct positive value = weight of positives >= value (the last one of each run).
    pro = cum_w[c.tp - 1]
    pro_before = np.concatenate([[0.0], pro[:-1]])
    fpr_at, fpr_above = c.fp / c.n_neg, c.fp_above / c.n_neg
    x = np.concatenate([[0.0], np.column_stack([fpr_above, fpr_at]).ravel(), [1.0]])
    y = np.concatenate([[0.0], np.column_stack([pro_before, pro]).ravel(), [pro[-1]]])
    return integrate_to(x, y, limit) / limit


def integrate_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoidal area under the polyline (x non-decreasing) from x[0] to ``limit``."""
    k = int(np.searchsorted(x, limit, side="right"))  # x[:k] <= limit
    area = float(np.sum(np.diff(x[:k]) * (y[1:k] + y[: k - 1]) / 2))
    if k < len(x) and x[k - 1] < limit:
        frac = (limit - x[k - 1]) / (x[k] - x[k - 1])
        y_lim = y[k - 1] + frac * (y[k] - y[k - 1])
        area += (limit - x[k - 1]) * (y[k - 1] + y_lim) / 2
    return area
