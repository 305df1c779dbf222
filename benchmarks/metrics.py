"""Exact pixel metrics (adbench) vs adeval's approximate auroc_aupr_aupro (1000 strips), same maps.

Run: .venv/bin/python benchmarks/metrics.py [--n 115] [--size 256] [--repeats 3]
Prints the best-of-repeats time of each, the ratio, and the metric values side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from adbench.metrics import pixel_metrics


def one_category(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth score maps with blob-shaped anomalies on about a third of the images."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n // 3, n):
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.integers(0, size, 2).tolist() + [rng.integers(4, size // 8)]
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    noise = gaussian_filter(rng.standard_normal((n, size, size)), (0, 4, 4))
    maps = (noise * 4 + masks * rng.uniform(0.5, 2.0, (n, 1, 1))).astype(np.float32)
    return maps, masks


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=115)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    maps, masks = one_category(args.n, args.size)
    print(f"{args.n} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f}M pixels, "
          f"{masks.mean():.1%} anomalous)")
    t_ours, ours = best_time(lambda: pixel_metrics(maps, masks), args.repeats)
    print(f"adbench exact (AU-ROC, AP, F1-max, AU-PRO): {t_ours * 1000:8.1f} ms  {ours}")
    try:
        from adeval import auroc_aupr_aupro
    except ImportError:
        print("adeval not installed (pip install adeval): no reference time")
        return
    if not hasattr(np, "trapz"):  # adeval 1.1 calls np.trapz, removed in numpy 2.4
        np.trapz = np.trapezoid
    t_ref, ref = best_time(lambda: auroc_aupr_aupro(maps, masks.astype(np.uint8)), args.repeats)
    print(f"adeval approx (AU-ROC, AP, AU-PRO):          {t_ref * 1000:8.1f} ms  {ref}")
    print(f"ratio adbench/adeval time: {t_ours / t_ref:.2f} (< 1 means the exact metrics are faster)")


if __name__ == "__main__":
    main()
