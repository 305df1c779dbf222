"""Sinusoidal timestep embedding and the AdaLN modulation shared by the noise nets."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [cos, sin] features at geometrically spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class TimestepEmbedder(nn.Module):
    """Sinusoidal features followed by a two-layer MLP (as in DiT)."""

    def __init__(self, width: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.frequency_dim))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: per-sample shift and scale, broadcast over tokens (x: B x N x D, shift: B x D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sincos_2d(dim: int, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed 2-D sin-cos position table (h*w, dim) of MAE and DiT (``get_2d_sincos_pos_embed``), tokens in
    row-major order: the first half of the channels encodes the token's column, the second its row, each as
    [sin, cos] at dim/4 frequencies 10000^(-k / (dim/4)); computed in float64 as the original (numpy)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64, device=device) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=device),
                                torch.arange(w, dtype=torch.float64, device=device), indexing="ij")
    halves = [torch.outer(coordinate.flatten(), omega) for coordinate in (cols, rows)]
    return torch.cat([torch.cat([a.sin(), a.cos()], dim=1) for a in halves], dim=1).float()


class FinalLayer(nn.Module):
    """AdaLN-modulated norm and a linear projection back to the input channels (both zero-initialised by
    ``dit_initialisation``); ``affine``: the norm has its own trainable gain and bias too (the official
    MLP's ``norm_final``; DiT's has none)."""

    def __init__(self, width: int, out_channels: int, affine: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=affine, eps=1e-6)
        self.linear = nn.Linear(width, out_channels)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


def dit_initialisation(net: nn.Module) -> None:
    """DiT's initialisation, which the official InvAD code keeps for its DiT and its MLP: xavier-uniform
    weights and zero biases for every linear layer, N(0, 0.02) weights for the timestep MLP (``net.time``),
    and zero AdaLN modulations (each of ``net.blocks`` and ``net.final``) and output projection."""
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    for layer in (net.time.mlp[0], net.time.mlp[2]):
        nn.init.normal_(layer.weight, std=0.02)
    for layer in [block.ada[1] for block in net.blocks] + [net.final.ada[1], net.final.linear]:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
