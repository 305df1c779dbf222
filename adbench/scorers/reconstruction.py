"""Reconstruction baseline (InvAD Table 4): perturb, denoise back with DDIM, score the error.

The T-step schedule is respaced to ``steps`` = S timesteps tau_0 = 0 < ... < tau_{S-1} = T-1 (as
the official code respaces); features are perturbed with seeded noise to tau_k, k = floor(ratio * S),
and denoised with k deterministic DDIM steps (noise net at tau_k, ..., tau_1, each moving to the
previous respaced timestep, the last onto clean data, abar = 1), so NFE = k. A cell with
ratio * S < 1 has no perturbation step: it is not applicable (n/a in tables), as in the paper's
Table 4. Map = per-position feature MSE (mean over channels); image score ``mse`` = its mean over
positions, the paper's definition (``max`` of the pixel map is available).
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule, ddim_step, respaced_timesteps
from adbench.errors import ConfigError
from adbench.scorers.base import seeded_noise, timesteps_like
from adbench.scorers.scoring import Scored


class Reconstruction:
    name = "reconstruction"
    image_scores = ("mse", "max")

    def __init__(self, ratio: float = 0.4, steps: int = 10) -> None:
        if not 0 < ratio < 1:
            raise ConfigError(f"reconstruction ratio must be in (0, 1), got {ratio}")
        if steps < 2:
            raise ConfigError(f"reconstruction steps (the respaced schedule's length S) must be >= 2, got {steps}")
        self.ratio, self.steps = float(ratio), int(steps)
        self.k = int(self.ratio * self.steps + 1e-9)  # floor, robust to 0.6 * 5 = 2.9999...
        self.nfe = self.k
        self.applicable = self.k >= 1

    def timesteps(self, schedule: Schedule) -> list[int]:
        """Descending timesteps tau_k > ... > tau_0 = 0 of the respaced schedule."""
        if not self.applicable:
            raise ConfigError(f"reconstruction ratio {self.ratio} x steps {self.steps} < 1: no perturbation step")
        return respaced_timesteps(schedule.T, self.steps)[self.k :: -1]

    def reconstruct(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        ts = self.timesteps(schedule)
        abar = schedule.abar
        a = float(abar[ts[0]])
        x = a**0.5 * x0 + (1 - a) ** 0.5 * seeded_noise(x0, generator)
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            abar_to = float(abar[t_next]) if t_next > 0 else 1.0
            x = ddim_step(x, model(x, timesteps_like(x, t)), float(abar[t]), abar_to)
        return x

    def score(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
              generator: torch.Generator | None = None) -> Scored:
        error = (x0.float() - self.reconstruct(model, schedule, x0, generator).float()).pow(2).mean(dim=1)
        return Scored(error, {"mse": error.flatten(1).mean(dim=1)})
