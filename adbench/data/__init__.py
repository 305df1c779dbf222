"""Datasets: every module registers its loaders on import."""

from adbench.data import elpv, mvtec, synthetic, visa  # noqa: F401
from adbench.data.base import Dataset, Sample, Transform, load_batch, load_image, load_mask

__all__ = ["Dataset", "Sample", "Transform", "load_batch", "load_image", "load_mask"]
