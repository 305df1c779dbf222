"""One noise net on several processes (torch.distributed, gloo on the CPU): the same training as one process,
resumable across world sizes and after a killed rank; FSDP and activation checkpointing as the eager step.

Tolerances, measured on a 2-core x86-64 (AVX-512) with torch 2.14.1: 2 processes against 1, mlp_tiny, 12
steps of AdamW at lr 1e-3 with an uneven last batch (3 + 2 images): losses within 6e-8, weights within 6e-8,
EMA within 1.5e-8 (the gradients are summed in another order, then averaged); FSDP with activation
checkpointing on unet_tiny: losses within 1.2e-7, the trained nets' outputs within 1.2e-7 (raw) and 4.7e-10
(EMA). The bound, 1e-5, is 1 % of one step at lr 1e-3 (AdamW's normalised update can turn a last-bit
gradient difference into a visible move of a weight whose gradient is near zero, as for the compiled step
in test_diffusion.py).
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adbench.config import RunConfig
from adbench.diffusion.parallel import World, blocks, prepare
from adbench.diffusion.train import train_noise_net
from adbench.engine.build import build_noise_net
from adbench.engine.launch import distributed_training

BOUND = 1e-5
CPU = torch.device("cpu")


def features(n: int = 21, channels: int = 8) -> torch.Tensor:
    return 1.5 + 0.4 * torch.randn(n, channels, 4, 4, generator=torch.Generator().manual_seed(0))


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=BOUND)


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_two_processes_resume_and_train_the_one_process_net(tmp_path):
    """A checkpoint written by one process at step 5 is resumed by two, which train the rest of the same net:
    the first 5 losses are the checkpoint's, the others and the final weights and EMA those of one process
    training all 12 steps, within the bound; the per-process batch splits an uneven last batch (5 -> 3 + 2)."""
    feats = features()
    cfg = RunConfig(noise_net={"name": "mlp_tiny"}, runtime={"nproc_per_node": 2, "device": "cpu"},
                    train={"epochs": 4, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 1, "drop_last": False,
                           "checkpoint_every": 5})  # 3 steps an epoch: 8, 8 and 5 images
    reference = build_noise_net(cfg, 8, 4)
    ref_losses, ref_ema = train_noise_net(reference, feats, cfg.train, cfg.seed)

    interrupted, calls = build_noise_net(cfg, 8, 4), {"n": 0}
    forward = interrupted.forward

    def dying(x, t):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Interrupt
        return forward(x, t)

    interrupted.forward = dying
    ckpt = tmp_path / "multiclass.ckpt"
    with pytest.raises(Interrupt):
        train_noise_net(interrupted, feats, cfg.train, cfg.seed, ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 5

    assert distributed_training(cfg, feats, 8, 4, ckpt, CPU, "two", "unused")  # this machine holds rank 0
    final = torch.load(ckpt, weights_only=True)
    assert final["step"] == 12 and final["world_size"] == 2
    assert final["losses"][:5] == ref_losses[:5]
    assert final["losses"] == pytest.approx(ref_losses, rel=0, abs=BOUND)
    close(final["model"], reference.state_dict())
    close(final["ema"], ref_ema)


@pytest.mark.slow
def test_fsdp_with_activation_checkpointing_trains_the_eager_net(tmp_path):
    """unet_tiny (residual blocks, attention, down- and upsampling convolutions) sharded over two processes
    by FSDP2, every block recomputed in the backward pass: the eager single-process training within the bound,
    compared by what the nets compute (raw and EMA weights, on the training features at three timesteps).
    The weights themselves are not comparable one by one: the biases of the last block's output and skip
    convolutions are per-channel constants that the output GroupNorm (one channel a group) subtracts again,
    so their gradient is zero but for rounding, and AdamW turns that rounding into lr-sized steps (1.2e-4
    apart after 12 steps, with DDP as with FSDP)."""
    feats = features(16)
    train = {"epochs": 3, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 1, "checkpoint_every": 100}
    cfg = RunConfig(noise_net={"name": "unet_tiny"}, runtime={"nproc_per_node": 2, "device": "cpu"},
                    train={**train, "strategy": "fsdp", "activation_checkpointing": True})
    eager = RunConfig(noise_net={"name": "unet_tiny"}, train=train)
    reference = build_noise_net(eager, 8)
    ref_losses, ref_ema = train_noise_net(reference, feats, eager.train, eager.seed)
    ckpt = tmp_path / "fsdp.ckpt"
    assert distributed_training(cfg, feats, 8, 4, ckpt, CPU, "fsdp", "unused")
    final = torch.load(ckpt, weights_only=True)
    assert final["losses"] == pytest.approx(ref_losses, rel=0, abs=BOUND) and len(ref_losses) == 12
    assert final["model"].keys() == reference.state_dict().keys()  # the module's names, unsharded
    t = torch.tensor([10, 500, 999]).repeat_interleave(len(feats))
    x = feats.repeat(3, 1, 1, 1)
    for trained, ref in ((final["model"], reference.state_dict()), (final["ema"], ref_ema)):
        outputs = []
        for weights in (trained, ref):
            net = build_noise_net(eager, 8)
            net.load_state_dict(weights)
            with torch.no_grad():
                outputs.append(net(x, t))
        torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=BOUND)


@pytest.mark.parametrize("name", ["mlp_tiny", "dit_tiny", "unet_tiny"])
def test_activation_checkpointing_recomputes_the_same_step(name):
    """Recomputing each block in the backward pass (torch's composable checkpoint) gives the eager step's
    losses and weights bit for bit, with the module's own state-dict keys."""
    feats = features(12)
    runs = []
    for checkpointing in (False, True):
        cfg = RunConfig(noise_net={"name": name}, train={"epochs": 2, "batch_size": 4, "lr": 1e-3,
                                                         "warmup_epochs": 1, "activation_checkpointing": checkpointing})
        net = build_noise_net(cfg, 8, 4)
        losses, _ = train_noise_net(net, feats, cfg.train, cfg.seed)
        runs.append((losses, net.state_dict()))
    (eager_losses, eager), (losses, weights) = runs
    assert losses == eager_losses and weights.keys() == eager.keys()
    assert all(torch.equal(weights[k], eager[k]) for k in eager)


def test_blocks_and_their_absence():
    """The units checkpointed and sharded: the modules of a net's ModuleLists; a net without any is refused."""
    from adbench.errors import ConfigError
    from adbench.registry import NOISE_NETS

    net = NOISE_NETS.create("mlp_tiny", in_channels=4)
    assert blocks(net) == list(net.blocks)
    unet = [type(m).__name__ for m in blocks(NOISE_NETS.create("unet_tiny", in_channels=4))]  # 2 levels, 1 block each
    assert unet == ["Block", "Conv2d", "Block"] + ["Block"] * 2 + ["Block", "Block", "Upsample", "Block", "Block"]
    with pytest.raises(ConfigError, match="Linear keeps no blocks in an nn.ModuleList"):
        prepare(torch.nn.Linear(2, 2), "ddp", True, None, CPU)
    assert World(1, 2, 1).share(5) == slice(1, 5, 2)


def test_a_batch_that_does_not_split_is_refused():
    from adbench.config import validated
    from adbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.batch_size 64 is the global batch; it must split evenly across "
                                          r"the 3 training processes"):
        validated({"runtime": {"nproc_per_node": 3}})
    with pytest.raises(ConfigError, match="train.strategy fsdp shards .* set runtime.nproc_per_node"):
        validated({"train": {"strategy": "fsdp"}})
    with pytest.raises(ConfigError, match="runtime.nnodes 2 trains across machines: set runtime.nproc_per_node"):
        validated({"runtime": {"nnodes": 2}})
    assert validated({"runtime": {"nproc_per_node": 4, "nnodes": 2, "rdzv_endpoint": "h:1"}}).runtime.world_size == 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def train_command(results: Path, *extra: str) -> list[str]:
    """``adbench train`` of a 400-step mlp_tiny on one category of tiny synthetic data (pixels: no backbone to
    run), checkpointing every 10 steps."""
    return [sys.executable, "-m", "adbench", "train", "--dataset", "synthetic", "--backbone", "pixels", "-c", "weave",
            "--set", "data.setting=single",
            "--image-size", "64", "--noise-net", "mlp_tiny", "--epochs", "100", "--batch-size", "4", "--device", "cpu",
            "--set", "data.args={n_train: 20, n_good: 2, n_per_defect: 1}", "--set", "train.checkpoint_every=10",
            "--set", "train.warmup_epochs=2", "--results-dir", str(results), *extra]


