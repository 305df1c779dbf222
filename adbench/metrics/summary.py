"""Public metric API: image and pixel metrics for one category, and the mean over metrics (mAD).

Degenerate inputs: with no positive or no negative (image or pixel) the metrics of that level are
undefined and returned as NaN with a ``MetricWarning``; they are never turned into 0 or 1.
NaN or Inf in the scores is an error that says where it is.
"""

from __future__ import annotations

import warnings

import numpy as np

from adbench.errors import AdbenchError
from adbench.metrics.ranking import curve
from adbench.metrics.spro import Region
from adbench.metrics.table import Ranked, metric_keys, metrics
from adbench.protocols import AUPRO_IMPLS


class MetricWarning(UserWarning):
    """A metric is undefined for this input and was reported as NaN."""


class NonFiniteScoreError(AdbenchError):
    """Scores contain NaN or Inf."""


def check_finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        idx = np.unravel_index(int(np.argmax(bad)), values.shape)
        raise NonFiniteScoreError(
            f"{what} contain {int(bad.sum())} non-finite value(s) (NaN or Inf), first at index "
            f"{tuple(int(i) for i in idx)}: the scorer diverged or the model weights are broken."
        )


def undefined(keys: tuple[str, ...], why: str) -> dict[str, float]:
    warnings.warn(f"{', '.join(keys)} undefined: {why}; reported as NaN.", MetricWarning, stacklevel=3)
    return {k: float("nan") for k in keys}


def image_metrics(scores: np.ndarray, labels: np.ndarray, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Image AU-ROC, AP and F1-max (and any other image metric of the table; optional ones in ``extra``) of
    anomaly ``scores`` (N) against binary ``labels`` (N)."""
    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
    check_finite(scores, "Image scores")
    pos, neg = np.sort(scores[labels]), scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return undefined(metric_keys("image", extra), "the test set needs both normal and anomalous images")
    return _computed("image", Ranked(curve(pos, neg)), extra)


def pixel_metrics(maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.3,
                  extra: tuple[str, ...] = (), regions: list[Region] | None = None,
                  seg_threshold: float = float("nan"), aupro_impl: str = "exact") -> dict[str, float]:
    """Pixel AU-ROC, AP, F1-max and AU-PRO (and any other pixel metric of the table; optional ones, e.g.
    ``pixel_aupimo``, in ``extra``) of anomaly ``maps`` (N x H x W) against ``masks``; ``regions``: the
    annotated defects with their saturation areas, which AU-sPRO reads; ``seg_threshold``: SegF1's (NaN: none);
    ``aupro_impl``: ``exact`` or ``mvtec3d`` (MVTec 3D-AD's sampled curve, ``pro.aupro_mvtec3d``)."""
    maps, masks = np.asarray(maps), np.asarray(masks).astype(bool)
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must be equal N x H x W shapes")
    if not 0 < pro_limit <= 1:
        raise ValueError(f"pro_limit must be in (0, 1], got {pro_limit}")
    if aupro_impl not in AUPRO_IMPLS:
        raise ValueError(f"aupro_impl must be one of {AUPRO_IMPLS}, got {aupro_impl!r}")
    check_finite(maps, "Anomaly maps")
    pos_values, neg = maps[masks], maps[~masks]
    if len(pos_values) == 0 or len(neg) == 0:
        return undefined(metric_keys("pixel", extra), "the masks need both anomalous and normal pixels")
    order = np.argsort(pos_values, kind="stable")
    return _computed("pixel", Ranked(curve(pos_values[order], neg), masks, maps, order, pro_limit, aupro_impl,
                                       regions, seg_threshold), extra)


def _computed(level: str, ranked: Ranked, extra: tuple[str, ...] = ()) -> dict[str, float]:
    return {m.key: m.compute(ranked) for m in metrics(level, extra)}
