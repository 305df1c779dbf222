"""Backbone features, extracted once per (dataset files, backbone, weights, image size) and cached."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adbench.atomic import atomic_torch_save, load_cached
from adbench.data.base import Sample, Transform, image_batches
from adbench.device import autocast, images_for, scorer_input
from adbench.progress import progress_bar


@torch.no_grad()
def extract(backbone: nn.Module, samples: list[Sample], transform: Transform, device: torch.device,
            batch_size: int, description: str = "features", precision: str = "fp32") -> torch.Tensor:
    """Features N x C x h x w (float32, CPU) of ``samples``."""
    out = []
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(samples))
        for batch in image_batches(samples, transform, batch_size, device):
            with autocast(device, precision):
                feats = backbone(images_for(backbone, batch, device))
            out.append(scorer_input(feats).cpu())
            bar.update(task, advance=len(batch))
    return torch.cat(out)


def cached_features(cache_dir: Path, key: str, backbone: nn.Module, samples: list[Sample],
                    transform: Transform, device: torch.device, batch_size: int,
                    description: str = "features", precision: str = "fp32") -> torch.Tensor:
    """``extract`` through an on-disk cache under ``key`` (``feature_key``)."""
    path = Path(cache_dir) / "features" / f"{key}.pt"
    cached = load_cached(path, "feature cache file")
    if cached is not None:
        return cached
    feats = extract(backbone, samples, transform, device, batch_size, description, precision)
    atomic_torch_save(feats, path)
    return feats
