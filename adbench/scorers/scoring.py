"""From a scorer's output to anomaly maps and image scores, under a named protocol.

Map (Eq. 8 of both papers): for latent scorers the per-position channel L2 norm of the latent,
for reconstruction the per-position feature MSE; bilinearly upsampled to the input size
(``align_corners`` False as the official InvAD code, True as ADer) and optionally
Gaussian-smoothed (sigma in pixels, scipy's filter, truncated at 4 sigma).
Image score components:
``nll``  Gaussian negative log-likelihood of the whole latent under N(0, I) (latent scorers),
``diff`` max - min of the feature-scale map (latent scorers),
``max``  max of the pixel map, after optional k x k average pooling (stride 1),
``mse``  mean of the feature-scale map (reconstruction: the mean feature MSE).
A scorer lists the image scores it supports, its own default first; a protocol's image score
that a scorer lacks falls back to that default.
``nll+diff`` adds the two normalised components. (OSD-IRF's Eq. 11 is garbled in the text,
-log of a negative sum; we use the standard-Gaussian NLL that InvAD defines.)
Normalisation of each component: ``train`` (default) standardises with the mean and std of
held-out normal training images; ``test-minmax`` min-max scales over the test set, as the official
InvAD code does; it is transductive (uses the test set) and flagged wherever it appears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from adbench.errors import AdbenchError, ConfigError
from adbench.metrics import NonFiniteScoreError
from adbench.metrics.segmentation import normal_threshold
from adbench.protocols import NORMALISATIONS, Scoring


@dataclass
class Scored:
    """A scorer's output for a batch: feature-scale map (B x h x w) and latent components (B each)."""

    feature_map: torch.Tensor
    components: dict[str, torch.Tensor]


def feature_map(latent: torch.Tensor) -> torch.Tensor:
    """B x C x h x w -> B x h x w channel L2 norm."""
    return latent.float().pow(2).sum(dim=1).sqrt()


def upsample(maps: torch.Tensor, size: int, align_corners: bool = False) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=align_corners)[:, 0]


def from_latent(latent: torch.Tensor) -> Scored:
    """Map and ``nll``/``diff`` components of a latent B x C x h x w (IRF or inverted noise)."""
    z = latent.float()
    dim = z[0].numel()
    nll = 0.5 * z.pow(2).flatten(1).sum(dim=1) + 0.5 * dim * math.log(2 * math.pi)
    fmap = feature_map(z)
    flat = fmap.flatten(1)
    return Scored(fmap, {"nll": nll, "diff": flat.amax(dim=1) - flat.amin(dim=1)})


