"""--executor ray on a local Ray instance with 2 CPUs: the same numbers as a local grid, worker deaths
retried, tasks that always die recorded as failed, and a killed driver resumed without duplicates."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adbench.engine.executors import RayExecutor
from adbench.engine.grid import GridRunner, load_grid
from adbench.metrics import metric_keys
from adbench.results import RecordLog
from tests.test_grid import tiny_grid

ray = pytest.importorskip("ray", reason="ray (the dev or ray extra) is not installed")

FAULTS = "faults.json"  # in a grid folder: {"once"|"always"|"oom_once"|"oom_always": [categories]}


def install_faults() -> None:
    """Ray's worker_process_setup_hook for these tests: a unit of a category named in the grid folder's
    faults.json kills its own worker with SIGKILL ("once": on the first try, "always": on every try), or
    its training runs out of GPU memory ("oom_once", "oom_always")."""
    import torch

    import adbench.engine.execute as execute
    import adbench.engine.executors as executors

    real, real_train = executors.run_unit, execute.train_category

    def due(run_dir, category, fault):
        """Whether ``fault`` (kill or oom) strikes ``category`` now; its marker file records the first try."""
        path = Path(run_dir) / FAULTS
        plan = json.loads(path.read_text()) if path.exists() else {}
        first_try = Path(run_dir) / f"{'killed' if fault == 'kill' else 'oom'}-{category}"
        prefix = "" if fault == "kill" else "oom_"
        if category in plan.get(f"{prefix}always", []) or (category in plan.get(f"{prefix}once", [])
                                                          and not first_try.exists()):
            first_try.touch()
            return True
        return False

    def train_category(ctx, category):
        if due(ctx.run_dir, category, "oom"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(ctx, category)

    def run_unit(unit, run_dir, *rest):
        if any(due(run_dir, category, "kill") for category in unit.categories):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(unit, run_dir, *rest)

    executors.run_unit = run_unit
    execute.train_category = train_category


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"worker_process_setup_hook":
                                                                "tests.test_ray.install_faults"})
    yield
    ray.shutdown()


def single_setting_grid(path, data_root):
    """Two work units (washer, weave: setting single), two cells each."""
    grid = yaml.safe_load(tiny_grid(path, data_root).read_text())
    grid["base"]["data"]["setting"] = "single"
    grid["axes"] = {"scorer": ["osd_irf_mean", "osd_irf_noisy"]}
    path.write_text(yaml.safe_dump(grid))
    return load_grid(path)


def test_a_ray_grid_gives_exactly_the_local_grids_numbers(local_ray, tiny_synthetic, tmp_path, pinned_threads):
    spec = single_setting_grid(tmp_path / "g.yaml", tiny_synthetic)
    local = GridRunner(spec, tmp_path / "local", tmp_path / "cache-local")
    on_ray = GridRunner(spec, tmp_path / "ray", tmp_path / "cache-ray", executor=RayExecutor())
    frames = [r.run(r.cells()).set_index("cell_key").sort_index() for r in (local, on_ray)]  # one thread each
    assert len(frames[0]) == 4 and list(frames[0].index) == list(frames[1].index)
    metrics = [*metric_keys(), "mad"]
    pd.testing.assert_frame_equal(frames[0][metrics], frames[1][metrics], check_exact=True)
    # the features task filled the cache before any unit trained: every image passed the backbone once
    features = [p.stat().st_mtime for p in (tmp_path / "cache-ray" / "features").glob("*.pt")]
    models = [p.stat().st_mtime for p in (on_ray.grid_dir / "models").glob("*.pt")]
    assert len(features) == 2 * 3 and len(models) == 2 and max(features) < min(models)


def test_a_unit_trained_on_two_processes_reserves_both_and_trains_the_same_net(local_ray, tiny_synthetic, tmp_path):
    """runtime.nproc_per_node 2 under Ray: the unit's task reserves twice a task's CPUs (GPUs on a GPU cluster) and
    trains its net on a gloo process group inside the task; the model is the one-process model within float
    rounding (1e-5, as tests/test_distributed.py measures), its rows record the two processes."""
    import torch

    from adbench.engine.execute import work_units

    single_setting_grid(tmp_path / "g.yaml", tiny_synthetic)
    sets = ["categories=[washer]", "scorer=osd_irf_mean"]
    local = GridRunner(load_grid(tmp_path / "g.yaml", sets), tmp_path / "local", tmp_path / "cache-local")
    on_ray = GridRunner(load_grid(tmp_path / "g.yaml", [*sets, "runtime.nproc_per_node=2"]), tmp_path / "ray",
                        tmp_path / "cache-ray", executor=RayExecutor())
    [unit] = work_units(on_ray.cells())
    options = RayExecutor.unit_resources({"num_cpus": 1, "num_gpus": 1, "max_retries": 2}, unit)
    assert (options["num_cpus"], options["num_gpus"]) == (2, 2)
    frames = [r.run(r.cells()) for r in (local, on_ray)]
    assert list(frames[0]["train_world_size"]) == [1] and list(frames[1]["train_world_size"]) == [2]
    assert list(frames[1]["train_batch_per_process"]) == [2]
    models = [torch.load(next((r.grid_dir / "models").glob("*.pt")), weights_only=True)["raw"] for r in (local, on_ray)]
    for k in models[0]:
        torch.testing.assert_close(models[1][k], models[0][k], rtol=0, atol=1e-5)


def run_with_faults(tmp_path, data_root, faults):
    """The two-unit grid on Ray (one retry) with ``faults`` planted: (runner, finished rows, failed records)."""
    spec = single_setting_grid(tmp_path / "g.yaml", data_root)
    runner = GridRunner(spec, tmp_path / "r", tmp_path / "cache", executor=RayExecutor(max_retries=1))
    runner.grid_dir.mkdir(parents=True)
    (runner.grid_dir / FAULTS).write_text(json.dumps(faults))
    cells = runner.cells()
    frame = runner.run(cells)
    return runner, frame, runner.failed(cells)


def test_a_killed_worker_is_retried_and_a_task_that_always_dies_fails_alone(local_ray, tiny_synthetic, tmp_path):
    runner, frame, failed = run_with_faults(tmp_path, tiny_synthetic, {"once": ["washer"], "always": ["weave"]})
    assert (runner.grid_dir / "killed-washer").exists()  # the washer unit's first worker was killed
    assert sorted(frame["category"]) == ["washer", "washer"]  # then retried: both its cells finished
    assert sorted(r["category"] for r in failed) == ["weave", "weave"]
    assert all("the Ray task failed 2 time(s)" in r["error"] for r in failed)
    records = [json.loads(line) for line in runner.log.path.read_text().splitlines()]
    assert len(records) == 4 and len({r["cell_key"] for r in records}) == 4  # every cell recorded once


def test_a_unit_out_of_gpu_memory_is_retried_then_recorded_as_failed(local_ray, tiny_synthetic, tmp_path):
    runner, frame, failed = run_with_faults(tmp_path, tiny_synthetic, {"oom_once": ["washer"], "oom_always": ["weave"]})
    assert (runner.grid_dir / "oom-washer").exists() and sorted(frame["category"]) == ["washer", "washer"]
    assert sorted(r["category"] for r in failed) == ["weave", "weave"]
    assert all(r["error"] == "RuntimeError: the Ray task failed 2 time(s): OutOfMemoryError: CUDA out of memory. "
               "Tried to allocate 2.00 GiB" for r in failed)


def gate_runtime_env(runtime_env: dict | None) -> dict:
    """RAY_RUNTIME_ENV_HOOK for the killed-driver test: the driver's workers run ``install_gate``."""
    return {**(runtime_env or {}), "worker_process_setup_hook": "tests.test_ray.install_gate"}


