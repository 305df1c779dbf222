"""Training epochs per second with cached features vs re-running the backbone every step.

Both measured in this run on the same images: a cached epoch is a real ``train_noise_net`` epoch
on stored features; without the cache every training image also passes through the backbone
once per epoch, so an uncached epoch costs the cached epoch plus one backbone pass over all
training images (measured, batched as in training).

Run: .venv/bin/python benchmarks/feature_cache.py [--images 64] [--epochs 3] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import time

import torch

from adbench.allocator import host_allocator, tune_host_allocator
from adbench.config import RunConfig
from adbench.device import clock, device_name, resolve_device
from adbench.diffusion.train import TrainConfig, train_noise_net
from adbench.engine.run import build_noise_net
from adbench.registry import BACKBONES


@torch.no_grad()
def backbone_epoch_seconds(backbone, images: torch.Tensor, batch_size: int, device: torch.device) -> float:
    backbone(images[:batch_size])  # warm-up
    start = clock(device)
    for i in range(0, len(images), batch_size):
        backbone(images[i : i + batch_size])
    return clock(device) - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--noise-net", default="mlp")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    tune_host_allocator()  # as the CLI does
    device = resolve_device(args.device)
    cfg = RunConfig(backbone=args.backbone, noise_net=args.noise_net)
    backbone = BACKBONES.create(cfg.backbone, pretrained=False, image_size=cfg.image_size).to(device).eval()
    images = torch.randn(args.images, 3, cfg.image_size, cfg.image_size, device=device)
    with torch.no_grad():
        feats = torch.cat([backbone(images[i : i + 16]) for i in range(0, len(images), 16)]).cpu()
    model = build_noise_net(cfg, backbone.out_channels)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, warmup_epochs=0)
    start = time.perf_counter()
    train_noise_net(model, feats, train_cfg, seed=0, device=device)
    cached_epoch = (time.perf_counter() - start) / args.epochs
    backbone_epoch = backbone_epoch_seconds(backbone, images, args.batch_size, device)
    print(f"device {device_name(device)}, {args.images} images, {cfg.backbone} + {cfg.noise_net}, "
          f"batch {args.batch_size}, host allocator: {host_allocator()}")
    print(f"cached features:   {1 / cached_epoch:8.3f} epochs/s ({cached_epoch:.2f} s/epoch)")
    print(f"backbone per step: {1 / (cached_epoch + backbone_epoch):8.3f} epochs/s "
          f"(+{backbone_epoch:.2f} s/epoch of backbone passes)")
    print(f"speed-up from the cache: {(cached_epoch + backbone_epoch) / cached_epoch:.2f}x")


if __name__ == "__main__":
    main()