def gaussian_smooth(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian filter of B x H x W maps on their device, equal to
    ``scipy.ndimage.gaussian_filter(maps, (0, sigma, sigma), mode="reflect", truncate=truncate)``."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, device=maps.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(maps.dtype)
    out = maps[:, None]
    for dim in (-1, -2):  # rows, then columns
        n = out.shape[dim]
        if radius > n:
            raise ValueError(f"smoothing radius {radius} exceeds the map size {n}")
        left, right = out.narrow(dim, 0, radius).flip(dim), out.narrow(dim, n - radius, radius).flip(dim)
        padded = torch.cat([left, out, right], dim=dim)  # scipy 'reflect': the edge pixel repeats
        weight = kernel.view(1, 1, 1, -1) if dim == -1 else kernel.view(1, 1, -1, 1)
        out = F.conv2d(padded, weight)
    return out[:, 0]


def pixel_maps_on_device(fmap: torch.Tensor, size: int, sigma: float, align_corners: bool = False) -> torch.Tensor:
    """Upsampled (and optionally smoothed) pixel maps N x size x size, on the map's device."""
    maps = upsample(fmap.float(), size, align_corners)
    return gaussian_smooth(maps, sigma) if sigma > 0 else maps


def max_score_on_device(maps: torch.Tensor, pool_size: int) -> torch.Tensor:
    """Max of each map after ``pool_size`` x ``pool_size`` average pooling with stride 1."""
    t = maps[:, None]
    if pool_size > 1:
        t = F.avg_pool2d(t, pool_size, stride=1)
    return t.flatten(1).amax(dim=1)


def postprocess_on_device(fmap: torch.Tensor, scoring: Scoring, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The post-processing of feature-scale maps under ``scoring``, on their device: the upsampled (and
    smoothed) pixel maps, and each map's (pooled) max score. Scoring, the FPS column and ``adbench fps``
    all run this one."""
    maps = pixel_maps_on_device(fmap, image_size, scoring.smoothing_sigma, scoring.align_corners)
    return maps, max_score_on_device(maps, scoring.pool_size)


@dataclass(frozen=True)
class Normaliser:
    """Per-component affine normalisation: (value - shift) / scale."""

    shift: dict[str, float]
    scale: dict[str, float]

    @classmethod
    def fit(cls, components: dict[str, np.ndarray], method: str) -> Normaliser:
        """``train``: mean/std of held-out normals; ``test-minmax``: min/(max - min) of the test set."""
        if method not in NORMALISATIONS:
            raise ConfigError(f"normalisation must be one of {NORMALISATIONS}, got {method!r}")
        n = len(next(iter(components.values())))
        if n < 2:
            raise AdbenchError(
                f"Score normalisation needs at least 2 images, got {n}: "
                "raise holdout_fraction or add training images."
            )
        if method == "test-minmax":
            shift = {k: float(np.min(v)) for k, v in components.items()}
            scale = {k: float(np.max(v) - np.min(v)) or 1.0 for k, v in components.items()}
        else:
            shift = {k: float(np.mean(v)) for k, v in components.items()}
            scale = {k: float(np.std(v, ddof=1)) or 1.0 for k, v in components.items()}
        return cls(shift, scale)

    def image_score(self, components: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
        return sum((components[k] - self.shift[k]) / self.scale[k] for k in names)


@dataclass
class ScorerOutput:
    """A scorer's output for a whole image set: feature-scale maps (N x h x w, CPU) and latent components."""

    feature_map: torch.Tensor
    components: dict[str, np.ndarray]


@dataclass
class ImageScores:
    """What a result row's metrics are computed from: the test set's image scores and pixel maps."""

    image_score: str  # the image score used (a scorer's own default where it lacks the protocol's)
    scores: np.ndarray  # N, normalised and summed components
    maps: np.ndarray  # N x H x W, post-processed pixel maps
    normaliser: Normaliser
    seg_threshold: float = float("nan")  # mean + 3 std of the held-out normals' map pixels (SegF1); NaN: none


def image_score_for(scoring: Scoring, supported: tuple[str, ...]) -> str:
    """The protocol's image score when the scorer supports it, else the scorer's own default."""
    return scoring.image_score if scoring.image_score in supported else supported[0]


POSTPROCESS_BATCH = 32  # feature maps upsampled (and smoothed) at a time: the same maps as all at once


def components_and_maps(output: ScorerOutput, scoring: Scoring, image_size: int,
                        maps: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Components incl. ``max`` of the post-processed pixel maps, and those maps, made a batch at a time
    into ``maps`` (an N x size x size float32 array, e.g. on disk: ``streaming.spill_array``) or a new array."""
    n = len(output.feature_map)
    maps = np.empty((n, image_size, image_size), np.float32) if maps is None else maps
    peaks = [np.empty(0, np.float32)]
    for i in range(0, n, POSTPROCESS_BATCH):
        batch, peak = postprocess_on_device(output.feature_map[i : i + POSTPROCESS_BATCH], scoring, image_size)
        maps[i : i + POSTPROCESS_BATCH] = batch.cpu().numpy()
        peaks.append(peak.cpu().numpy())
    return {**output.components, "max": np.concatenate(peaks)}, maps


def finite_maps(maps: np.ndarray) -> np.ndarray:
    """Whether each map is all finite, a batch at a time (``maps`` may be larger than memory)."""
    return np.concatenate([np.isfinite(maps[i : i + POSTPROCESS_BATCH]).all(axis=(1, 2))
                           for i in range(0, len(maps), POSTPROCESS_BATCH)] or [np.empty(0, bool)])


def score_images(test: ScorerOutput, held_out: ScorerOutput | None, scoring: Scoring, image_size: int,
                 supported: tuple[str, ...], where: str, names: list[str],
                 maps: np.ndarray | None = None) -> ImageScores:
    """The scoring stage: a scorer's output on the test set (and on held-out normals) -> pixel maps (into
    ``maps`` when given) and normalised image scores under ``scoring``. Components are normalised by the
    held-out normals, or (``test-minmax``, transductive) by the test set itself. NaN or Inf is an error
    naming ``where`` (the cell) and the first bad image of ``names``."""
    image_score = image_score_for(scoring, supported)
    parts = image_score.split("+")
    components, maps = components_and_maps(test, scoring, image_size, maps)
    seg_threshold = float("nan")
    if scoring.transductive:
        norm = Normaliser.fit({k: components[k] for k in parts}, "test-minmax")
    else:
        if held_out is None:
            raise ValueError("normalisation 'train' needs the held-out normals' scorer output")
        held_components, held_maps = components_and_maps(held_out, scoring, image_size)
        norm = Normaliser.fit({k: held_components[k] for k in parts}, "train")
        seg_threshold = normal_threshold(held_maps)
    scores = norm.image_score(components, parts)
    bad = ~np.isfinite(scores) | ~finite_maps(maps)
    if bad.any():
        raise NonFiniteScoreError(
            f"{where}: {int(bad.sum())} test image(s) got NaN or Inf scores, first {names[int(np.argmax(bad))]}. "
            "The noise net or its weights diverged: check the training loss (a lower lr helps) or the weights file.")
    return ImageScores(image_score, scores, maps, norm, seg_threshold)
