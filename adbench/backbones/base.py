"""The backbone contract: what the engine asks of any feature extractor (built-in, timm or plugin)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Backbone(Protocol):
    """An ``nn.Module``: images B x 3 x S x S -> features B x ``out_channels`` x ``grid(S)`` x ``grid(S)``.

    ``mode`` is ``multiscale`` (a CNN: runs in channels_last on CUDA), ``tokens`` (a ViT) or ``pixels``
    (space-to-depth, no network)."""

    out_channels: int
    mode: str

    def grid(self, image_size: int) -> int: ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...
