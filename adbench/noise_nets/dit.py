"""Unconditional DiT (Peebles & Xie) on the feature grid, as InvAD/OSD-IRF use it.

As the official InvAD code builds it: patch size 1 (every feature-map position is a token), a
trainable 2-D position embedding initialised as MAE's sin-cos table for the token grid it is built for
(``grid``: 16 x 16 for EfficientNet-B4 at 256 px, 14 x 14 for ViT/DINO at 224 px; scoring another grid
resamples the trained table bicubically), AdaLN-Zero blocks conditioned on the timestep only (no class
labels), 8 heads, tanh-GELU MLPs, and DiT's initialisation: xavier-uniform linear layers with zero
biases, N(0, 0.02) timestep-embedding MLP, zero adaLN modulations and a zero output layer. The official
module also holds a token projection for pre-patchified input (``x_embedder_linear``) and a class-label
table (``y_embedder``) that its unconditional forward never calls; they are left out (``adbench list
noise-nets`` names them). Presets: ``dit_base`` (depth 8, width 1024) and ``dit_gigant`` (depth 16,
width 2048) as in InvAD's supplementary Table 11; ``dit_tiny`` for CPU tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adbench.noise_nets.embeddings import FinalLayer, TimestepEmbedder, dit_initialisation, modulate, sincos_2d


class DiTBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1.unsqueeze(1) * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """eps_theta(x_t, t) for feature maps B x C x h x w."""

    def __init__(self, in_channels: int, width: int = 1024, depth: int = 8, heads: int = 8,
                 mlp_ratio: float = 4.0, grid: int | tuple[int, int] = 16) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.in_channels, self.width = in_channels, width
        self.grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        self.embed = nn.Linear(in_channels, width)  # patch size 1
        self.pos = nn.Parameter(sincos_2d(width, *self.grid))  # trainable, as the official code
        self.time = TimestepEmbedder(width)
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(width, in_channels)
        dit_initialisation(self)

    def positions(self, h: int, w: int) -> torch.Tensor:
        """The (h*w, width) position embedding, resampled bicubically from the trained grid if needed."""
        if (h, w) == self.grid:
            return self.pos
        grid = self.pos.T.reshape(1, self.width, *self.grid)
        return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).reshape(self.width, h * w).T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.embed(x.flatten(2).transpose(1, 2)) + self.positions(h, w).to(x.dtype)
        cond = self.time(t)
        for block in self.blocks:
            tokens = block(tokens, cond)
        return self.final(tokens, cond).transpose(1, 2).reshape(b, c, h, w)
