"""The paired bootstrap's cost per draw against recomputing the metrics of the drawn images (the naive bootstrap).

Run: .venv/bin/python benchmarks/bootstrap_speed.py [--n 115] [--px 256] [--draws 20]
One MVTec-sized category (benchmarks/metrics.py's maps). A draw of ``Ranking.metrics`` (weighted running sums
over the pixels sorted once) against ``pixel_metrics`` on the drawn images repeated, for the same draws; both
give the same values (checked here). Prints seconds per draw of each and their ratio, and the time of one
``paired_bootstrap`` of 1000 draws of two methods, as ``report --significance`` runs it per category.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import one_category  # noqa: E402 - benchmarks/metrics.py: smooth maps, blob anomalies

from adbench.metrics import pixel_metrics  # noqa: E402
from adbench.metrics.bootstrap import DRAWS, Ranking, draws, paired_bootstrap  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=115)
    ap.add_argument("--px", type=int, default=256)
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args()
    maps, masks = one_category(args.n, args.px)
    other = (maps + np.random.default_rng(1).normal(0, 0.5, maps.shape)).astype(np.float32)
    start = time.perf_counter()
    ranking = Ranking(maps, masks)
    prepared = time.perf_counter() - start
    w = draws(ranking.anomalous, args.draws, seed=0)
    start = time.perf_counter()
    fast = [ranking.metrics(row) for row in w]
    per_draw = (time.perf_counter() - start) / args.draws
    naive_draws = min(3, args.draws)
    start = time.perf_counter()
    naive = [pixel_metrics(np.repeat(maps, row, axis=0), np.repeat(masks, row, axis=0)) for row in w[:naive_draws]]
    per_naive = (time.perf_counter() - start) / naive_draws
    worst = max(abs(f[k] - r[k]) for f, r in zip(fast, naive, strict=False) for k in r)
    print(f"{args.n} maps of {args.px} px ({maps.size / 1e6:.1f}M pixels); sorting once: {prepared:.2f} s")
    print(f"per draw: weighted sums {per_draw * 1000:.0f} ms, repeated images {per_naive * 1000:.0f} ms, "
          f"ratio {per_draw / per_naive:.2f}; largest difference {worst:.1e}")
    start = time.perf_counter()
    paired_bootstrap(ranking, Ranking(other, masks))
    print(f"paired_bootstrap of two methods, {DRAWS} draws: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