def install_gate() -> None:
    """The first unit to start runs at once; any other waits until a file ``release`` appears in the grid
    folder, so the driver can be killed after the first unit's cells and before any other's."""
    import adbench.engine.executors as executors

    real = executors.run_unit

    def run_unit(unit, run_dir, *rest):
        try:
            (Path(run_dir) / "first-unit").open("x").close()
        except FileExistsError:
            while not (Path(run_dir) / "release").exists():
                time.sleep(0.05)
        return real(unit, run_dir, *rest)

    executors.run_unit = run_unit


@pytest.mark.slow  # about 45 s: a driver in a subprocess, killed, then resumed
def test_a_killed_driver_resumes_without_recording_a_cell_twice(tiny_synthetic, tmp_path):
    spec = single_setting_grid(tmp_path / "g.yaml", tiny_synthetic)
    cmd = [sys.executable, "-m", "adbench", "grid", str(tmp_path / "g.yaml"), "--executor", "ray",
           "--cpus-per-task", "1", "--results-dir", str(tmp_path / "r")]
    grid_dir = tmp_path / "r" / f"grid-{spec.name}"
    log_path = grid_dir / "cells.jsonl"
    gated = {**os.environ, "RAY_RUNTIME_ENV_HOOK": "tests.test_ray.gate_runtime_env"}
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=gated)
    while driver.poll() is None and not (log_path.exists() and len(RecordLog(log_path).finished()) >= 2):
        time.sleep(0.1)  # until the first unit's two cells are recorded (each as it finishes); the other unit
        # waits for "release", so no third can come
    assert driver.poll() is None, "the driver ended before its first unit was recorded"
    assert (grid_dir / "first-unit").exists()  # the gate was installed in the driver's workers
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    (grid_dir / "release").touch()  # a worker the killed driver left behind may finish; nobody records it
    kept = RecordLog(log_path).finished()
    assert sorted(r["category"] for r in kept.values()) in (["washer"] * 2, ["weave"] * 2)  # one unit's two cells
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    keys = [r["cell_key"] for r in records if r["status"] == "ok"]
    assert len(keys) == 4 == len(set(keys))
    finished = RecordLog(log_path).finished()
    assert all(finished[k] == r for k, r in kept.items())  # the first driver's cells kept as they were


