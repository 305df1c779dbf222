"""Peak memory and time of the pixel metric pass, in memory against streamed, as a category grows to Real-IAD's size.

Run: .venv/bin/python benchmarks/streaming_metrics.py [--images 500 1250 2500 5000] [--px 256] [--memory-mb 512]
Each measurement runs in a fresh process: the in-memory pass holds the category's maps and masks and computes
``pixel_metrics``; the streamed one (``Spill.pixel_metrics``, what the engine runs above
``runtime.metric_memory_mb``) gets the same maps made 50 images at a time, as the engine scores them, written to
disk arrays (``spill_array``). Memory is the process's anonymous resident set (RssAnon, sampled every 5 ms: the
disk arrays' pages are file-backed, the kernel's to drop) and its peak resident set (ru_maxrss, which counts the
disk arrays' pages while mapped). Real-IAD has 151,050 images of 30 objects, about 5,000 an object (1,000 samples x 5
views): the largest category here. Prints a table with the values of both passes side by side.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import one_category  # noqa: E402 - benchmarks/metrics.py: smooth maps, blob anomalies

BATCH = 50  # images made at a time: a seeded batch each, the same in both passes


def batch(i: int, px: int) -> tuple[np.ndarray, np.ndarray]:
    return one_category(BATCH, px, seed=i)


class AnonPeak:
    """The highest RssAnon of this process (MB), sampled every 5 ms in a thread while in the ``with`` block."""

    def __enter__(self) -> AnonPeak:
        self.peak, self.running = 0.0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            status = Path("/proc/self/status").read_text()
            kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:")))
            self.peak = max(self.peak, kb / 1024)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


def measure(mode: str, n: int, px: int, memory_mb: int) -> dict:
    start = time.perf_counter()
    with AnonPeak() as anon:
        values = (in_memory if mode == "in memory" else streamed)(n, px, memory_mb)
    return {"seconds": time.perf_counter() - start, "values": values, "anon_mb": anon.peak,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_memory(n: int, px: int, memory_mb: int) -> dict:
    from adbench.metrics import pixel_metrics

    maps, masks = (np.concatenate(parts) for parts in zip(*(batch(i, px) for i in range(n // BATCH)), strict=True))
    return pixel_metrics(maps, masks)


def streamed(n: int, px: int, memory_mb: int) -> dict:
    from adbench.metrics.streaming import Spill, spill_array

    with tempfile.TemporaryDirectory() as folder:
        spill = Spill(Path(folder), memory_mb)
        maps = spill_array(spill.directory, (n, px, px), np.float32)
        masks = spill_array(spill.directory, (n, px, px), bool)
        for i in range(n // BATCH):
            maps[i * BATCH : (i + 1) * BATCH], masks[i * BATCH : (i + 1) * BATCH] = batch(i, px)
        return spill.pixel_metrics(maps, masks, 0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, nargs="+", default=[500, 1250, 2500, 5000])
    ap.add_argument("--px", type=int, default=256)
    ap.add_argument("--memory-mb", type=int, default=512, help="the streamed pass's runtime.metric_memory_mb")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.px, args.memory_mb)))
        return
    print(f"maps of {args.px} px, made {BATCH} at a time; streamed with runtime.metric_memory_mb {args.memory_mb}")
    print("| images | pixels | in memory: anon MB | peak RSS MB | s | streamed: anon MB | peak RSS MB | s | "
          "AU-ROC, F1-max equal | AP, AU-PRO largest difference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.images:
        runs = {mode: json.loads(subprocess.run(
            [sys.executable, __file__, "--px", str(args.px), "--memory-mb", str(args.memory_mb), "--one", mode, str(n)],
            check=True, capture_output=True, text=True).stdout) for mode in ("in memory", "streamed")}
        a, b = runs["in memory"]["values"], runs["streamed"]["values"]
        equal = all(a[k] == b[k] for k in ("pixel_auroc", "pixel_f1max"))
        diff = max(abs(a[k] - b[k]) for k in ("pixel_ap", "pixel_aupro"))
        cells = " | ".join(f"{r['anon_mb']:.0f} | {r['peak_mb']:.0f} | {r['seconds']:.1f}" for r in runs.values())
        print(f"| {n} | {n * args.px**2 / 1e6:.0f}M | {cells} | {equal} | {diff:.1e} |", flush=True)
    print("values at the largest size:", json.dumps(b))


if __name__ == "__main__":
    main()
