"""The noise-net contract: what training and every scorer ask of eps_theta (built-in or plugin)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class NoiseNet(Protocol):
    """An ``nn.Module`` eps_theta(x_t, t): features B x ``in_channels`` x h x w and integer timesteps (B)
    -> the predicted noise, same shape. Built as ``create(name, in_channels=C, **args)``."""

    in_channels: int

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...
