"""Noise nets eps_theta(x_t, t) (declared by name in ``adbench.components``)."""

import torch

from adbench.registry import NOISE_NETS

B4_CHANNELS = 272
# InvAD Table 8's parameter counts (millions; the MLP is listed as "MLP", i.e. our mlp_large scale)
PAPER_PARAMS_M = {"mlp_large": 351, "unet": 1433, "dit_base": 155, "dit_gigant": 1223}
# the official modules' parameters that their unconditional forward never calls, left out here (at C = 272): the
# MLP's class-condition projection (768 -> width) and the DiT's pre-patchified token projection and 15-class label
# table; the official totals (351.58M, 155.65M, 1223.80M) count them, Table 8 rounds those totals
UNUSED_OFFICIAL = {"mlp_large": ("cond_embed", 768 * 2048 + 2048),
                   "dit_base": ("x_embedder_linear, y_embedder", 272 * 1024 + 1024 + 15 * 1024),
                   "dit_gigant": ("x_embedder_linear, y_embedder", 272 * 2048 + 2048 + 15 * 2048)}


def parameter_count(name: str, in_channels: int = B4_CHANNELS, **kwargs) -> int:
    """Parameters of a noise-net preset (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        net = NOISE_NETS.create(name, in_channels=in_channels, **kwargs)
    return sum(p.numel() for p in net.parameters())
