"""Exact AU-PRO: area under the per-region-overlap curve up to an FPR limit, divided by the limit.

Regions are the 8-connected components of each image's mask (never merged across images);
negatives are all normal pixels of all images. The curve passes through every distinct threshold;
between two distinct positive values PRO is constant (a horizontal run of negatives), so the
polyline through the points just above and at each positive value is the exact curve.
PRO is interpolated linearly at the limit. ``aupro_mvtec3d``: the sampled variant of MVTec 3D-AD's
evaluation code (``scoring.aupro_impl: mvtec3d``), for numbers comparable with repositories that use it.
"""

from __future__ import annotations

import numpy as np

from adbench.metrics.ranking import Curve

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """One image's 8-connected regions: a label per pixel (0: background) and how many there are (scipy is
    imported here: a report, which reads these modules for their column names, never needs it)."""
    from scipy import ndimage

    return ndimage.label(mask, structure=EIGHT_CONNECTED)


def region_sizes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """One image's 8-connected regions: each positive pixel's region size (in ``mask[mask]`` order) and
    how many regions there are."""
    labels, n = regions(mask)
    flat = labels[mask]
    return np.bincount(flat)[flat], n


def region_weights(masks: np.ndarray) -> np.ndarray:
    """For every positive pixel (in ``masks[masks]`` order): 1 / (region size * number of regions)."""
    per_image, n_regions = [], 0
    for mask in masks:
        if not mask.any():
            continue
        sizes, n = region_sizes(mask)
        per_image.append(1.0 / sizes)
        n_regions += n
    return np.concatenate(per_image) / n_regions


class ProArea:
    """The area under a PRO curve up to an FPR limit, built from its curve's segments in descending order
    of value (one whole curve, or the ranges of the streamed pass)."""

    def __init__(self, limit: float) -> None:
        self.limit, self.area = limit, 0.0
        self.x, self.pro = 0.0, 0.0  # the last point: FPR and PRO (the weight of the positives so far)

    def add(self, weights_descending: np.ndarray, c: Curve) -> None:
        """Continue with a segment: its positives' region weights in descending order of score, and its curve."""
        self.add_pro(cumulative(self.pro, weights_descending)[c.tp - c.tp_before], c)

    def add_pro(self, pro: np.ndarray, c: Curve) -> None:
        """Continue with a segment given PRO at each of its values (the weight of the positives >= the value)."""
        pro_before = np.concatenate([[self.pro], pro[:-1]])
        fpr_at, fpr_above = c.fp / c.n_neg, c.fp_above / c.n_neg
        self._extend(np.column_stack([fpr_above, fpr_at]).ravel(), np.column_stack([pro_before, pro]).ravel())

    def _extend(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.x < self.limit:
            self.area += integrate_to(np.concatenate([[self.x], x]), np.concatenate([[self.pro], y]), self.limit)
        self.x, self.pro = float(x[-1]), float(y[-1])

    def result(self) -> float:
        """AU-PRO: the area (the curve ends at FPR 1 with its last PRO) divided by the limit."""
        self._extend(np.array([1.0]), np.array([self.pro]))
        return self.area / self.limit


def cumulative(start: float, weights: np.ndarray) -> np.ndarray:
    """``start`` followed by its running sums with ``weights``, added one by one in order (a sum continued
    from an earlier segment's ``start`` is the same float as one curve's)."""
    return np.cumsum(np.concatenate([[start], weights]))


def aupro(weights_ascending: np.ndarray, c: Curve, limit: float) -> float:
    """AU-PRO from the region weights of the positives, in ascending order of their scores."""
    area = ProArea(limit)
    area.add(weights_ascending[::-1], c)
    return area.result()


def integrate_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoidal area under the polyline (x non-decreasing) from x[0] to ``limit``."""
    k = int(np.searchsorted(x, limit, side="right"))  # x[:k] <= limit
    area = float(np.sum(np.diff(x[:k]) * (y[1:k] + y[: k - 1]) / 2))
    if k < len(x) and x[k - 1] < limit:
        frac = (limit - x[k - 1]) / (x[k] - x[k - 1])
        y_lim = y[k - 1] + frac * (y[k] - y[k - 1])
        area += (limit - x[k - 1]) * (y[k - 1] + y_lim) / 2
    return area


MVTEC3D_THRESHOLDS = 100  # the default of MVTec 3D-AD's calculate_au_pro


def aupro_mvtec3d(maps: np.ndarray, masks: np.ndarray, limit: float, n_thresholds: int = MVTEC3D_THRESHOLDS) -> float:
    """AU-PRO as MVTec 3D-AD's evaluation code computes it (its ``au_pro_util``, copied in adeval as
    ``calculate_au_pro``): ``n_thresholds`` thresholds at evenly spaced ranks of the normal pixels' sorted
    scores, each threshold's FPR taken from its rank (so tied normal scores make steps), PRO the mean over the
    8-connected regions of the share of their pixels above it, the points joined by straight lines from FPR 0
    to (1, 1), the area up to ``limit`` (interpolated there) divided by it. Approximate; ``aupro`` is exact."""
    normal = np.sort(maps[~masks].astype(np.float64))
    ranks = np.linspace(0, len(normal) - 1, num=n_thresholds, dtype=int)
    thresholds = normal[ranks]
    overlaps = []
    for amap, mask in zip(maps, masks, strict=True):
        labels, n = regions(mask)
        for k in range(1, n + 1):
            scores = np.sort(amap[labels == k])
            overlaps.append(1.0 - np.searchsorted(scores, thresholds, side="right") / len(scores))
    pro = np.sum(overlaps, axis=0) / len(overlaps)  # summed region by region, as its loop does
    fpr = 1.0 - (ranks + 1) / len(normal)
    x, y = np.append(fpr[::-1], 1.0), np.append(pro[::-1], 1.0)
    return integrate_to(x, y, limit) / limit
