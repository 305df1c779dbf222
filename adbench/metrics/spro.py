"""Exact AU-sPRO (Bergmann et al., MVTec LOCO AD, IJCV 2022): the saturated per-region overlap curve.

Each annotated defect is one region (one mask of a LOCO image, not a connected component) with a
saturation area s: at a threshold, the region scores min(|region pixels >= threshold| / s, 1), so a
defect of unclear extent (a missing object) counts as found once s of its pixels are. sPRO is the
mean over all regions; the false positive rate is taken over every defect-free pixel of every test image,
the anomalous images' background included, as MVTec LOCO's evaluation code counts false positives and true
negatives (``get_fp_areas_for_thresholds``: a pixel outside all of its image's defect masks). The area under
sPRO against FPR up to a limit, divided by the limit, is AU-sPRO.

The curve is built as AU-PRO's (``pro``): each region's pixels, in descending score, add
(min(c / s, 1) - min((c - 1) / s, 1)) / #regions as the c-th one is reached, so the running sum at the
last pixel of each distinct score is sPRO there whatever the order within ties.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from adbench.metrics.pro import aupro
from adbench.metrics.ranking import Curve, curve

SPRO_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)  # the FPR limits LOCO reports


class Region(Protocol):
    image: int  # index of the region's image in the maps
    mask: np.ndarray  # bool H x W: the region's pixels
    saturation: float  # overlap in pixels at which the region counts as fully found (0 < s <= its area)


def spro_curve(maps: np.ndarray, regions: list[Region], masks: np.ndarray) -> tuple[np.ndarray, Curve] | None:
    """(each region pixel's sPRO increment in ascending score order, the curve against every pixel outside
    ``masks``, the union of each image's defects); None when there is no region pixel or no defect-free pixel."""
    values, increments = [], []
    kept = [r for r in regions if r.mask.any()]
    for r in kept:
        v = np.sort(maps[r.image][r.mask])[::-1]
        c = np.arange(1, len(v) + 1)
        increments.append(np.minimum(c / r.saturation, 1) - np.minimum((c - 1) / r.saturation, 1))
        values.append(v)
    if not kept or masks.all():
        return None
    values, increments = np.concatenate(values), np.concatenate(increments) / len(kept)
    order = np.argsort(values, kind="stable")
    return increments[order], curve(values[order], maps[~masks])


def auspro(spro: tuple[np.ndarray, Curve] | None, limit: float) -> float:
    """AU-sPRO up to the FPR ``limit`` from ``spro_curve``'s result (NaN when it is None)."""
    return float("nan") if spro is None else aupro(*spro, limit)
