"""Training speed per noise net, eager against compiled (``runtime.compile``), with FLOPs and share of peak.

For each noise net: the training step ``train_noise_net`` runs (``TrainingStep``: forward under the
net's precision, epsilon loss, backward, clipping, AdamW fused on CUDA, schedule, EMA) on random
features of the backbone's shape, eager and compiled, interleaved over the same rounds after untimed
warm-up steps (the compiled step's first call, its compile time, is reported on its own). FLOPs per step
are counted once by ``FlopCounterMode`` on the eager step (forward and backward); the peak is a square
matrix product in the net's precision timed in the same rounds; both steps start from the same weights
and inputs, and the loss of their last step is printed side by side. Seconds per unit of InvAD
Table 8 (one multi-class model: 57 steps an epoch on MVTec-AD's 3,629 training images at batch 64,
300 epochs) follow from the measured step.

Run: .venv/bin/python benchmarks/train_speed.py [--noise-nets mlp_large unet dit_base dit_gigant]
     [--batch-size 64] [--channels 272] [--grid 16] [--rounds 10] [--warmup 3] [--device auto]
     CPU smoke check: --noise-nets mlp_tiny dit_tiny --batch-size 8 --channels 32 --grid 4 --rounds 2
"""

from __future__ import annotations

import argparse
import copy

import torch

from adbench.config import RunConfig
from adbench.device import autocast, clock, device_name, precision, resolve_device
from adbench.diffusion.train import TrainingStep
from adbench.engine.build import build_noise_net
from adbench.engine.fps import DTYPES, PEAK_MATMUL_SIZE, counted_flops, time_interleaved

MVTEC_TRAIN_IMAGES, EPOCHS = 3629, 300


def measure(name: str, args: argparse.Namespace, device: torch.device, steps_per_unit: int,
            matrices: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One table row: ``name``'s eager and compiled steps and the peak, timed in the same rounds."""
    cfg = RunConfig(noise_net={"name": name}, train={"precision": args.precision})
    torch.manual_seed(0)
    model = build_noise_net(cfg, args.channels).to(device).train()
    twin = copy.deepcopy(model)
    steps = {"eager": TrainingStep(model, cfg.train, device, steps_per_unit, 0),
             "compiled": TrainingStep(twin, cfg.train, device, steps_per_unit, 0, True)}
    g = torch.Generator().manual_seed(1)
    shape = (args.batch_size, args.channels, args.grid, args.grid)
    x0, noise = (torch.randn(shape, generator=g).to(device) for _ in range(2))
    t = torch.randint(0, cfg.train.timesteps, (args.batch_size,), generator=g).to(device)
    gflop = counted_flops(lambda: steps["eager"](x0, t, noise, 0)) / 1e9
    start = clock(device)
    steps["compiled"](x0, t, noise, 0)
    compile_s = clock(device) - start
    losses = {}

    def call(which: str):
        return lambda: losses.__setitem__(which, steps[which](x0, t, noise, 1))

    with autocast(device, args.precision):  # the peak's matrix product in the net's precision
        seconds = time_interleaved({"eager": call("eager"), "compiled": call("compiled"),
                                    "peak": lambda: torch.matmul(*matrices)}, device, args.warmup, args.rounds)
    side = matrices[0].shape[0]
    peak = 2 * side**3 / seconds["peak"] / 1e12
    share = {k: gflop / 1e3 / seconds[k] / peak for k in ("eager", "compiled")}
    print(f"{name:12s} {gflop:11.1f} {seconds['eager']:13.4f} {seconds['compiled']:9.4f} "
          f"{seconds['eager'] / seconds['compiled']:9.2f} {100 * share['eager']:13.0f} "
          f"{100 * share['compiled']:16.0f} {compile_s:10.1f} "
          f"{float(losses['eager']):12.5f}/{float(losses['compiled']):.5f} "
          f"{seconds['eager'] * steps_per_unit / 3600:10.2f}/{seconds['compiled'] * steps_per_unit / 3600:.2f} "
          f"(peak {peak:.1f} TFLOP/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise-nets", nargs="+", default=["mlp_large", "unet", "dit_base", "dit_gigant"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=272, help="Feature channels (EfficientNet-B4: 272).")
    ap.add_argument("--grid", type=int, default=16, help="Feature grid side (256 px / 16).")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    used = precision(device, args.precision)
    side = PEAK_MATMUL_SIZE["cuda" if device.type == "cuda" else "cpu"]
    a, b = (torch.randn(side, side, device=device, dtype=DTYPES[used]) for _ in range(2))  # the peak's
    steps_per_unit = MVTEC_TRAIN_IMAGES // args.batch_size * EPOCHS  # drop_last, as the official loaders
    print(f"device {device_name(device)}, torch {torch.__version__}, {used}, batch {args.batch_size}, features "
          f"{args.channels} x {args.grid} x {args.grid}; peak: a {side}^3 {used} matrix product, same rounds")
    print(f"{'noise net':12s} {'GFLOP/step':>11s} {'eager s/step':>13s} {'compiled':>9s} {'speed-up':>9s} "
          f"{'eager % peak':>13s} {'compiled % peak':>16s} {'compile s':>10s} {'last loss eager/compiled':>25s} "
          f"{'unit h eager/compiled':>22s}")
    for name in args.noise_nets:
        measure(name, args, device, steps_per_unit, (a, b))


if __name__ == "__main__":
    main()
