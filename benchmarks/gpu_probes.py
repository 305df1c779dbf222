"""The CUDA paths no CPU test executes, checked one by one on a GPU (issue 17); one line per check.

Each check prints ``name: value`` so two runs (before and after a fix) compare line by line.
Run on a machine with a GPU: python benchmarks/gpu_probes.py [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import torch

from adbench.config import RunConfig
from adbench.device import autocast, clock, fixed_shape_timing, precision, resolve_device, seed_everything
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import TrainConfig, train_noise_net
from adbench.engine.build import build_noise_net, build_scorer
from adbench.engine.fps import FpsBench, time_interleaved
from adbench.noise_nets.unet import AttentionBlock


def report(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def deterministic_across_cells(device: torch.device) -> None:
    """Item 1: a non-deterministic cell, then a deterministic one, then a non-deterministic one."""
    x = torch.randn(64, 64, device=device)
    for cell, flag in enumerate((False, True, False)):
        seed_everything(0, flag)
        try:
            (x @ x).sum().item()
            outcome = "ok"
        except RuntimeError as exc:
            outcome = f"error {str(exc).splitlines()[0][:100]}"
        report(f"item1 cell{cell} deterministic={flag}", f"{outcome}, flag now "
               f"{torch.are_deterministic_algorithms_enabled()}, cudnn.benchmark {torch.backends.cudnn.benchmark}")


def random_net(cfg: RunConfig, channels: int, device: torch.device) -> torch.nn.Module:
    """A noise net with every weight random (zero-initialised output layers would hide differences)."""
    model = build_noise_net(cfg, channels)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.to(device).eval()


@torch.no_grad()
def scorer_noise_across_devices(device: torch.device) -> None:
    """Item 3: the same seed scores the same on CPU and on the GPU (fp32, so only the noise differs)."""
    cfg = RunConfig(noise_net={"name": "mlp_tiny"})
    feats = torch.randn(4, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    schedule = Schedule.linear(1000)
    for name in ("osd_irf_noisy", "reconstruction", "invad"):
        scorer = build_scorer({"name": name})
        maps = []
        for dev in (torch.device("cpu"), device):
            model = random_net(cfg, 16, dev)
            out = scorer.score(model, schedule, feats.to(dev), torch.Generator().manual_seed(0))  # as the engine
            maps.append(out.feature_map.float().cpu())
        report(f"item3 {name} max |cpu - {device.type}|", f"{(maps[0] - maps[1]).abs().max().item():.3g}")


def bf16_choice(device: torch.device) -> None:
    """Item 4: the precision chosen for this GPU's compute capability."""
    cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    report("item4 capability, precision chosen", f"{cap}, {precision(device)}")


@torch.no_grad()
def unet_attention_kernel(device: torch.device) -> None:
    """Item 7: the SDPA backend the UNet's attention layout gets (flash or efficient, not math)."""
    block = AttentionBlock(256).to(device).eval()
    x = torch.randn(8, 256, 16, 16, device=device)
    with autocast(device):
        q, k, v = block.queries_keys_values(x)
        report("item7 sdpa choice, layout as passed", torch._fused_sdp_choice(q, k, v))
        strided = [t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in (q, k, v)]
        report("item7 sdpa choice, the old strided layout", torch._fused_sdp_choice(*strided))
    if device.type != "cuda":
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof, autocast(device):
        block(x)
        torch.cuda.synchronize(device)
    kernels = sorted({e.name[:60] for e in prof.events() if "attention" in e.name.lower() or "fmha" in e.name.lower()
                      or "flash" in e.name.lower() or "softmax" in e.name.lower()})
    report("item7 kernels in the block's forward", kernels)


