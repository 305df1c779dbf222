"""The scorer interface: clean features x0 -> a feature-scale map and image score components."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from adbench.device import to_device
from adbench.diffusion.schedule import Schedule
from adbench.scorers.scoring import Scored, from_latent


@runtime_checkable
class Scorer(Protocol):
    name: str
    nfe: int  # noise-net evaluations per image
    image_scores: tuple[str, ...]  # image scores this scorer supports, its default first
    applicable: bool  # False: not defined for its arguments (its rows are n/a), e.g. reconstruction at ratio*S < 1

    def score(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
              generator: torch.Generator | None = None) -> Scored:
        """Map and components for features ``x0``; ``generator`` (a host generator) seeds any sampled noise."""
        ...


@runtime_checkable
class FitsFeatures(Protocol):
    """A scorer that is given a bank of the training features before it scores (knn)."""

    def fit(self, features: torch.Tensor, generator: torch.Generator | None = None,
            device: torch.device | None = None) -> None:
        ...


class LatentScorer:
    """A scorer whose output is a latent expected to be N(0, I) for normal data (IRF, inverted noise)."""

    image_scores = ("nll+diff", "nll", "diff", "max")
    applicable = True

    def latent(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def score(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
              generator: torch.Generator | None = None) -> Scored:
        return from_latent(self.latent(model, schedule, x0, generator))


def seeded_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, I) noise shaped like ``like``, in its dtype, drawn on the host from ``generator`` (a CPU
    generator; None: the global RNG) and copied to ``like``'s device: one seed gives the same noise on
    every device, so CPU and GPU runs and a grid resumed on another device agree."""
    return to_device(torch.randn(like.shape, generator=generator, dtype=like.dtype), like.device)


def timesteps_like(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
