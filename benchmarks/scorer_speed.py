"""OSD-IRF vs InvAD vs reconstruction throughput on one model, against the ideal ratios.

The ideal time of a scorer is backbone pass + NFE x noise-net pass + post-processing, each
measured here alone; the measured ratio of throughputs should reach >= 0.95 of the ideal one.

Run: .venv/bin/python benchmarks/scorer_speed.py [--backbone efficientnet_lite0] [--noise-net mlp]
     [--batch-size 64] [--iters 10] [--device auto]
"""

from __future__ import annotations

import argparse

import torch

from adbench.config import RunConfig
from adbench.device import autocast, device_name, images_for, prepare_backbone, resolve_device
from adbench.engine.fps import measure_fps, time_per_call
from adbench.engine.run import build_noise_net
from adbench.registry import BACKBONES
from adbench.scorers.scoring import max_score_on_device, pixel_maps_on_device

SCORERS = [{"name": "osd_irf_mean", "t": 500}, {"name": "invad", "steps": 3},
           {"name": "reconstruction", "ratio": 0.4, "steps": 10}]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--noise-net", default="mlp")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    cfg = RunConfig(backbone=args.backbone, noise_net=args.noise_net, scorers=SCORERS, device=args.device)
    device = resolve_device(args.device)
    records = measure_fps(cfg, args.batch_size, args.warmup, args.iters)

    # the parts alone, same sizes and precision
    backbone = prepare_backbone(BACKBONES.create(cfg.backbone, pretrained=False, image_size=cfg.image_size), device)
    model = build_noise_net(cfg, backbone.out_channels).to(device).eval()
    images = images_for(backbone, torch.randn(args.batch_size, 3, cfg.image_size, cfg.image_size), device)
    g = backbone.grid(cfg.image_size)
    feats = torch.randn(args.batch_size, backbone.out_channels, g, g, device=device)
    t = torch.full((args.batch_size,), 500, device=device)
    with autocast(device):
        t_backbone = time_per_call(lambda: backbone(images), device, args.warmup, args.iters)
        t_net = time_per_call(lambda: model(feats, t), device, args.warmup, args.iters)
        fmap = feats.pow(2).sum(1).sqrt()
        t_post = time_per_call(lambda: max_score_on_device(pixel_maps_on_device(fmap, cfg.image_size, 0), 1),
                               device, args.warmup, args.iters)
    print(f"device {device_name(device)}, batch {args.batch_size}, {cfg.backbone} + {cfg.noise_net}")
    print(f"one pass, ms per batch: backbone {1000 * t_backbone:.1f}, noise net {1000 * t_net:.1f}, "
          f"post-processing {1000 * t_post:.1f}")
    ideal = {r.scorer: args.batch_size / (t_backbone + r.nfe * t_net + t_post) for r in records}
    print(f"{'scorer':38s} {'NFE':>3s} {'measured img/s':>15s} {'ideal img/s':>12s} {'measured/ideal':>15s}")
    for r in records:
        print(f"{r.scorer:38s} {r.nfe:3d} {r.pipeline_images_per_s:15.1f} {ideal[r.scorer]:12.1f} "
              f"{r.pipeline_images_per_s / ideal[r.scorer]:15.3f}")
    osd, invad = records[0], records[1]
    measured = osd.pipeline_images_per_s / invad.pipeline_images_per_s
    ideal_ratio = ideal[osd.scorer] / ideal[invad.scorer]
    print(f"OSD-IRF / InvAD throughput: measured {measured:.3f}, ideal {ideal_ratio:.3f}, "
          f"measured/ideal {measured / ideal_ratio:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