@pytest.mark.slow  # about 60 s: Optuna workers as Ray tasks
def test_study_workers_run_as_ray_tasks_on_one_storage(local_ray, tiny_synthetic, tmp_path):
    from typer.testing import CliRunner

    from adbench.cli import app
    from tests.test_study import study_file

    spec = study_file(tmp_path / "s.yaml", tiny_synthetic, n_trials=2)
    result = CliRunner().invoke(app, ["study", str(spec), "--results-dir", str(tmp_path), "--executor", "ray",
                                      "--workers", "2"])
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(tmp_path / "study-tiny" / "trials.csv")
    assert sorted(trials["state"]) == ["COMPLETE", "COMPLETE"]  # n_trials in all, not per worker
    records = [json.loads(line) for line in (tmp_path / "study-tiny" / "trials.jsonl").read_text().splitlines()]
    assert sorted((r["trial"], r["category"]) for r in records) == [(0, "washer"), (0, "weave"), (1, "washer"),
                                                                    (1, "weave")]
    assert len({r["cell_key"] for r in records}) == 4


def test_the_board_says_how_many_units_run_on_each_node():
    from adbench.engine.executors import Board

    board = Board()
    assert board.running() == "none started yet"
    for unit, node in ((0, "gpu-2"), (1, "gpu-1"), (2, "gpu-2"), (1, "gpu-1")):  # unit 1 retried on gpu-1
        board.started(unit, node)
    assert board.running() == "gpu-1: 1, gpu-2: 2"
    board.finished(0)
    board.finished(1)
    assert board.running() == "gpu-2: 1"
