"""Reconstruction baseline (InvAD Table 4): perturb, denoise back with DDIM, score the error.

Features are perturbed to t = round(ratio * T) with seeded noise, then denoised with ``steps``
deterministic DDIM steps on the evenly spaced timesteps from t down to 0 (the last step lands on
clean data, abar = 1). Map = per-position feature MSE (mean over channels); image score = max of
the pixel map.
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule, ddim_step
from adbench.errors import ConfigError
from adbench.registry import SCORERS
from adbench.scorers.base import timesteps_like
from adbench.scorers.scoring import Scored


@SCORERS.register("reconstruction", "Perturb to ratio*T, denoise with S DDIM steps, feature MSE; ratio=0.4 S=10")
class Reconstruction:
    name = "reconstruction"
    image_scores = ("max",)

    def __init__(self, ratio: float = 0.4, steps: int = 10) -> None:
        if not 0 < ratio <= 1:
            raise ConfigError(f"reconstruction ratio must be in (0, 1], got {ratio}")
        self.ratio, self.steps = float(ratio), int(steps)
        self.nfe = self.steps

    def timesteps(self, schedule: Schedule) -> list[int]:
        """Descending timesteps t = t_0 > t_1 > ... > t_S = 0."""
        start = min(schedule.T - 1, round(self.ratio * schedule.T))
        if not 1 <= self.steps <= start:
            raise ConfigError(f"reconstruction needs 1 <= steps <= t={start} (ratio {self.ratio}), got {self.steps}")
        return [round(start - i * start / self.steps) for i in range(self.steps + 1)]

    def reconstruct(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        ts = self.timesteps(schedule)
        abar = schedule.abar
        a = float(abar[ts[0]])
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x = a**0.5 * x0 + (1 - a) ** 0.5 * noise
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            abar_to = float(abar[t_next]) if t_next > 0 else 1.0
            x = ddim_step(x, model(x, timesteps_like(x, t)), float(abar[t]), abar_to)
        return x

    def score(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
              generator: torch.Generator | None = None) -> Scored:
        error = (x0.float() - self.reconstruct(model, schedule, x0, generator).float()).pow(2).mean(dim=1)
        return Scored(error, {})
