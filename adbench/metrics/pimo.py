"""Exact AUPIMO (Bertoldo et al. 2024): each anomalous image's area under its per-image overlap curve.

The curve plots an anomalous image's TPR (the share of its anomalous pixels >= a threshold) against the
FPR shared by all images at that threshold: the mean over the normal test images of each one's share of
pixels >= the threshold (the pooled share, as the images have one size). The area is taken over
log(FPR) in ``fpr_bounds`` (1e-5 to 1e-4 by default) and divided by that interval's length, so 1 is a
perfect image. The curve passes through every distinct score of the normal images: between two of
them the FPR is constant, and at each the TPR runs straight from the share of the image's pixels above
it to the share at or above it (the PRO curve's construction in ``pro``); it is interpolated linearly
in log(FPR) at the bounds. anomalib's reference samples 300,000 thresholds instead and takes the
nearest to each bound, so it approaches this value as its threshold grid gets finer.
"""

from __future__ import annotations

import numpy as np

from adbench.metrics.pro import integrate_to

FPR_BOUNDS = (1e-5, 1e-4)


def aupimo_per_image(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float] = FPR_BOUNDS
                     ) -> np.ndarray:
    """AUPIMO of every anomalous image (a mask with a positive pixel), in image order; NaN for all when the
    normal images' pixels cannot reach the lower FPR bound (too few of them: fewer than 1 / ``fpr_bounds[0]``)."""
    low, high = fpr_bounds
    if not 0 < low < high <= 1:
        raise ValueError(f"fpr_bounds must satisfy 0 < low < high <= 1, got {fpr_bounds}")
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    normal = np.sort(maps[~anomalous].ravel())[::-1]  # descending
    n = len(normal)
    values, first = np.unique(-normal, return_index=True)  # distinct normal scores, descending as -values ascend
    counts = np.append(first[1:], n)  # normal pixels >= each distinct score
    fpr = counts / n
    if n == 0 or fpr[0] > low:
        return np.full(int(anomalous.sum()), np.nan)
    thresholds = -values
    before = np.concatenate([[fpr[0]], fpr[:-1]])  # the FPR just above each score (the first: its own)
    x = np.log(np.column_stack([before, fpr]).ravel())  # per score: just above it, then at it
    out = []
    for amap, mask in zip(maps[anomalous], masks[anomalous], strict=True):
        positives = np.sort(amap[mask])
        at_or_above = (len(positives) - np.searchsorted(positives, thresholds, side="left")) / len(positives)
        above = (len(positives) - np.searchsorted(positives, thresholds, side="right")) / len(positives)
        y = np.column_stack([above, at_or_above]).ravel()
        area = integrate_to(x, y, np.log(high)) - integrate_to(x, y, np.log(low))
        out.append(area / np.log(high / low))
    return np.array(out)


def aupimo(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float] = FPR_BOUNDS) -> float:
    """The mean AUPIMO over the anomalous images (``aupimo_per_image``)."""
    per_image = aupimo_per_image(maps, masks, fpr_bounds)
    return float(per_image.mean()) if len(per_image) else float("nan")
