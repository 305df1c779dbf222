"""OSD-IRF: one-step inverse residual fields (Zhang et al. 2026, Eqs. 6-7).

mean-path (Eq. 7): IRF = eps_theta(sqrt(abar_t) x0, t)
noisy-state (Eq. 6): IRF = eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t), eps ~ N(0, I) seeded.
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule
from adbench.scorers.base import LatentScorer, seeded_noise, timesteps_like


class OSDIRF(LatentScorer):
    nfe = 1

    def __init__(self, t: int, noisy: bool) -> None:
        self.t = int(t)
        self.noisy = noisy
        self.name = "osd_irf_noisy" if noisy else "osd_irf_mean"

    def latent(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        abar = float(schedule.abar[schedule.check_timestep(self.t)])
        x_t = abar**0.5 * x0
        if self.noisy:
            x_t = x_t + (1 - abar) ** 0.5 * seeded_noise(x0, generator)
        return model(x_t, timesteps_like(x0, self.t))


def osd_irf_mean(t: int = 500) -> OSDIRF:
    return OSDIRF(t, noisy=False)


def osd_irf_noisy(t: int = 500) -> OSDIRF:
    return OSDIRF(t, noisy=True)
