"""Train one noise net on several processes (``runtime.nproc_per_node``, on one or more machines): torch's
elastic launcher (torchrun's own API) starts them and joins them in a process group, each trains its share
of every global batch (``adbench.diffusion.parallel``), rank 0 writes the checkpoints. The process that
called it does everything else: features before, scoring after, from the final checkpoint.

A rank that dies stops the others and fails the training in one line; the checkpoint it leaves (every
``train.checkpoint_every`` steps) is where the same command resumes, on any number of processes.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import torch

from adbench.config import RunConfig
from adbench.errors import AdbenchError

ELASTIC_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")


class TrainingFailed(AdbenchError):
    """A rank of a distributed training failed (killed, out of memory, an error)."""


def failure_line(exc: Any, checkpoint: Path) -> str:
    """What a ``ChildFailedError`` says, in one line: the first rank that failed, how, and what resumes."""
    rank, failure = exc.get_first_failure()
    if failure.exitcode < 0:
        how = f"was killed by {failure.signal_name()}"
    else:
        message = failure.message
        if isinstance(message, dict):
            message = message.get("message", "")
        lines = [line.strip() for line in str(message or "").strip().splitlines() if line.strip()]
        how = f"exited with code {failure.exitcode}" + (f": {lines[-1]}" if lines else "")
    kept = "its last checkpoint is kept: run the same command again to resume" if checkpoint.is_file() else \
        "no checkpoint was written yet"
    return f"distributed training failed: rank {rank} (pid {failure.pid}) {how}; {kept} ({checkpoint})"


def distributed_training(cfg: RunConfig, features: torch.Tensor, in_channels: int, grid: int, checkpoint: Path,
                         device: torch.device, description: str, run_id: str) -> bool:
    """Train ``cfg``'s noise net on ``features`` in ``runtime.nproc_per_node`` processes on each of
    ``runtime.nnodes`` machines; the final checkpoint is ``checkpoint``. Returns whether this machine holds
    rank 0 (so wrote it). ``run_id`` names the rendezvous (the same on every machine: the training key)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    runtime = cfg.runtime
    if device.type == "cuda" and runtime.nproc_per_node > torch.cuda.device_count():
        raise AdbenchError(f"runtime.nproc_per_node {runtime.nproc_per_node} asks for one GPU a process, and this "
                           f"machine has {torch.cuda.device_count()}")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    shared = checkpoint.with_name(f".{checkpoint.stem}-features-{socket.gethostname()}-{os.getpid()}.pt")
    torch.save(features.contiguous(), shared)  # what every local rank maps (mmap), not a copy each
    job = {"config": cfg.to_dict(), "in_channels": in_channels, "grid": grid, "features": str(shared),
           "checkpoint": str(checkpoint), "device": device.type, "description": description}
    launch = LaunchConfig(min_nodes=runtime.nnodes, max_nodes=runtime.nnodes, nproc_per_node=runtime.nproc_per_node,
                          run_id=run_id if runtime.nnodes > 1 else uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint=runtime.rdzv_endpoint or "localhost:0", max_restarts=0,
                          start_method="spawn", monitor_interval=0.2)
    levels = {name: logging.getLogger(name).level for name in ELASTIC_LOGGERS}
    try:
        for name in ELASTIC_LOGGERS:  # the agent's own warnings (closing signals, root-cause tables) stay out
            logging.getLogger(name).setLevel(logging.CRITICAL)
        results = elastic_launch(launch, train_worker)(job)
    except ChildFailedError as exc:
        raise TrainingFailed(failure_line(exc, checkpoint)) from None
    finally:
        shared.unlink(missing_ok=True)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    return 0 in results


def train_worker(job: dict[str, Any]) -> None:
    """One rank: join the process group, build the net from the config's seed (the same weights on every
    rank), train on its share of each global batch."""
    from torch.distributed.elastic.multiprocessing.errors import record

    record(run_rank)(job)


def run_rank(job: dict[str, Any]) -> None:
    import torch.distributed as dist

    from adbench.config import validated
    from adbench.device import seed_everything
    from adbench.diffusion.parallel import World
    from adbench.diffusion.train import train_noise_net
    from adbench.engine.build import build_noise_net

    local_rank, local_size = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    if job["device"] == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        if "OMP_NUM_THREADS" not in os.environ:  # the machine's cores, shared, unless said otherwise
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
    world = World.join(device.type)
    try:
        cfg = validated(job["config"])
        seed_everything(cfg.seed, cfg.deterministic)
        model = build_noise_net(cfg, job["in_channels"], job["grid"])
        features = torch.load(job["features"], mmap=True, weights_only=True)
        train_noise_net(model, features, cfg.train, cfg.seed, Path(job["checkpoint"]), device, job["description"],
                        cfg.runtime.compile, world)
    finally:
        dist.destroy_process_group()
