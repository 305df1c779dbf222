"""InvAD: few-step DDIM inversion of the features to the final latent (Sakai et al.).

With the evenly spaced subset tau = [333, 666, 999] (steps=3, T=1000), the noise net is evaluated
at [0, 333, 666] and each deterministic DDIM step moves the state from abar[t_eval] to abar[tau_i]:
x <- sqrt(abar_to) * x0_pred + sqrt(1 - abar_to) * eps. The last state is the score input.
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule, ddim_step, even_timesteps
from adbench.registry import SCORERS
from adbench.scorers.base import timesteps_like


@SCORERS.register("invad", "InvAD DDIM inversion on an even timestep subset; steps=3 NFE")
class InvAD:
    name = "invad"

    def __init__(self, steps: int = 3) -> None:
        self.steps = int(steps)
        self.nfe = self.steps

    def plan(self, schedule: Schedule) -> list[tuple[int, float, float]]:
        """(evaluation timestep, abar_from, abar_to) of each inversion step."""
        targets = even_timesteps(schedule.T, self.steps)
        evals = [0, *targets[:-1]]
        abar = schedule.abar
        return [(e, float(abar[e]), float(abar[t])) for e, t in zip(evals, targets, strict=True)]

    def latent(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x = x0
        for t_eval, abar_from, abar_to in self.plan(schedule):
            x = ddim_step(x, model(x, timesteps_like(x, t_eval)), abar_from, abar_to)
        return x
