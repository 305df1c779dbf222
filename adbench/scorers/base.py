"""The scorer interface: clean features x0 -> a latent whose atypicality marks anomalies."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule


class Scorer(Protocol):
    name: str
    nfe: int  # noise-net evaluations per image

    def latent(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """B x C x h x w latent for features ``x0``; ``generator`` seeds any sampled noise."""
        ...


def timesteps_like(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
