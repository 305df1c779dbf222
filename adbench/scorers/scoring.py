"""From a scorer's latent (IRF or inverted noise) to anomaly maps and image scores.

Map (Eq. 8 of both papers): the per-position channel L2 norm, bilinearly upsampled to the input.
Image score components, each standardised with statistics of held-out normal training images:
``nll`` = Gaussian negative log-likelihood of the whole latent under N(0, I),
``diff`` = max - min of the feature-scale map. ``nll+diff`` adds the two standardised values.
(OSD-IRF's Eq. 11 is garbled in the text, -log of a negative sum; we use the standard-Gaussian
NLL that InvAD defines, which it is meant to be.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from adbench.errors import AdbenchError, ConfigError

IMAGE_SCORES = ("nll", "diff", "nll+diff")


def feature_map(latent: torch.Tensor) -> torch.Tensor:
    """B x C x h x w -> B x h x w channel L2 norm."""
    return latent.float().pow(2).sum(dim=1).sqrt()


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def score_components(latent: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image ``nll`` and ``diff`` (B each) of a latent B x C x h x w."""
    z = latent.float()
    dim = z[0].numel()
    nll = 0.5 * z.pow(2).flatten(1).sum(dim=1) + 0.5 * dim * math.log(2 * math.pi)
    fmap = feature_map(z).flatten(1)
    return {"nll": nll, "diff": fmap.amax(dim=1) - fmap.amin(dim=1)}


def parse_image_score(kind: str) -> list[str]:
    if kind not in IMAGE_SCORES:
        raise ConfigError(f"image_score must be one of {IMAGE_SCORES}, got {kind!r}")
    return kind.split("+")


@dataclass(frozen=True)
class Normalizer:
    """Mean and std of each score component over held-out normal training images."""

    mean: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, components: dict[str, np.ndarray]) -> Normalizer:
        n = len(next(iter(components.values())))
        if n < 2:
            raise AdbenchError(
                f"Score normalisation needs at least 2 held-out normal images, got {n}: "
                "raise holdout_fraction or add training images."
            )
        mean = {k: float(np.mean(v)) for k, v in components.items()}
        std = {k: float(np.std(v, ddof=1)) or 1.0 for k, v in components.items()}
        return cls(mean, std)

    def image_score(self, components: dict[str, np.ndarray], kind: str) -> np.ndarray:
        return sum((components[k] - self.mean[k]) / self.std[k] for k in parse_image_score(kind))
