"""Feature extractors images -> B x C x h x w: every module registers its backbones on import."""

from adbench.backbones import timm_backbone  # noqa: F401
