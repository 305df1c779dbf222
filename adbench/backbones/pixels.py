"""The image itself as the feature map: diffusion in pixel space, no feature extractor (InvAD Table 6, A2).

Space-to-depth: each ``patch`` x ``patch`` block of the image becomes the channels of one position, so
B x 3 x S x S -> B x (3 * patch * patch) x S/patch x S/patch; with patch 16 at 256 px that is
768 x 16 x 16, the grid of the other backbones. This is how DiT embeds pixels (a patch-sized stride-patch
convolution sees the same numbers), so every noise net runs unchanged on it.

Channel order (``torch.nn.functional.pixel_unshuffle``): channel ``c * patch**2 + i * patch + j`` at grid
position (y, x) holds colour channel c of the pixel at row ``y * patch + i``, column ``x * patch + j``.
``to_images`` is the exact inverse.

The backbone has no weights and no statistics of its own: a run standardises its channels by the
training normals' per-channel mean and std (``noise_net.feature_norm: standardize``, the default a
config gets with this backbone; ``none`` keeps the ImageNet-normalised pixels, as the official code's
``identical`` backbone would).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adbench.errors import ConfigError

PATCH = 16  # the stride of the built-in backbones: the same 16 x 16 grid at 256 px


class Pixels(nn.Module):
    """images B x 3 x S x S -> B x 3·p·p x S/p x S/p by space-to-depth (see the module docstring)."""

    mode = "pixels"

    def __init__(self, patch: int = PATCH, pretrained: bool = True, weights: str | None = None,
                 image_size: int = 256) -> None:
        super().__init__()
        if weights is not None:
            raise ConfigError(f"the pixels backbone has no weights; drop backbone.weights ({weights}).")
        if patch < 1 or image_size % patch:
            raise ConfigError(f"pixels: image size {image_size} must be a multiple of the patch {patch}.")
        self.patch = int(patch)
        self.out_channels = 3 * self.patch**2

    def grid(self, image_size: int) -> int:
        return image_size // self.patch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(images, self.patch)

    def to_images(self, features: torch.Tensor) -> torch.Tensor:
        """The images back from their features (depth-to-space), exactly."""
        return F.pixel_shuffle(features, self.patch)
