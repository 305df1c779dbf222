"""Exact anomaly-detection metrics. Public: ``image_metrics``, ``pixel_metrics``, ``mad``."""

from adbench.metrics.summary import (
    IMAGE_KEYS,
    METRIC_KEYS,
    PIXEL_KEYS,
    MetricWarning,
    NonFiniteScoreError,
    image_metrics,
    mad,
    pixel_metrics,
)

__all__ = [
    "IMAGE_KEYS", "METRIC_KEYS", "PIXEL_KEYS", "MetricWarning", "NonFiniteScoreError",
    "image_metrics", "mad", "pixel_metrics",
]
