"""--executor ray on this machine: Ray's overhead per work unit, and the speed-up from 1 to 2 parallel tasks.

1. Overhead: a no-op Ray task per unit (submitted, waited for with ray.wait, its result fetched), in ms,
   against the wall time of one unit of the tiny grid below run locally.
2. Speed-up: the same grid (setting single, two seeds: six units of 2 cells, one per category and seed)
   with --executor ray on a local Ray instance of 1 CPU, then of 2 CPUs, one thread per task, features
   cached beforehand so that both runs train and score only.

Run: .venv/bin/python benchmarks/ray_scaling.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray
import torch

from adbench.engine.executors import RayExecutor
from adbench.engine.grid import GridRunner, GridSpec

BASE = {"data": {"dataset": "synthetic", "setting": "single", "args": {"n_train": 24, "n_good": 6, "n_per_defect": 2,
                                                                        "size": 128}},
        "backbone": {"name": "efficientnet_lite0", "image_size": 128}, "noise_net": {"name": "mlp"},
        "train": {"epochs": 20, "batch_size": 8, "warmup_epochs": 2},
        "scoring": {"scorers": [{"name": "osd_irf_mean"}, {"name": "invad", "steps": 3}], "fps_images": 4}}


def noop(x: int) -> int:
    return x


def overhead_ms(tasks: int) -> float:
    """Wall ms per no-op task submitted and collected one by one with ray.wait, after a warm-up."""
    task = ray.remote(num_cpus=1)(noop)
    ray.get([task.remote(i) for i in range(8)])  # workers started
    start = time.perf_counter()
    pending = [task.remote(i) for i in range(tasks)]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)
    return 1000 * (time.perf_counter() - start) / tasks


def grid_seconds(results: Path, cache: Path, executor: RayExecutor | None) -> tuple[float, int]:
    runner = GridRunner(GridSpec("scaling", base=BASE, axes={"seed": [0, 1]}), results, cache, executor=executor)
    cells = runner.cells()
    start = time.perf_counter()
    runner.run(cells)
    return time.perf_counter() - start, len(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local, cells = grid_seconds(tmp / "local", tmp / "cache", None)  # also fills the feature cache
        units = cells // len(BASE["scoring"]["scorers"])
        print(f"local, one thread: {cells} cells in {units} units, {local:.1f} s ({local / units:.1f} s per unit, "
              "features extracted in this run)")
        seconds = {}
        for cpus in (1, 2):
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            if cpus == 1:
                print(f"Ray overhead per no-op task: {overhead_ms(args.tasks):.2f} ms ({args.tasks} tasks)")
            seconds[cpus], _ = grid_seconds(tmp / f"ray{cpus}", tmp / "cache", RayExecutor(cpus_per_task=1))
            ray.shutdown()
            print(f"--executor ray, {cpus} CPU(s), 1 thread per task: {seconds[cpus]:.1f} s")
        print(f"speed-up from 1 to 2 parallel tasks: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
