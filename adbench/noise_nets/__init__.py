"""Noise nets eps_theta(x_t, t) (declared by name in ``adbench.components``)."""

import torch

from adbench.registry import NOISE_NETS

B4_CHANNELS = 272


def parameter_count(name: str, in_channels: int = B4_CHANNELS, **kwargs) -> int:
    """Parameters of a noise-net preset (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        net = NOISE_NETS.create(name, in_channels=in_channels, **kwargs)
    return sum(p.numel() for p in net.parameters())
