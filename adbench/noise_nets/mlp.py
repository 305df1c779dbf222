"""Per-token MLP noise net with AdaLN-Zero timestep conditioning (InvAD's MLP, after MAR).

Every feature-map position is one token; the blocks see no neighbours, so the net models the
distribution of single feature vectors. Built as the official code's ``SimpleMLPAdaLN``: each block's
LayerNorm and the final one have trainable gain and bias, and the weights start as DiT's
(xavier-uniform linear layers with zero biases, an N(0, 0.02) timestep MLP); the zero-initialised
modulations and output make the net start as the identity residual and predict zero noise. The
official module also holds a class-condition projection (``cond_embed``, 768 -> width) that its
unconditional forward never calls; it is left out (``adbench list noise-nets`` names it).
"""

from __future__ import annotations

import torch
from torch import nn

from adbench.noise_nets.embeddings import FinalLayer, TimestepEmbedder, dit_initialisation, modulate


class ResBlock(nn.Module):
    def __init__(self, width: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return x + gate.unsqueeze(1) * self.mlp(modulate(self.norm(x), shift, scale))


class MLPNoiseNet(nn.Module):
    """eps_theta(x_t, t) for feature maps B x C x h x w, applied token by token."""

    def __init__(self, in_channels: int, width: int = 512, depth: int = 6, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input = nn.Linear(in_channels, width)
        self.time = TimestepEmbedder(width)
        self.blocks = nn.ModuleList(ResBlock(width, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(width, in_channels, affine=True)
        dit_initialisation(self)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.input(x.flatten(2).transpose(1, 2)).float()  # the residual stream stays fp32 under autocast
        cond = self.time(t)
        for block in self.blocks:
            tokens = block(tokens, cond)
        return self.final(tokens, cond).transpose(1, 2).reshape(b, c, h, w)
