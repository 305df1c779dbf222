"""Exact anomaly-detection metrics. Public: ``image_metrics``, ``pixel_metrics``, ``mad`` and the metric
table (``METRICS``, ``metric_keys``, ``register_metric``)."""

from adbench.metrics.summary import MetricWarning, NonFiniteScoreError, image_metrics, pixel_metrics
from adbench.metrics.table import (
    FPS,
    MAD,
    METRICS,
    SPRO_PREFIX,
    Column,
    Metric,
    mad,
    metric_keys,
    optional_metrics,
    register_metric,
    reported,
)

__all__ = [
    "FPS", "MAD", "METRICS", "SPRO_PREFIX", "Column", "Metric", "MetricWarning", "NonFiniteScoreError",
    "image_metrics", "mad", "metric_keys", "optional_metrics", "pixel_metrics", "register_metric", "reported",
]
