"""Training epochs per second with cached features vs re-running the backbone every step.

Both measured in this run on the same images: a cached epoch is a real ``train_noise_net`` epoch
on stored features; without the cache every training image also passes through the backbone
once per epoch, so an uncached epoch costs the cached epoch plus one backbone pass over all
training images (measured, batched as in training). Both are timed as the pipeline runs them, after
an untimed warm-up: the backbone in its precision and memory format (``prepare_backbone``, ``images_for``,
``backbone_precision`` autocast), training under the noise net's autocast with its features uploaded once.

Run: .venv/bin/python benchmarks/feature_cache.py [--images 64] [--epochs 3] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse

import torch

from adbench.allocator import host_allocator, tune_host_allocator
from adbench.config import RunConfig
from adbench.device import autocast, clock, device_name, images_for, prepare_backbone, resolve_device, scorer_input
from adbench.diffusion.train import TrainConfig, train_noise_net
from adbench.engine.build import build_noise_net
from adbench.registry import BACKBONES


@torch.no_grad()
def backbone_epoch_seconds(backbone, images: torch.Tensor, batch_size: int, device: torch.device,
                           backbone_precision: str) -> float:
    def epoch() -> None:
        for i in range(0, len(images), batch_size):
            with autocast(device, backbone_precision):
                backbone(images_for(backbone, images[i : i + batch_size], device))

    epoch()  # warm-up: cuDNN plans for both batch shapes, lazy kernels, allocator growth
    start = clock(device)
    epoch()
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
    cfg = RunConfig(backbone={"name": args.backbone}, noise_net={"name": args.noise_net})
    backbone = BACKBONES.create(cfg.backbone.name, pretrained=False, image_size=cfg.backbone.image_size)
    backbone = prepare_backbone(backbone, device)
    images = torch.randn(args.images, 3, cfg.backbone.image_size, cfg.backbone.image_size, device=device)
    with torch.no_grad(), autocast(device, cfg.backbone.precision):
        feats = torch.cat([scorer_input(backbone(images_for(backbone, images[i : i + 16], device))).cpu()
                           for i in range(0, len(images), 16)])
    model = build_noise_net(cfg, backbone.out_channels)
    train_noise_net(model, feats, TrainConfig(epochs=1, batch_size=args.batch_size, warmup_epochs=0), seed=0,
                    device=device)  # warm-up: cuBLAS set-up, lazy kernels, upload
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, warmup_epochs=0)
    start = clock(device)
    train_noise_net(model, feats, train_cfg, seed=0, device=device)
    cached_epoch = (clock(device) - start) / args.epochs
    backbone_epoch = backbone_epoch_seconds(backbone, images, args.batch_size, device, cfg.backbone.precision)
    print(f"device {device_name(device)}, {args.images} images, {cfg.backbone.name} + {cfg.noise_net.name}, "
          f"batch {args.batch_size}, host allocator: {host_allocator()}")
    print(f"cached features:   {1 / cached_epoch:8.3f} epochs/s ({cached_epoch:.2f} s/epoch)")
    print(f"backbone per step: {1 / (cached_epoch + backbone_epoch):8.3f} epochs/s "
          f"(+{backbone_epoch:.2f} s/epoch of backbone passes)")
    print(f"speed-up from the cache: {(cached_epoch + backbone_epoch) / cached_epoch:.2f}x")


if __name__ == "__main__":
    main()
