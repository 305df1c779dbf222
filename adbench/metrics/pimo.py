"""AUPIMO (Bertoldo et al. 2024): each anomalous image's area under its per-image overlap curve.

The curve plots an anomalous image's TPR (the share of its anomalous pixels >= a threshold) against the
FPR shared by all images at that threshold: the mean over the normal test images of each one's share of
pixels >= the threshold. The curve is exact: it passes through every distinct score of the normal images
(between two of them the FPR is constant, and at each the TPR runs straight from the share of the image's
pixels above it to the share at or above it, the PRO curve's construction in ``pro``). The area is taken
over log(FPR) and divided by log(high / low) of ``fpr_bounds`` (1e-5 to 1e-4 by default), so 1 is a perfect
image. Between which FPRs (``BOUNDS``):

- ``reference`` (the default): as the reference implementations compute it (the ``aupimo`` package and
  anomalib's ``metrics/pimo``, which agree exactly), between the two FPRs, among those of their grid of
  ``REFERENCE_THRESHOLDS`` thresholds evenly spaced over the normal images' scores, nearest each bound
  (``reference_bounds``); the curve between them is theirs, so the value is theirs to float rounding (their
  clip to [0, 1] too). Published AUPIMO numbers are these.
- ``exact``: between the bounds themselves, the curve interpolated linearly in log(FPR) there; it differs
  from the reference by 0.1-0.3 points on a category's mean and up to 1.5 on one image, and no finer
  grid brings the reference to it (the snapped bounds stay where the normal scores put them).

The reference refuses a curve with 30 points or fewer in the range; adbench computes it all the same.
"""

from __future__ import annotations

import numpy as np

from adbench.metrics.pro import integrate_to

FPR_BOUNDS = (1e-5, 1e-4)
BOUNDS = ("reference", "exact")
REFERENCE_THRESHOLDS = 300_000  # the reference's default grid (num_threshs)


def reference_bounds(normal_maps: np.ndarray, fpr_bounds: tuple[float, float]) -> tuple[float, float] | None:
    """The FPRs the reference integrates between: on ``REFERENCE_THRESHOLDS`` thresholds evenly spaced from the
    normal images' lowest score to their highest (in the maps' precision), the shared FPR (the mean of each
    normal image's share of pixels >= the threshold) nearest each bound, the first in ascending threshold order
    of equally near ones. None where the reference refuses: a bound below every FPR of the grid, or both
    bounds at one threshold."""
    flat = normal_maps.reshape(len(normal_maps), -1)
    thresholds = np.linspace(flat.min(), flat.max(), REFERENCE_THRESHOLDS, dtype=flat.dtype)
    shared = np.zeros(len(thresholds))
    for image in flat:  # summed image by image, as the mean over the first axis of their FPR curves is
        pixels = np.sort(image)
        shared += (len(pixels) - np.searchsorted(pixels, thresholds, side="left")) / len(pixels)
    shared /= len(flat)
    if fpr_bounds[0] < shared.min():
        return None
    low, high = (int(np.argmin(np.abs(shared - bound))) for bound in fpr_bounds)
    return (float(shared[low]), float(shared[high])) if high < low else None


def aupimo_per_image(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float] = FPR_BOUNDS,
                     bounds: str = "reference") -> np.ndarray:
    """AUPIMO of every anomalous image (a mask with a positive pixel), in image order, between ``bounds``
    (``BOUNDS``: the reference's snapped FPRs, or ``fpr_bounds`` exactly); NaN for all when the normal images'
    pixels cannot reach the lower FPR bound (too few of them: fewer than 1 / ``fpr_bounds[0]``)."""
    low, high = fpr_bounds
    if not 0 < low < high <= 1:
        raise ValueError(f"fpr_bounds must satisfy 0 < low < high <= 1, got {fpr_bounds}")
    if bounds not in BOUNDS:
        raise ValueError(f"bounds must be one of {BOUNDS}, got {bounds!r}")
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    normal = np.sort(maps[~anomalous].ravel())[::-1]  # descending
    n = len(normal)
    values, first = np.unique(-normal, return_index=True)  # distinct normal scores, descending as -values ascend
    counts = np.append(first[1:], n)  # normal pixels >= each distinct score
    fpr = counts / n
    snapped = None if n == 0 or fpr[0] > low else (low, high) if bounds == "exact" else \
        reference_bounds(maps[~anomalous], fpr_bounds)
    if snapped is None:
        return np.full(int(anomalous.sum()), np.nan)
    start, end = np.log(snapped)
    thresholds = -values
    before = np.concatenate([[fpr[0]], fpr[:-1]])  # the FPR just above each score (the first: its own)
    x = np.log(np.column_stack([before, fpr]).ravel())  # per score: just above it, then at it
    out = []
    for amap, mask in zip(maps[anomalous], masks[anomalous], strict=True):
        positives = np.sort(amap[mask])
        at_or_above = (len(positives) - np.searchsorted(positives, thresholds, side="left")) / len(positives)
        above = (len(positives) - np.searchsorted(positives, thresholds, side="right")) / len(positives)
        y = np.column_stack([above, at_or_above]).ravel()
        out.append((integrate_to(x, y, end) - integrate_to(x, y, start)) / np.log(high / low))
    return np.array(out) if bounds == "exact" else np.clip(out, 0, 1)


def aupimo(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float] = FPR_BOUNDS,
           bounds: str = "reference") -> float:
    """The mean AUPIMO over the anomalous images (``aupimo_per_image``)."""
    per_image = aupimo_per_image(maps, masks, fpr_bounds, bounds)
    return float(per_image.mean()) if len(per_image) else float("nan")
