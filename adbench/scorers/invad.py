"""InvAD: few-step DDIM inversion of the features to the final latent (Sakai et al.).

Timestep subsets (``subset``):
``code`` (default; the official code, SkyShunsuke/InversionAD ``space_timesteps(1000, "3")``):
evaluations at {0, 500, 999} (steps evenly spaced over [0, T-1]), each moving the state to the
next one's abar and the last to abar_next = 0, so the final latent is the noise predicted at t=999.
``even`` (unverified): tau = [333, 666, 999] for steps=3, T=1000, as a third-party summary of the
paper reads it (the paper text we have lost the equation); the noise net is evaluated at
[0, 333, 666] and each step moves the state from abar[t_eval] to abar[tau_i].
Each deterministic DDIM step: x <- sqrt(abar_to) * x0_pred + sqrt(1 - abar_to) * eps.
The last state is the score input.

``steps=1`` under ``code`` is ``space_timesteps(1000, "1")`` = {0}: one evaluation at t=0 straight to
abar = 0, so the latent is eps_theta(x0, 0) (InvAD Table 6 "single-step inversion", A2/A3).
``steps=0`` is no inversion (Table 6 A1): the features themselves are scored under the N(0, I) prior,
with no noise-net call (NFE 0). The official code has no such setting (its respacing of 0 steps is
empty); see docs/reproduction.md. The row still names the trained model, so the table stays comparable.
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule, ddim_step, even_timesteps, respaced_timesteps
from adbench.errors import ConfigError
from adbench.scorers.base import LatentScorer, timesteps_like

SUBSETS = ("even", "code")


class InvAD(LatentScorer):
    name = "invad"

    def __init__(self, steps: int = 3, subset: str = "code") -> None:
        if subset not in SUBSETS:
            raise ConfigError(f"invad subset must be one of {SUBSETS}, got {subset!r}")
        if steps < 0:
            raise ConfigError(f"invad steps must be >= 0 (0: no inversion), got {steps}")
        self.steps, self.subset = int(steps), subset
        self.nfe = self.steps

    def plan(self, schedule: Schedule) -> list[tuple[int, float, float]]:
        """(evaluation timestep, abar_from, abar_to) of each inversion step."""
        abar = schedule.abar
        if self.steps == 0:
            return []
        if self.subset == "even":
            targets = even_timesteps(schedule.T, self.steps)
            evals = [0, *targets[:-1]]
            return [(e, float(abar[e]), float(abar[t])) for e, t in zip(evals, targets, strict=True)]
        evals = respaced_timesteps(schedule.T, self.steps)
        abar_to = [float(abar[t]) for t in evals[1:]] + [0.0]
        return [(e, float(abar[e]), a) for e, a in zip(evals, abar_to, strict=True)]

    def latent(self, model: nn.Module, schedule: Schedule, x0: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x = x0
        for t_eval, abar_from, abar_to in self.plan(schedule):
            x = ddim_step(x, model(x, timesteps_like(x, t_eval)), abar_from, abar_to)
        return x