def workers_of(pid: int) -> list[int]:
    """The processes a distributed training spawned below ``pid`` (multiprocessing's spawn_main)."""
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                stack.append(child)
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks through Linux's /proc")
def test_a_killed_rank_fails_the_run_in_one_line_and_the_next_start_resumes(tmp_path):
    """Two machines (two `adbench train` on this one, a process each, meeting at a rendezvous) train the
    reference. Then two processes of one machine train the same net; one rank is killed once a checkpoint
    exists: the run fails with one line naming the rank, and the same command resumes from the checkpoint and
    ends with the reference's weights bit for bit (the same world size, so the same sums)."""
    # one thread a rank everywhere: a machine of one rank would otherwise take both cores, and its sums differ
    env = {**os.environ, "ADBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    port = free_port()
    machines = [subprocess.Popen(train_command(tmp_path / f"node{i}", "--nproc-per-node", "1", "--nnodes", "2",
                                               "--rdzv-endpoint", f"localhost:{port}"),
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
    outcomes = [(m.wait(), m.stderr.read()) for m in machines]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    written = [p for i in range(2) for p in (tmp_path / f"node{i}").glob("*/models/*.pt")]
    assert len(written) == 1  # by the machine of rank 0 alone
    reference = torch.load(written[0], weights_only=True)

    results = tmp_path / "single"
    cmd = train_command(results, "--nproc-per-node", "2")
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not list(results.glob("*/models/*.ckpt")) and run.poll() is None:  # the event: a first checkpoint
        pass
    ranks = workers_of(run.pid)
    assert run.poll() is None and len(ranks) == 2, "the training ended before a rank could be killed"
    os.kill(ranks[-1], signal.SIGKILL)
    message = run.communicate()[1].strip().splitlines()[-1]
    assert run.returncode == 2  # an adbench error
    assert "distributed training failed: rank " in message and "was killed by SIGKILL; its last checkpoint is " \
        "kept: run the same command again to resume" in message
    [folder] = results.iterdir()
    again = subprocess.run([*cmd, "--resume", str(folder)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "resumed at step " in again.stderr and "of 400" in again.stderr
    [model] = folder.glob("models/*.pt")
    resumed = torch.load(model, weights_only=True)
    for kind in ("raw", "ema"):
        assert all(torch.equal(resumed[kind][k], reference[kind][k]) for k in reference[kind])


def test_torchrun_is_refused_with_the_flag_that_does_it():
    """Under torchrun every process would run the whole command: one line says what to run instead."""
    from typer.testing import CliRunner

    from adbench.cli import app

    result = CliRunner().invoke(app, ["list"], env={"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"})
    assert result.exit_code == 2 and "adbench was started by torchrun" in result.output
    assert "--nproc-per-node N" in result.output
