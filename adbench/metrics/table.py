"""The metric table: every reported metric once, with how it is computed, shown and averaged.

Result rows, summaries, tables, plots, study objectives, golden files and mAD all read this table;
adding a metric is one ``register_metric(Metric(...))`` with its function. mAD is the mean of the
metrics marked ``in_mad`` (the papers' seven), never of whatever columns a row happens to have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from adbench.metrics.pimo import aupimo
from adbench.metrics.pro import aupro, aupro_mvtec3d, region_weights
from adbench.metrics.ranking import Curve, auroc, average_precision, f1_max
from adbench.metrics.segmentation import miou_max, seg_f1
from adbench.metrics.spro import SPRO_LIMITS, Region, auspro, spro_curve

LEVELS = ("image", "pixel")


@dataclass
class Ranked:
    """What one level's metrics are computed from: positive against negative scores, ranked."""

    curve: Curve
    masks: np.ndarray | None = None  # pixel level: the ground-truth masks (N x H x W)
    maps: np.ndarray | None = None  # pixel level: the anomaly maps (per-image metrics: AUPIMO)
    order: np.ndarray | None = None  # pixel level: positive pixels in ascending score order
    pro_limit: float = 0.3
    aupro_impl: str = "exact"  # or mvtec3d (``pro.aupro_mvtec3d``)
    regions: list[Region] | None = None  # pixel level: annotated defects with saturation areas (AU-sPRO)
    seg_threshold: float = float("nan")  # pixel level: SegF1's binarisation, chosen without test labels

    @cached_property
    def region_weights(self) -> np.ndarray:
        """Each positive pixel's 1 / (its region's size), in the curve's order (computed once, on demand)."""
        return region_weights(self.masks)[self.order]

    @cached_property
    def spro(self):
        """The sPRO curve over the defect regions against every defect-free pixel (computed once, on demand)."""
        if self.regions is None:
            raise ValueError("AU-sPRO needs the dataset's defect regions with their saturation areas (MVTec LOCO's "
                             "defects_config.json); this dataset has none")
        return spro_curve(self.maps, self.regions, self.masks)


@dataclass(frozen=True)
class Column:
    key: str  # result-row column
    header: str  # table and plot header
    percent: bool = True  # shown x 100
    note: str = ""  # what it measures (adbench list columns, the docs)
    unit: str = ""  # of a column not shown in %


@dataclass(frozen=True)
class Metric(Column):
    level: str = "image"  # image or pixel
    compute: Callable[[Ranked], float] | None = None
    in_mad: bool = True  # part of the mean over metrics (mAD)
    optional: bool = False  # computed only when ``scoring.extra_metrics`` asks, never in mAD

    def __post_init__(self) -> None:
        if self.compute is None:
            raise ValueError(f"metric {self.key}: needs a compute function")
        if self.level not in LEVELS:
            raise ValueError(f"metric {self.key}: level must be one of {LEVELS}, got {self.level!r}")


def _auroc(r: Ranked) -> float:
    return auroc(r.curve)


def _ap(r: Ranked) -> float:
    return average_precision(r.curve)


def _f1(r: Ranked) -> float:
    return f1_max(r.curve)


def _aupro(r: Ranked) -> float:
    if r.aupro_impl == "mvtec3d":
        return aupro_mvtec3d(r.maps, r.masks, r.pro_limit)
    return aupro(r.region_weights, r.curve, r.pro_limit)


def _aupimo(r: Ranked) -> float:
    return aupimo(r.maps, r.masks)


def _aupimo_exact(r: Ranked) -> float:
    return aupimo(r.maps, r.masks, bounds="exact")


def _miou_max(r: Ranked) -> float:
    return miou_max(r.maps, r.masks)


def _seg_f1(r: Ranked) -> float:
    if np.isnan(r.seg_threshold):
        raise ValueError("SegF1 needs a threshold from held-out normal images (normalisation train)")
    return seg_f1(r.maps, r.masks, r.seg_threshold)


SPRO_PREFIX = "pixel_auspro_"


def auspro_key(limit: float) -> str:
    """The row column of AU-sPRO up to the FPR ``limit``: ``pixel_auspro_5pct`` for 0.05."""
    return f"{SPRO_PREFIX}{round(limit * 100)}pct"


