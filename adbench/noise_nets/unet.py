"""DDPM-style UNet (Ho et al.) on the feature map.

Residual blocks (GroupNorm, SiLU, 3x3 conv, additive timestep projection, dropout, conv),
self-attention at chosen resolutions with 64 channels per head, stride-2 conv downsampling and
nearest upsampling followed by a 3x3 conv (the official code's ``Upsample(ch, conv_resample=True)``),
with skip connections. ``unet`` is the official InvAD code's hard-coded UNet
(base 512 channels, multipliers 1,2,3,4, 2 residual blocks per level, attention at downsampling
factors 2, 4 and 8: the 8 x 8, 4 x 4 and 2 x 2 maps of the 16 x 16 grid); ``unet_tiny`` is for CPU
tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adbench.noise_nets.embeddings import TimestepEmbedder


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.t_proj = nn.Sequential(nn.SiLU(), nn.Linear(t_dim, c_out))
        self.out_layers = nn.Sequential(norm(c_out), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(c_out, c_out, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.t_proj(t_emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, head_channels: int = 64) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def queries_keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as B x heads x hw x head_channels, contiguous: the layout the fused SDPA kernels
        (flash, memory-efficient, cuDNN) take; a strided view falls back to the math kernel. The 3C
        projected channels are read head by head, q, k, v within each (guided-diffusion's legacy order,
        the official code's), so its weights load unchanged."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).view(b, self.heads, 3, c // self.heads, h * w).transpose(-1, -2)
        return tuple(t.contiguous() for t in qkv.unbind(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = F.scaled_dot_product_attention(*self.queries_keys_values(x)).transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Upsample(nn.Sequential):
    """Nearest 2x upsampling, then a 3x3 convolution (guided-diffusion's ``Upsample`` with ``use_conv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1))


class Block(nn.Module):
    """A residual block, optionally followed by attention."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float, attend: bool, head_channels: int) -> None:
        super().__init__()
        self.res = ResBlock(c_in, c_out, t_dim, dropout)
        self.attn = AttentionBlock(c_out, head_channels) if attend else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, t_emb))


class UNet(nn.Module):
    """eps_theta(x_t, t) for feature maps B x C x h x w (h, w divisible by 2^(levels-1))."""

    def __init__(self, in_channels: int, base: int = 512, mults: tuple[int, ...] = (1, 2, 3, 4),
                 num_res_blocks: int = 2, attention_levels: tuple[int, ...] = (1, 2, 3), head_channels: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.in_channels, self.levels = in_channels, len(mults)
        t_dim = 4 * base
        self.time = TimestepEmbedder(t_dim, frequency_dim=base)
        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        self.down, skips, ch = nn.ModuleList(), [base], base
        for level, mult in enumerate(mults):
            for _ in range(num_res_blocks):
                self.down.append(Block(ch, base * mult, t_dim, dropout, level in attention_levels, head_channels))
                ch = base * mult
                skips.append(ch)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = nn.ModuleList([Block(ch, ch, t_dim, dropout, attend, head_channels) for attend in (True, False)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(num_res_blocks + 1):
                attend = level in attention_levels
                self.up.append(Block(ch + skips.pop(), base * mult, t_dim, dropout, attend, head_channels))
                ch = base * mult
                if level > 0 and i == num_res_blocks:
                    self.up.append(Upsample(ch))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 ** (self.levels - 1) or x.shape[-2] % 2 ** (self.levels - 1):
            raise ValueError(f"UNet with {self.levels} levels needs h, w divisible by {2 ** (self.levels - 1)}, "
                             f"got {tuple(x.shape[-2:])}")
        t_emb = self.time(t)
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, t_emb) if isinstance(layer, Block) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, t_emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), t_emb) if isinstance(layer, Block) else layer(h)
        return self.out(h)
