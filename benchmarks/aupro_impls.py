"""Exact AU-PRO against MVTec 3D-AD's sampled one (``scoring.aupro_impl: mvtec3d``) on continuous and quantised maps.

Run: .venv/bin/python benchmarks/aupro_impls.py [--n 115] [--px 256]
One MVTec-sized category (benchmarks/metrics.py's maps), as they are and quantised to 256 and 16 levels (min-max
scaled, rounded); prints both AU-PROs at FPR 0.3 and their difference in points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import one_category  # noqa: E402 - benchmarks/metrics.py: smooth maps, blob anomalies

from adbench.metrics import pixel_metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=115)
    ap.add_argument("--px", type=int, default=256)
    args = ap.parse_args()
    maps, masks = one_category(args.n, args.px)
    scaled = (maps - maps.min()) / (maps.max() - maps.min())
    print("| maps | exact AU-PRO | mvtec3d AU-PRO | exact - mvtec3d (points) |")
    print("|---|---|---|---|")
    for name, m in (("continuous", maps), ("256 levels", np.round(scaled * 255)), ("16 levels", np.round(scaled * 15))):
        m = m.astype(np.float32)
        exact, sampled = (pixel_metrics(m, masks, aupro_impl=impl)["pixel_aupro"] for impl in ("exact", "mvtec3d"))
        print(f"| {name} | {exact:.5f} | {sampled:.5f} | {100 * (exact - sampled):+.2f} |")


if __name__ == "__main__":
    main()
