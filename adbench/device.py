"""Device selection and honest timing (CUDA is synchronised before the clock is read)."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import time
from collections.abc import Iterator

import numpy as np
import torch

CUBLAS_WORKSPACE = ":4096:8"  # the cuBLAS workspace setting deterministic CUDA matmuls need


def prepare_cuda_determinism() -> None:
    """Make deterministic CUDA matmuls possible in this process: the cuBLAS workspace is fixed at the
    process's first matmul, so preflight sets CUBLAS_WORKSPACE_CONFIG before any CUDA work, for configs
    with ``deterministic: true`` only (a value the user set is kept). Only those: the setting costs small
    matmuls host time (batch-1 latency of EfficientNet-B4 + DiT-gigant on an H200: 17.0 -> 27.4 ms)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def resolve_device(name: str = "auto") -> torch.device:
    """``name`` as a device; ``auto`` is ``$ADBENCH_DEVICE`` when set (the test suite sets ``cpu``: its
    pinned numbers are CPU numbers), else CUDA when available, else the CPU."""
    if name == "auto":
        name = os.environ.get("ADBENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
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


BF16_MIN_CAPABILITY = 8  # Ampere: GPUs before it emulate bf16 (slower than fp32) and Triton cannot compile it


def precision(device: torch.device, requested: str = "bf16") -> str:
    """The precision a network runs in: ``requested`` on CUDA GPUs with native bf16 (compute capability
    8.0 or newer), fp32 elsewhere (CPU, T4, V100). Noise nets run in ``precision`` (bf16 by default); the
    backbone in ``backbone_precision`` (fp32, as the official code)."""
    if device.type != "cuda" or requested == "fp32":
        return "fp32"
    return requested if torch.cuda.get_device_capability(device)[0] >= BF16_MIN_CAPABILITY else "fp32"


def autocast(device: torch.device, requested: str = "bf16") -> torch.autocast:
    """Autocast for ``precision(device, requested)``; nested inside a bf16 region, fp32 switches it off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(device, requested) == "bf16")


@contextlib.contextmanager
def fixed_shape_timing() -> Iterator[None]:
    """cuDNN autotuning on for timing repeated calls of one shape (the FPS protocol and the FPS column),
    unless deterministic algorithms are on (autotuning may pick a different kernel per run)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def release_device_memory() -> None:
    """Hand cached GPU memory back after a failed cell or trial (CUDA out of memory, say), once its
    tensors are unreferenced, so that the next one starts with the whole card."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def scorer_input(features: torch.Tensor) -> torch.Tensor:
    """Backbone output as every scorer receives it: fp32 in the standard NCHW layout (whatever precision
    and memory format the backbone ran in), so timed and evaluated pipelines compute the same thing."""
    return features.float().contiguous()


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


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        prepare_cuda_determinism()  # in time only before the first CUDA matmul: preflight sets it first
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)  # each cell's own value: a flag never leaks to the next