@torch.no_grad()
def mlp_bf16_error(device: torch.device) -> None:
    """Item 9: mlp_large under bf16 autocast against fp32, relative to the fp32 output's RMS."""
    cfg = RunConfig(noise_net={"name": "mlp_large"})
    model = random_net(cfg, 272, device)
    x = torch.randn(16, 272, 16, 16, device=device)
    t = torch.full((16,), 500, device=device)
    ref = model(x, t).float()
    with autocast(device):
        low = model(x, t)
    report("item9 mlp_large output dtype under autocast", low.dtype)
    err = (low.float() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()
    report("item9 mlp_large bf16 vs fp32 relative RMS error", f"{err.item():.3g}")


def training_speed(device: torch.device, noise_net: str = "mlp", images: int = 512, batch: int = 64) -> None:
    """Item 6: training steps per second with the features on the device (after a warm-up epoch)."""
    cfg = RunConfig(noise_net={"name": noise_net})
    feats = torch.randn(images, 272, 16, 16)
    model = build_noise_net(cfg, 272)
    warm = TrainConfig(epochs=1, batch_size=batch, warmup_epochs=0)
    train_noise_net(model, feats, warm, seed=0, device=device, description="warm-up")
    timed = TrainConfig(epochs=4, batch_size=batch, warmup_epochs=0)
    start = clock(device)
    train_noise_net(model, feats, timed, seed=0, device=device, description="timed")
    steps = timed.epochs * images // batch
    report(f"item6 {noise_net} training steps/s (batch {batch})", f"{steps / (clock(device) - start):.1f}")


@torch.no_grad()
def batch1_latency(device: torch.device) -> None:
    """Where `adbench fps`'s batch-1 latency goes (EfficientNet-B4 + DiT-gigant, its precision): the latency
    calls timed alone and interleaved with the batch-64 calls (as `adbench fps` times them), then, per latency
    call, the CUDA runtime calls the host makes and the host's busiest operators."""
    cfg = RunConfig(backbone={"name": "efficientnet_b4"}, noise_net={"name": "dit_gigant"},
                    scoring={"scorers": [{"name": "osd_irf_mean"}, {"name": "invad", "steps": 3}]},
                    runtime={"device": str(device)})
    bench = FpsBench(cfg, batch_size=64)
    calls = bench.calls()
    latency = {k: v for k, v in calls.items() if k[1] == "latency"}
    with autocast(device, cfg.noise_net.precision), fixed_shape_timing():
        for name, timed in (("alone", latency), ("interleaved with batch 64", calls),
                            ("alone again", latency)):
            seconds = time_interleaved(timed, device, 3, 10)
            report(f"latency b=1 ms, {name}", ", ".join(f"{k[0]} {1000 * seconds[k]:.1f}" for k in latency))
        if device.type != "cuda":
            return
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        for key, call in latency.items():
            with torch.profiler.profile(activities=activities) as prof:
                call()
                torch.cuda.synchronize(device)
            runtime = Counter(e.name for e in prof.events() if e.name.startswith("cuda"))
            report(f"latency b=1 {key[0]}: CUDA runtime calls", dict(runtime.most_common(6)))
            ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:6]
            report(f"latency b=1 {key[0]}: host self time (ms, calls)",
                   {e.key[:40]: (round(e.self_cpu_time_total / 1000, 2), e.count) for e in ops})


CHECKS = (bf16_choice, scorer_noise_across_devices, unet_attention_kernel, mlp_bf16_error, training_speed,
          deterministic_across_cells, batch1_latency)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", nargs="+", choices=[c.__name__ for c in CHECKS], help="Run these checks alone.")
    args = ap.parse_args()
    device = resolve_device(args.device)
    report("device", torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    report("CUBLAS_WORKSPACE_CONFIG at start", os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    for check in (c for c in CHECKS if not args.only or c.__name__ in args.only):
        start = time.perf_counter()
        try:
            check(device)
        except Exception as exc:  # noqa: BLE001 - every check reports, whatever fails
            report(f"{check.__name__} FAILED", f"{type(exc).__name__}: {exc}")
        report(f"{check.__name__} seconds", f"{time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()