def _auspro_metric(limit: float) -> Metric:
    return Metric(auspro_key(limit), f"AU-sPRO@{limit:g}", note=f"MVTec LOCO's saturated PRO up to FPR {limit:g}, "
                  "false positives over every defect-free pixel", level="pixel",
                  compute=lambda r: auspro(r.spro, limit), in_mad=False, optional=True)


METRICS: list[Metric] = [
    Metric("image_auroc", "I-AUROC", note="Image AU-ROC (exact, ties as half)", level="image", compute=_auroc),
    Metric("image_ap", "I-AP", note="Image average precision (step-wise, as scikit-learn)", level="image",
           compute=_ap),
    Metric("image_f1max", "I-F1max", note="Image F1 at the best threshold", level="image", compute=_f1),
    Metric("pixel_auroc", "P-AUROC", note="Pixel AU-ROC over every test pixel", level="pixel", compute=_auroc),
    Metric("pixel_ap", "P-AP", note="Pixel average precision", level="pixel", compute=_ap),
    Metric("pixel_f1max", "P-F1max", note="Pixel F1 at the best threshold", level="pixel", compute=_f1),
    Metric("pixel_aupro", "AU-PRO", note="Area under the per-region overlap curve up to FPR pro_limit, "
           "normalised", level="pixel", compute=_aupro),
    Metric("pixel_aupimo", "AUPIMO", note="Per-image overlap over log FPR 1e-5..1e-4 of the normal images, "
           "mean over anomalous images, as the reference (aupimo, anomalib) computes it: between the FPRs of its "
           "300,000-threshold grid nearest the bounds", level="pixel", compute=_aupimo, in_mad=False, optional=True),
    Metric("pixel_aupimo_exact", "AUPIMO (exact)", note="AUPIMO between FPR 1e-5 and 1e-4 exactly (the curve "
           "interpolated there); the column rows written before row version 3 called pixel_aupimo", level="pixel",
           compute=_aupimo_exact, in_mad=False, optional=True),
    Metric("pixel_miou_max", "mIoU-max", note="Mean IoU at the best threshold", level="pixel", compute=_miou_max,
           in_mad=False, optional=True),
    Metric("pixel_segf1", "SegF1", note="Pixel F1 at the held-out normals' mean + 3 std", level="pixel",
           compute=_seg_f1, in_mad=False, optional=True),
    *(_auspro_metric(limit) for limit in SPRO_LIMITS),
]
MAD = Column("mad", "mAD", note="Mean of the metrics in mAD (the papers' seven)")
FPS = Column("fps", "FPS", percent=False, note="Images/s of the run's pipeline (backbone + scorer + "
             "post-processing), the median of the timed passes", unit="images/s")


def metrics(level: str | None = None, extra: tuple[str, ...] = ()) -> list[Metric]:
    """The table's metrics, of one level or all: image metrics first, each level in table order; optional
    ones only when their key is in ``extra``."""
    return sorted((m for m in METRICS if (level is None or m.level == level) and (not m.optional or m.key in extra)),
                  key=lambda m: LEVELS.index(m.level))


def metric_keys(level: str | None = None, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(m.key for m in metrics(level, extra))


def optional_metrics() -> list[Metric]:
    """The metrics computed only when asked (``scoring.extra_metrics``)."""
    return [m for m in METRICS if m.optional]


def reported() -> list[Column]:
    """The quality columns of every result row, table and plot: the metrics, then mAD (optional metrics: only
    in the rows that asked for them)."""
    return [*metrics(), MAD]


def register_metric(metric: Metric) -> None:
    """Add a metric to the table (its key must be new)."""
    if metric.key in {c.key for c in (*reported(), FPS)}:
        raise ValueError(f"metric {metric.key!r} is already in the table")
    METRICS.append(metric)


def mad(values: dict[str, float], available_only: bool = False) -> float:
    """Mean of the ``in_mad`` metrics; NaN where any is NaN (image-level-only data has no mAD), unless
    ``available_only``: then the mean of those that are numbers (BMAD's convention; NaN if none is)."""
    chosen = [values[m.key] for m in METRICS if m.in_mad and not m.optional]
    if available_only:
        chosen = [v for v in chosen if not np.isnan(v)] or [float("nan")]
    return float(np.mean(chosen))
