"""OSD-IRF vs InvAD vs reconstruction throughput on one model, against the ideal ratios.

The ideal time of a scorer is backbone pass + NFE x noise-net pass + post-processing, each
part timed alone in the same interleaved rounds as the scorers (so machine drift hits all alike);
the measured OSD-IRF/InvAD throughput ratio should reach >= 0.95 of the ideal one.

Run: .venv/bin/python benchmarks/scorer_speed.py [--backbone efficientnet_lite0] [--noise-net mlp]
     [--batch-size 64] [--iters 10] [--device auto] [--default-allocator]
"""

from __future__ import annotations

import argparse

from adbench.allocator import host_allocator, tune_host_allocator
from adbench.config import RunConfig
from adbench.device import device_name, precision
from adbench.engine.fps import FpsBench

SCORERS = [{"name": "osd_irf_mean", "t": 500}, {"name": "invad", "steps": 3},
           {"name": "reconstruction", "ratio": 0.4, "steps": 10}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--noise-net", default="mlp")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--default-allocator", action="store_true", help="Skip tune_host_allocator (for comparison).")
    args = ap.parse_args()
    if not args.default_allocator:
        tune_host_allocator()
    cfg = RunConfig(backbone={"name": args.backbone}, noise_net={"name": args.noise_net}, scoring={"scorers": SCORERS},
                    runtime={"device": args.device})
    bench = FpsBench(cfg, args.batch_size)
    calls = {k: v for k, v in bench.calls().items() if k[1] == "pipeline"}
    seconds = bench.time({**calls, **bench.parts()}, args.warmup, args.iters)
    t_backbone, t_net, t_post = (seconds["part", p] for p in ("backbone", "noise net", "post-processing"))
    print(f"device {device_name(bench.device)}, {precision(bench.device)}, batch {args.batch_size}, "
          f"{cfg.backbone.name} + {cfg.noise_net.name}, host allocator: {host_allocator()}, {args.iters} rounds")
    print(f"one pass, ms per batch: backbone {1000 * t_backbone:.1f}, noise net {1000 * t_net:.1f}, "
          f"post-processing {1000 * t_post:.1f}")
    print(f"{'scorer':38s} {'NFE':>3s} {'measured img/s':>15s} {'ideal img/s':>12s} {'measured/ideal':>15s}")
    measured, ideal = {}, {}
    for label, scorer in bench.scorers.items():
        measured[label] = args.batch_size / seconds[label, "pipeline"]
        ideal[label] = args.batch_size / (t_backbone + scorer.nfe * t_net + t_post)
        print(f"{label:38s} {scorer.nfe:3d} {measured[label]:15.2f} {ideal[label]:12.2f} "
              f"{measured[label] / ideal[label]:15.3f}")
    osd, invad = list(bench.scorers)[:2]
    ratio, ideal_ratio = measured[osd] / measured[invad], ideal[osd] / ideal[invad]
    print(f"OSD-IRF / InvAD throughput: measured {ratio:.3f}, ideal {ideal_ratio:.3f}, "
          f"measured/ideal {ratio / ideal_ratio:.3f} (goal >= 0.95)")

if __name__ == "__main__":
    main()
