"""Scoring protocols: how maps and image scores are made from a scorer's output (a leaf module, read by
the config, the data stage and the scoring stage alike)."""

from __future__ import annotations

from dataclasses import dataclass

from adbench.errors import ConfigError

IMAGE_SCORES = ("nll+diff", "nll", "diff", "max", "mse")
NORMALISATIONS = ("train", "test-minmax")
AUPRO_IMPLS = ("exact", "mvtec3d")  # scoring.aupro_impl: adbench.metrics.pro
MASK_RESIZES = ("nearest", "bilinear")


@dataclass(frozen=True)
class Scoring:
    """How maps and image scores are made from a scorer's output."""

    image_score: str = "nll+diff"
    smoothing_sigma: float = 0.0
    pool_size: int = 1
    normalisation: str = "train"
    align_corners: bool = False  # of the bilinear map upsampling (ADer: True)
    mask_resize: str = "nearest"  # of the ground-truth masks (ADer: bilinear, then > 0.5)

    def __post_init__(self) -> None:
        if self.image_score not in IMAGE_SCORES:
            raise ConfigError(f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.smoothing_sigma < 0 or self.pool_size < 1:
            raise ConfigError("smoothing_sigma must be >= 0 and pool_size >= 1")
        if self.mask_resize not in MASK_RESIZES:
            raise ConfigError(f"mask_resize must be one of {MASK_RESIZES}, got {self.mask_resize!r}")

    @property
    def transductive(self) -> bool:
        return self.normalisation == "test-minmax"


PROTOCOLS = {
    "invad": Scoring("nll+diff", 0.0, 1, "train", False, "nearest"),  # InvAD/OSD-IRF: raw maps, NLL + diff
    # ADer benchmark: maps upsampled with align_corners=True, sigma 4, max of the 16x16 avg-pooled map;
    # masks resized bilinearly then > 0.5
    "ader": Scoring("max", 4.0, 16, "train", True, "bilinear"),
}
