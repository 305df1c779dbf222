"""Offline weight loading: local files (safetensors or a weights-only state dict)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from adbench.atomic import safe_torch_load
from adbench.errors import WeightsError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path``: ``.safetensors`` or a torch file loaded with ``weights_only=True``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"Weights file {path} not found.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = safe_torch_load(path)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same user error
        raise WeightsError(f"Cannot load weights from {path}: {exc}") from None
    for key in ("state_dict", "model", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (found {type(state).__name__}).")
    return state


def map_by_order(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """Rename ``state`` onto ``model``'s keys position by position, checking every shape."""
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsError(f"{source} has {len(state)} tensors, the model {len(target)}: not the same network.")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(state.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise WeightsError(f"{source}: {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}.")
        mapped[dst_key] = tensor
    return mapped


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; keys the model lacks (e.g. a classifier head) are ignored."""
    missing, _unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise WeightsError(f"{source} lacks {len(missing)} tensors of the model, e.g. {missing[:3]}.")

