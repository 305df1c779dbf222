"""Device selection and honest timing (CUDA is synchronised before the clock is read)."""

from __future__ import annotations

import time

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host tensor bound for CUDA goes through pinned memory, so the copy is
    asynchronous (a copy from pageable memory would make the host wait for the GPU)."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


PRECISIONS = ("fp32", "bf16")


def precision(device: torch.device, requested: str = "bf16") -> str:
    """The precision a network runs in: ``requested`` on CUDA (bf16 autocast or fp32), fp32 elsewhere.
    Noise nets run in ``precision`` (bf16 by default) on CUDA; the backbone in ``backbone_precision`` (fp32, as
    the official code)."""
    return requested if device.type == "cuda" else "fp32"


def autocast(device: torch.device, requested: str = "bf16") -> torch.autocast:
    """Autocast for ``precision(device, requested)``; nested inside a bf16 region, fp32 switches it off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(device, requested) == "bf16")


def _channels_last(backbone: torch.nn.Module, device: torch.device) -> bool:
    return device.type == "cuda" and getattr(backbone, "mode", None) == "multiscale"


def prepare_backbone(backbone: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Backbone on ``device`` in eval mode; CNNs in channels_last memory format on CUDA."""
    backbone.to(device).eval()
    if _channels_last(backbone, device):
        backbone.to(memory_format=torch.channels_last)
    return backbone


def images_for(backbone: torch.nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``images`` on ``device`` in the memory format the backbone runs fastest with."""
    fmt = torch.channels_last if _channels_last(backbone, device) else torch.preserve_format
    return images.to(device, memory_format=fmt, non_blocking=True)
