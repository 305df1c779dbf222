"""Datasets (declared by name in ``adbench.components``)."""

from adbench.data.base import Dataset, Sample, Transform, load_batch, load_image, load_mask

__all__ = ["Dataset", "Sample", "Transform", "load_batch", "load_image", "load_mask"]
