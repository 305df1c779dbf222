"""One noise net on several processes, with torch's own distributed stack (DDP, FSDP2, activation
checkpointing, the ``torch.distributed.checkpoint`` state dicts); nothing here is adbench's own all-reduce.

A ``World`` is the process group a training runs in: every rank holds the whole features tensor and the
same seeded generator, draws the global batch's timesteps and noise and trains on its share of it
(``World.share``), so any number of processes trains the one-process net up to float rounding. A
checkpoint holds full (unsharded) states written by rank 0 alone; on resume rank 0 reads it and
broadcasts it, so it resumes on any world size and no other rank needs the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from adbench.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` processes that train one net (``torch.distributed``)."""

    rank: int
    size: int
    local_rank: int

    @classmethod
    def join(cls, device_type: str) -> World:
        """Join the process group that the launcher's environment describes (``RANK``, ``WORLD_SIZE``,
        ``MASTER_ADDR``...): NCCL between GPUs, gloo on CPUs."""
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    def share(self, n: int) -> slice:
        """This rank's positions in a global batch of ``n``: every ``size``-th from its rank (as torch's
        ``DistributedSampler`` deals a permutation), so that the ranks' shares make up the batch."""
        return slice(self.rank, n, self.size)


def blocks(net: nn.Module) -> list[nn.Module]:
    """The net's repeated units: every module held directly in one of its ``nn.ModuleList``s (the blocks of
    the MLP and the DiT, the UNet's levels); what activation checkpointing recomputes and FSDP shards one by one."""
    return [m for lst in net.modules() if isinstance(lst, nn.ModuleList) for m in lst]


def prepare(model: nn.Module, strategy: str, checkpointing: bool, world: World | None,
            device: torch.device) -> nn.Module:
    """``model`` ready to train: each block recomputed in the backward pass (``checkpointing``, torch's
    composable ``checkpoint``: the module and its state-dict keys unchanged), then, in a ``world``, replicated
    (``ddp``: ``DistributedDataParallel``, the module returned wraps ``model``) or sharded in place (``fsdp``:
    ``fully_shard`` on each block, then the whole net). Returns the module to call."""
    units = blocks(model)
    if checkpointing:
        if not units:
            raise ConfigError(f"train.activation_checkpointing: {type(model).__name__} keeps no blocks in an "
                              "nn.ModuleList, so there is nothing to recompute block by block")
        from torch.distributed._composable import checkpoint

        for unit in units:
            checkpoint(unit)
    if world is None:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for unit in units:
            fully_shard(unit)
        fully_shard(model)
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    # the gradients live in DDP's all-reduce buckets (views), not in a second copy of them
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)


def summed_over(values: torch.Tensor, world: World | None) -> torch.Tensor:
    """``values`` (each rank's part of the same steps' losses) summed over the ranks: the global losses."""
    if world is None:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
SCATTER = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


def full_state(model: nn.Module, opt: torch.optim.Optimizer, ema: dict[str, torch.Tensor],
               world: World | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """(model, optimizer, EMA) states, unsharded, keyed by parameter name; in a ``world`` every rank must
    call it (a collective) and rank 0 alone gets them."""
    if world is None:
        return get_model_state_dict(model), get_optimizer_state_dict(model, opt), ema
    from torch.distributed.tensor import DTensor

    gathered = {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in ema.items()}
    states = (get_model_state_dict(model, options=GATHER), get_optimizer_state_dict(model, opt, options=GATHER),
              {k: v.detach().cpu() for k, v in gathered.items()})
    return states if world.rank == 0 else ({}, {}, {})


def load_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any] | None,
               world: World | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Set ``model`` and ``opt`` from a checkpoint's full ``state`` (in a ``world``: rank 0's, broadcast to
    the others, who pass None); return the EMA state, laid out as ``model``'s (sharded under FSDP), and the
    rest of the checkpoint (step, losses, generator); None, and nothing set, when rank 0 has no ``state``."""
    rest = [None if state is None else {k: v for k, v in state.items() if k not in ("model", "optimizer", "ema")}]
    if world is None:
        if state is None:
            return None
        model.load_state_dict(state["model"])
        set_optimizer_state_dict(model, opt, state["optimizer"])
        return {k: v.to(next(model.parameters()).device) for k, v in state["ema"].items()}, rest[0]
    dist.broadcast_object_list(rest, src=0)
    if rest[0] is None:
        return None
    state = state or {}
    set_model_state_dict(model, dict(state.get("ema", {})), options=SCATTER)  # the EMA, laid out as the model
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    set_model_state_dict(model, dict(state.get("model", {})), options=SCATTER)
    set_optimizer_state_dict(model, opt, dict(state.get("optimizer", {})), options=SCATTER)
    return ema, rest[0]
