"""DDPM linear beta schedule (epsilon prediction) and the deterministic DDIM step.

Timesteps are indexed 0..T-1; ``abar[t]`` is the cumulative product of (1 - beta) up to and
including step t, so x_t = sqrt(abar[t]) x_0 + sqrt(1 - abar[t]) eps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adbench.device import to_device


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor  # float64, T

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def abar(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    def check_timestep(self, t: int) -> int:
        if not 0 <= int(t) < self.T:
            raise ValueError(f"timestep t={t} is outside [0, {self.T - 1}]")
        return int(t)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t for per-sample timesteps ``t`` (B) and standard-normal ``noise``.

        The square roots are taken in float64 on the host (1 - abar in float32 loses 3 digits near
        t = 0); their table (2 x T values) is copied to ``t``'s device and indexed there, so timesteps
        drawn on the GPU never wait for the host."""
        a = self.abar
        table = to_device(torch.stack((a.sqrt(), (1 - a).sqrt())).to(x0.dtype), t.device)
        shape = (-1, *([1] * (x0.dim() - 1)))
        signal, noise_scale = (table[i, t].view(shape).to(x0.device) for i in range(2))
        return signal * x0 + noise_scale * noise


def ddim_step(x: torch.Tensor, eps: torch.Tensor, abar_from: float, abar_to: float) -> torch.Tensor:
    """Deterministic DDIM move from noise level ``abar_from`` to ``abar_to`` (either direction)."""
    x0_pred = (x - (1 - abar_from) ** 0.5 * eps) / abar_from**0.5
    return abar_to**0.5 * x0_pred + (1 - abar_to) ** 0.5 * eps


def even_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` evenly spaced timesteps ending at T-1, e.g. T=1000, steps=3 -> [333, 666, 999]."""
    if not 1 <= steps <= T - 1:
        raise ValueError(f"steps must be in [1, {T - 1}], got {steps}")
    return [round(i * (T - 1) / steps) for i in range(1, steps + 1)]


def respaced_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` timesteps evenly over [0, T-1], as guided-diffusion's ``space_timesteps(T, "S")`` takes them
    (the official InvAD code's respacing): a stride of (T-1)/(S-1) added up in floating point and each sum
    rounded half to even, so T=1000, steps=3 -> [0, 500, 999]; 5 -> [0, 250, 500, 749, 999]; 21 -> ..., 450,
    499, 549, ... (rounding i * 999 / 20 would give 500); 1 -> [0] (a single section is taken at its start)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    stride = (T - 1) / (steps - 1) if steps > 1 else 1
    taken, position = [], 0.0
    for _ in range(steps):
        taken.append(round(position))
        position += stride
    return taken
