"""Paired bootstrap over test images for the pixel metrics of two methods on the same images.

A replicate draws the test images with replacement, the anomalous and the normal ones apart (so every
replicate has both); image i is drawn w_i times. Its pixel AU-ROC, AP, F1-max and AU-PRO are those of the
maps with each image repeated w_i times: every count is the images' counts weighted by w (a region
drawn twice counts twice). The pixels are sorted once per method; a replicate is then weighted running
sums along that order at its tie groups (``ranking.Curve``, ``pro.ProArea``), no sorting. Both methods
get the same draws; the difference's percentile interval and the share of replicates on either side of
zero give the test.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from adbench.metrics.pro import ProArea, region_sizes
from adbench.metrics.ranking import Curve, auroc, average_precision, cores, f1_max
from adbench.metrics.streaming import STREAMED

DRAWS = 1000  # replicates of a test
CONFIDENCE = 0.95


class Ranking:
    """One method's maps on a test set, sorted once: what each replicate's weighted sums run along."""

    def __init__(self, maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.3) -> None:
        maps, masks = np.asarray(maps), np.asarray(masks).astype(bool)
        if maps.shape != masks.shape or maps.ndim != 3:
            raise ValueError(f"maps {maps.shape} and masks {masks.shape} must be equal N x H x W shapes")
        self.pro_limit, self.n_images = pro_limit, len(maps)
        self.anomalous = masks.reshape(len(masks), -1).any(axis=1)
        self.n_pos_of = masks.reshape(len(masks), -1).sum(axis=1)
        self.n_neg_of = masks[0].size - self.n_pos_of
        size = np.zeros(masks.shape, np.int64)  # each positive's region size
        self.n_regions_of = np.zeros(len(masks), np.int64)
        for i, mask in enumerate(masks):
            size[i][mask], self.n_regions_of[i] = region_sizes(mask)
        values = maps.ravel()
        lowest = values[masks.ravel()].min() if masks.any() else np.inf
        kept = np.flatnonzero(values >= lowest)  # a negative below every positive counts only in the totals
        order = kept[np.argsort(-values[kept], kind="stable")]  # descending
        self.image = (order // masks[0].size).astype(np.int32)
        positive = masks.ravel()[order]
        starts = np.flatnonzero(np.concatenate([[True], np.diff(values[order]) != 0]))  # each tie group's first
        ends = np.append(starts[1:], len(order)) - 1
        positives_so_far = np.cumsum(positive)
        with_positive = positives_so_far[ends] > np.concatenate([[0], positives_so_far[ends[:-1]]])
        self.last, self.first = ends[with_positive], starts[with_positive]  # the groups with a positive
        self.pos_at_end = positives_so_far[self.last]  # positives (unweighted) up to each of them
        self.pos_image = self.image[positive]
        self.inverse_size = 1.0 / size.ravel()[order][positive]

    def metrics(self, w: np.ndarray) -> dict[str, float]:
        """Pixel AU-ROC, AP, F1-max and AU-PRO with image i taken ``w[i]`` times."""
        seen = np.cumsum(w.astype(np.int32)[self.image], dtype=np.int64)  # weighted pixels up to each
        pos_w = w[self.pos_image]
        tp = np.concatenate([[0], np.cumsum(pos_w)])[self.pos_at_end]  # weighted positives >= value
        tp_above = np.concatenate([[0], tp[:-1]])
        seen_above = np.where(self.first > 0, seen[self.first - 1], 0)
        has = tp > tp_above  # the replicate's distinct positive values
        c = Curve(tp[has], (seen[self.last] - tp)[has], (seen_above - tp_above)[has], int(w @ self.n_pos_of),
                  int(w @ self.n_neg_of))
        cum = np.concatenate([[0.0], np.cumsum(pos_w * self.inverse_size)])
        area = ProArea(self.pro_limit)
        area.add_pro(cum[self.pos_at_end[has]] / int(w @ self.n_regions_of), c)
        return {"pixel_auroc": auroc(c), "pixel_ap": average_precision(c), "pixel_f1max": f1_max(c),
                "pixel_aupro": area.result()}


def draws(anomalous: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` replicates' image counts (n x N): the anomalous images and the normal ones each drawn with
    replacement, as many as there are."""
    rng = np.random.default_rng(seed)
    w = np.zeros((n, len(anomalous)), np.int64)
    for group in (np.flatnonzero(anomalous), np.flatnonzero(~anomalous)):
        w[:, group] = rng.multinomial(len(group), np.full(len(group), 1 / len(group)), size=n)
    return w


@dataclass(frozen=True)
class Interval:
    """The bootstrap of a metric's difference a - b: its value, percentile interval and two-sided p."""

    difference: float
    low: float
    high: float
    p: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(a: Ranking, b: Ranking, n: int = DRAWS, seed: int = 0,
                     confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """Each pixel metric's difference a - b on the same images, with its percentile interval over ``n``
    replicates (the same draws for both) and p = twice the smaller share of replicates on one side of 0."""
    if a.n_images != b.n_images or not np.array_equal(a.anomalous, b.anomalous):
        raise ValueError("a paired bootstrap needs both methods' maps of the same test images")
    if a.anomalous.all() or not a.anomalous.any():
        raise ValueError("a paired bootstrap of pixel metrics needs anomalous and normal test images")
    w = draws(a.anomalous, n, seed)
    ones = np.ones(a.n_images, np.int64)
    with ThreadPoolExecutor(cores()) as pool:  # numpy's running sums release the GIL
        diffs = list(pool.map(lambda row: _difference(a, b, row), w))
    point = _difference(a, b, ones)
    out = {}
    for k in STREAMED:
        d = np.array([r[k] for r in diffs])
        tail = (1 - confidence) / 2
        low, high = np.quantile(d, [tail, 1 - tail])
        p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
        out[k] = Interval(point[k], float(low), float(high), float(p))
    return out


def _difference(a: Ranking, b: Ranking, w: np.ndarray) -> dict[str, float]:
    ma, mb = a.metrics(w), b.metrics(w)
    return {k: ma[k] - mb[k] for k in STREAMED}
