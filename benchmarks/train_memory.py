"""Memory of one training step per process: plain (DDP replicates it), activation checkpointing, FSDP over
N processes, both; measured on a small net, projected for DiT-gigant.

Measured, per process, on the CPU (gloo for FSDP) or a GPU:
- ``state``: the bytes of what a step keeps between steps on that process: its weights, gradients, AdamW's
  two moments and the EMA (each the process's shard under FSDP), summed from the tensors themselves;
- ``saved``: the bytes the forward pass keeps for the backward pass (``torch.autograd.graph.saved_tensors_hooks``,
  each storage counted once), the activations that checkpointing trades for a second forward pass;
- ``peak`` (CUDA only): ``torch.cuda.max_memory_allocated`` over the step, beyond what was allocated before it
  (the CPU allocator keeps no such count; a process's peak resident memory says nothing about one step).

The projection for DiT-gigant (``--project``) uses the closed forms the measurement checks on the small net:
state = 20 bytes a parameter (fp32 weights, gradients, two AdamW moments, EMA), divided by N under FSDP; saved =
the measured bytes a sample of one gigant block keeps (at 256 tokens, fp32 as the official training), times
depth and per-process batch; checkpointing keeps each block's input instead, plus one block's activations
while it is recomputed.

    .venv/bin/python benchmarks/train_memory.py [--net dit_base] [--width 256 --depth 4] [--batch 16] [--project]
"""

from __future__ import annotations

import argparse
import uuid

import torch

from adbench.config import RunConfig
from adbench.diffusion.parallel import World
from adbench.diffusion.train import TrainingStep
from adbench.engine.build import build_noise_net

CHANNELS, GRID = 272, 16  # EfficientNet-B4 features at 256 px
CARDS_GB = (24, 48, 80)


def local_bytes(tensors) -> int:
    """Bytes of ``tensors`` held by this process (a DTensor's local shard)."""
    total = 0
    for t in tensors:
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def measure(cfg: RunConfig, batch: int, world: World | None, device: torch.device) -> dict[str, float]:
    """One training step of ``cfg``'s net on a batch of ``batch`` (this process's share): state, saved, peak."""
    model = build_noise_net(cfg, CHANNELS, GRID).to(device)
    step = TrainingStep(model, cfg.train, device, total=10, warmup=0, world=world)
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(batch, CHANNELS, GRID, GRID, generator=g).to(device) for _ in range(2))
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)
    step(x0, t, noise, 0)  # a first step: AdamW's moments exist from here on
    seen: dict[int, int] = {}
    weights = {(p.to_local() if hasattr(p, "to_local") else p).untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:  # the weights themselves are kept anyway
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step(x0, t, noise, 1)
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - before if cuda else float("nan")
    moments = [v for state in step.opt.state.values() for k, v in state.items() if k in ("exp_avg", "exp_avg_sq")]
    params = list(model.parameters())
    state = local_bytes(params) * 2 + local_bytes(moments) + local_bytes(step.ema.state.values())  # + gradients
    return {"state": state, "saved": sum(seen.values()), "peak": peak}


def worker(cfg_dict: dict, batch: int, device_type: str) -> dict[str, float]:
    import os

    import torch.distributed as dist

    from adbench.config import validated

    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = World.join(device.type)
    try:
        return measure(validated(cfg_dict), batch, world, device)
    finally:
        dist.destroy_process_group()


def on_processes(cfg: RunConfig, batch: int, n: int, device_type: str) -> dict[str, float]:
    """``measure`` on rank 0 of ``n`` processes (FSDP needs a process group)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn", monitor_interval=0.2)
    return elastic_launch(launch, worker)(cfg.to_dict(), batch, device_type)[0]


def block_bytes_per_sample(width: int, heads: int = 8) -> int:
    """Bytes one DiT block of ``width`` keeps for the backward pass per sample at 256 tokens (fp32)."""
    from adbench.noise_nets.dit import DiTBlock

    block = DiTBlock(width, heads)
    sizes = []
    for batch in (1, 2):
        seen: dict[int, int] = {}

        def pack(tensor: torch.Tensor, seen=seen) -> torch.Tensor:
            seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        x, c = torch.randn(batch, GRID * GRID, width, requires_grad=True), torch.randn(batch, width)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            block(x, c).sum()
        sizes.append(sum(seen.values()))
    return sizes[1] - sizes[0]  # what one more sample adds (the weights, saved too, cancel)


def project(per_process_batch: int = 8) -> None:
    """Per-process memory of DiT-gigant (1,223.2M parameters, depth 16, width 2048) for each option."""
    from adbench.noise_nets import parameter_count

    params, depth, width = parameter_count("dit_gigant"), 16, 2048
    per_sample = block_bytes_per_sample(width)
    block_input = GRID * GRID * width * 4
    print(f"DiT-gigant: {params / 1e6:.1f}M parameters; one block keeps {per_sample / 2**20:.1f} MiB a sample "
          f"(measured at width {width}, 256 tokens, fp32); batch {per_process_batch} a process")
    print(f"{'option':40s} {'state GB':>9s} {'activations GB':>15s} {'total GB':>9s}  " +
          "  ".join(f"{c} GB" for c in CARDS_GB))
    for n in (1, 2, 4, 8):
        for checkpointing in (False, True):
            state = 20 * params / (n if n > 1 else 1)
            acts = per_process_batch * (depth * block_input + per_sample if checkpointing else depth * per_sample)
            total = state + acts
            label = "DDP, any number of GPUs" if n == 1 else f"FSDP over {n} GPUs"
            label += " + checkpointing" if checkpointing else ""
            fits = "  ".join(f"{'fits' if total < c * 1e9 * 0.9 else 'no':>5s}" for c in CARDS_GB)
            print(f"{label:40s} {state / 1e9:9.1f} {acts / 1e9:15.1f} {total / 1e9:9.1f}  {fits}")
    print("fits: under 90 % of the card (the rest for the CUDA context, the allocator's cache and the features)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16, help="The global batch (split across the FSDP processes).")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (one GPU a process, NCCL).")
    ap.add_argument("--project", action="store_true", help="Also project DiT-gigant's memory (about a minute).")
    args = ap.parse_args()
    device = torch.device(args.device)
    net = {"name": "dit_base", "args": {"width": args.width, "depth": args.depth}}
    n = args.processes
    print(f"torch {torch.__version__}, {args.device}; DiT width {args.width}, depth {args.depth}, {CHANNELS} x {GRID} "
          f"x {GRID} features, global batch {args.batch}, fp32")
    print(f"{'option':30s} {'state MiB':>10s} {'saved MiB':>10s} {'peak MiB (CUDA)':>16s}")
    for strategy, procs in (("ddp", None), ("fsdp", n)):
        for checkpointing in (False, True):
            cfg = RunConfig(noise_net=net, runtime={"nproc_per_node": procs},
                            train={"strategy": strategy, "activation_checkpointing": checkpointing,
                                   "batch_size": args.batch})
            row = (measure(cfg, args.batch, None, device) if procs is None
                   else on_processes(cfg, args.batch // n, n, device.type))
            label = ("one process" if procs is None else f"FSDP, rank 0 of {n}") + \
                (" + checkpointing" if checkpointing else "")
            print(f"{label:30s} {row['state'] / 2**20:10.1f} {row['saved'] / 2**20:10.1f} {row['peak'] / 2**20:16.1f}")
    if args.project:
        project()


if __name__ == "__main__":
    main()
