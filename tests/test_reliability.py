"""Faults: disk full, concurrent study workers, determinism records."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from adbench.atomic import DiskFullError, atomic_write_text
from adbench.cli import app
from adbench.errors import DataError
from adbench.results import RecordLog
from tests.test_end_to_end import only_run_dir, write_config
from tests.test_study import study_file

ROOT = Path(__file__).resolve().parents[1]


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    atomic_write_text(target, "old complete content\n")
    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(DiskFullError, match=r"Disk full while writing .*metrics.csv.*run the same command again"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old complete content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left behind


def test_disk_full_on_the_cell_log(tmp_path, monkeypatch):
    log = RecordLog(tmp_path / "cells.jsonl")
    log.append({"status": "ok", "cell_key": "a"})
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError):
        log.append({"status": "ok", "cell_key": "b"})
    monkeypatch.undo()
    assert "a" in log.finished()


def test_disk_full_during_a_run_is_one_clear_line(tiny_synthetic, tmp_path, monkeypatch):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}]})
    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_space)
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Disk full while writing" in result.output
    assert "Traceback" not in result.output
    assert (only_run_dir(tmp_path / "r") / "config.yaml").is_file()


def test_a_full_disk_under_torch_save_is_said_as_one_and_leaves_no_partial_file(tiny_synthetic, tmp_path, monkeypatch):
    """torch reports a full disk as "enforce fail at inline_container.cc ... unexpected pos": with no space left
    in the folder, the run says the disk is full, names the file (here the first torch file a run writes, its
    features in the cache) and keeps no partial file there or in the run folder."""
    import shutil

    import torch

    def torch_on_a_full_disk(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}]})
    monkeypatch.setattr(torch, "save", torch_on_a_full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r"), "--cache-dir",
                                      str(cache)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and f"Disk full while writing {cache / 'features'}" in output, output
    assert "inline_container" not in output and "Traceback" not in output
    written = [p for p in [*cache.rglob("*"), *(tmp_path / "r").rglob("*")] if p.is_file()]
    assert not [p for p in written if p.read_bytes().startswith(b"PK\x03\x04partial")], written


def test_results_record_determinism(tiny_synthetic, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}],
                                                   "deterministic": True})
    try:
        assert CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    finally:
        import torch

        torch.use_deterministic_algorithms(False)
    row = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet").iloc[0]
    assert bool(row["deterministic_algorithms"]) and not bool(row["cuda_deterministic"])


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_two_workers_on_one_study_lose_no_trials(tiny_synthetic, tmp_path, storage):
    path = study_file(tmp_path / "s.yaml", tiny_synthetic, name="shared", n_trials=6)
    url = str(tmp_path / "shared.log") if storage == "journal" else f"sqlite:///{tmp_path / 'shared.db'}"
    cmd = [sys.executable, "-m", "adbench", "study", str(path), "--storage", url, "--results-dir", str(tmp_path)]
    workers = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        _, stderr = w.communicate(timeout=300)
        assert w.returncode == 0, stderr[-2000:]
    if storage == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        url = JournalStorage(JournalFileBackend(url))
    trials = optuna.load_study(study_name="shared", storage=url).trials
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) >= 6 and len(finished) == len(trials)  # none lost, none left running or failed
    assert len({t.number for t in trials}) == len(trials)
    logged = {r["trial"] for r in RecordLog(tmp_path / "study-shared" / "trials.jsonl").read()}
    assert {t.number for t in finished if t.state == optuna.trial.TrialState.COMPLETE} <= logged


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "c.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    result = CliRunner().invoke(app, ["run", str(evil), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_nan_scores_are_named_not_turned_into_metrics(tiny_synthetic, tmp_path, monkeypatch):
    from adbench.noise_nets.mlp import MLPNoiseNet
    from adbench.registry import NOISE_NETS

    class Diverged(MLPNoiseNet):
        def forward(self, x, t):
            return super().forward(x, t) * float("nan")

    monkeypatch.setattr(NOISE_NETS, "_entries", dict(NOISE_NETS._entries))
    NOISE_NETS.register("diverged_test", width=16, depth=1)(Diverged)
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                   "noise_net.name": "diverged_test",
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}]})
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "washer / osd_irf_mean" in result.output and "NaN or Inf" in result.output


@pytest.mark.slow
def test_a_study_worker_killed_mid_trial_is_replaced_by_the_surviving_one(tiny_synthetic, tmp_path):
    """Two workers on SQLite (heartbeat 3 s); the first is killed mid-way through trial 0, the second started
    just after: it does trial 1, then, the study being one trial short with trial 0 left running, it waits
    until trial 0 is stale, runs it again and says so; it ends with both trials finished and none running."""
    import signal
    import time

    path = study_file(tmp_path / "s.yaml", tiny_synthetic, name="killed", n_trials=2, heartbeat=3)
    cmd = [sys.executable, "-m", "adbench", "study", str(path), "--results-dir", str(tmp_path)]
    log = RecordLog(tmp_path / "study-killed" / "trials.jsonl")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None and not log.read():
        time.sleep(0.05)  # the first category of trial 0 is done: the trial is mid-way
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first.send_signal(signal.SIGKILL)
    first.wait()
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output[-2000:]
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{tmp_path / 'study-killed' / 'study.db'}")
    states = [t.state for t in study.trials]
    finished = [s for s in states if s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 2 and optuna.trial.TrialState.RUNNING not in states, states
    assert "trial 0 lost its worker (no heartbeat) and ran again as trial" in " ".join(output.split())


TINY_RUN = ["--dataset", "mvtec", "--backbone", "efficientnet_lite0", "--noise-net", "mlp_tiny", "--epochs", "1"]


@pytest.mark.parametrize(("args", "message"), [
    (["-s", "osd_irf_mean:t=5000"], "scorer osd_irf_mean(t=5000): timestep t=5000 is outside [0, 999]"),
    (["-s", "osd_irf_mean:tt=5"], "scorer osd_irf_mean(tt=5): scorer 'osd_irf_mean' got an unexpected keyword "
                                  "argument 'tt'; it takes ['t']"),
    (["-s", "osd_irf_mean:t=abc"], "scoring.scorers: scorer 'osd_irf_mean' argument t must be an integer, got 'abc'"),
    (["-s", "invad:steps=abc"], "scoring.scorers: scorer 'invad' argument steps must be an integer, got 'abc'"),
    (["-s", "knn:coreset=yes"], "scoring.scorers: scorer 'knn' argument coreset must be a number, got True"),
    (["--set", "noise_net.args={depth: x}"], "noise_net.args: noise-net 'mlp_tiny' argument depth must be an integer, "
                                             "got 'x'"),
    (["--name", "x" * 300], "runtime.name: a run name may be 200 bytes long at most (a file name holds 255, and "
                            "adbench adds a time stamp and a key), got 300"),
    (["-s", "invad:steps=-1"], "scorer invad(steps=-1): invad steps must be >= 0 (0: no inversion), got -1"),
    (["-s", "knn:coreset=0"], "scorer knn(coreset=0): knn coreset must be a fraction in (0, 1], got 0"),
    (["--name", "../../x"], "runtime.name: a run name must be a single file or folder name (no '/', '.' or '..'), "
                            "got '../../x'"),
    (["--name", "/tmp/abs"], "runtime.name: a run name must be a single file or folder name"),
    (["-c", "../ok/hz"], "categories: a category must be a single file or folder name"),
    (["-c", "nope"], "categories: ['nope'] are not categories of mvtec (it has granite, washer, weave)"),
    (["--device", "tpu"], "runtime.device 'tpu' is not a device: use auto, cpu, cuda or cuda:N"),
    (["--batch-size", "0"], "train.batch_size: must be greater than or equal to 1, got 0"),
    (["--epochs", "0"], "train.epochs: must be greater than or equal to 1, got 0"),
])
def test_bad_specs_are_refused_before_any_work_in_one_line(args, message, tiny_synthetic, tmp_path):
    category = [] if "-c" in args else ["-c", "washer"]
    result = CliRunner().invoke(app, ["run", *TINY_RUN, "--data-root", str(tiny_synthetic), *category, *args,
                                      "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists() and not (tmp_path.parent / "x").exists()  # no run folder, anywhere


@pytest.mark.skipif(torch_cuda_available(), reason="this machine has CUDA")
def test_a_device_the_machine_lacks_is_named(tiny_synthetic, tmp_path):
    result = CliRunner().invoke(app, ["run", *TINY_RUN, "--data-root", str(tiny_synthetic), "-c", "washer",
                                      "--device", "cuda", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "runtime.device 'cuda': CUDA is not available here" in result.output


def test_an_on_disk_dataset_without_a_root_and_unknown_noise_net_arguments_are_named(tmp_path):
    result = CliRunner().invoke(app, ["run", "--dataset", "mvtec", "-c", "washer", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "dataset 'mvtec' is read from a folder: give data.root (--data-root)" in \
        " ".join(result.output.split())
    config = tmp_path / "c.yaml"
    config.write_text("noise_net: {name: mlp_tiny, args: {depthh: 3}}\ndata: {dataset: synthetic}\n")
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and ("noise_net.args: noise-net 'mlp_tiny' got an unexpected keyword argument "
                                      "'depthh'; it takes ['in_channels', 'width', 'depth'") in said


def test_grid_and_study_names_are_single_folder_names(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: x/../../..\naxes: {seed: [1]}\n")
    result = CliRunner().invoke(app, ["grid", str(grid), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "name: a name must be a single file or folder name" in result.output
    study = tmp_path / "s.yaml"
    study.write_text("name: ../evil\nspace: {seed: {type: int, low: 0, high: 2}}\n")
    result = CliRunner().invoke(app, ["study", str(study), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "name: a name must be a single file or folder name" in result.output
    assert not (tmp_path / "r").exists() and not (tmp_path.parent / "evil").exists()


def test_a_symlinked_category_inside_the_root_is_read(tiny_synthetic, tmp_path):
    from adbench.data.mvtec import MVTecLayout

    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(tiny_synthetic / "washer", target_is_directory=True)
    data = MVTecLayout(root)
    assert data.categories() == ["linked"]
    expected = [s.image_path.name for s in MVTecLayout(tiny_synthetic).train("washer")]
    assert [s.image_path.name for s in data.train("linked")] == expected
    with pytest.raises(DataError, match=r"Category '../washer' is not a path inside"):
        data.train("../washer")


def test_a_second_process_on_a_grid_folder_is_refused_naming_the_first(tiny_synthetic, tmp_path):
    from adbench.results import folder_lock
    from tests.test_grid import tiny_grid

    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic, axes={"scorer": ["knn"]})
    grid_dir = tmp_path / "r" / "grid-tiny"
    with folder_lock(grid_dir):  # this process plays the first grid
        second = CliRunner().invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert second.exit_code == 2 and f"is in use by another adbench process (PID {os.getpid()})" in \
        " ".join(second.output.split())
    assert not (grid_dir / "cells.jsonl").exists()
    (grid_dir / ".cells.jsonl.x1y2.adbench-tmp").write_text("left by a killed write")
    assert CliRunner().invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    assert not list(grid_dir.glob("*.adbench-tmp")) and len(RecordLog(grid_dir / "cells.jsonl").finished()) == 2


def test_evaluate_refuses_a_run_whose_config_was_edited(tiny_synthetic, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                "scoring.scorers": [{"name": "knn"}]})
    assert CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    run_dir = only_run_dir(tmp_path / "r")
    before = (run_dir / "metrics.parquet").read_bytes()
    saved = run_dir / "config.yaml"
    saved.write_text(saved.read_text().replace("seed: 42", "seed: 7"))
    result = CliRunner().invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 2 and "config.yaml was edited since the run started" in " ".join(result.output.split())
    assert (run_dir / "metrics.parquet").read_bytes() == before


def test_an_unwritable_results_folder_is_one_line(tiny_synthetic, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "r" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    result = CliRunner().invoke(app, ["run", *TINY_RUN, "--data-root", str(tiny_synthetic), "-c", "washer",
                                      "-s", "knn", "--results-dir", str(tmp_path / "r")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Read-only file system. Choose a writable folder" in said and \
        "Traceback" not in result.output


def test_a_failed_run_folder_write_leaves_no_folder(tmp_path, monkeypatch):
    from adbench import results
    from adbench.config import RunConfig

    monkeypatch.setattr(results, "atomic_write_text", no_space)
    with pytest.raises(OSError):
        results.new_run_dir(tmp_path, RunConfig())
    assert list(tmp_path.iterdir()) == []


def test_foreign_lines_in_the_cell_log_are_skipped_with_a_warning(tmp_path):
    log = RecordLog(tmp_path / "cells.jsonl")
    log.append({"status": "ok", "cell_key": "a"})
    with open(log.path, "a") as fh:
        fh.write('[1, 2]\n{"status": "ok"}\n"text"\n')
    log.append({"status": "ok", "cell_key": "b"})
    with pytest.warns(UserWarning) as seen:
        assert sorted(log.finished()) == ["a", "b"]
    assert [str(w.message).split("cells.jsonl:")[1] for w in seen] == [
        f"{n} is not a cell record (a JSON object with a cell_key); skipped" for n in (2, 3, 4)]


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_payloads_and_damaged_files_are_refused_by_name(tmp_path):

    import torch

    from adbench.atomic import safe_torch_load
    from adbench.backbones.weights import load_state_dict
    from adbench.errors import WeightsError

    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "payload": Payload()}, evil)
    with pytest.raises(WeightsError, match=r"evil.pt is not a safe weights file: it holds pickled objects") as info:
        load_state_dict(evil)
    assert "weights_only" not in str(info.value)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(1000.0)}, good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:300])
    with pytest.raises(WeightsError, match=r"cut.pt is not a readable model file \(damaged or truncated\?\)"):
        safe_torch_load(tmp_path / "cut.pt", "model file")


def test_a_model_file_of_another_net_is_named(tiny_synthetic, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                "scoring.scorers": [{"name": "osd_irf_mean"}], "train.epochs": 1})
    assert CliRunner().invoke(app, ["train", str(config), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    run_dir = only_run_dir(tmp_path / "r")
    (model,) = (run_dir / "models").glob("*.pt")
    import torch

    torch.save({"raw": {"other": torch.zeros(2)}, "ema": {}}, model)
    result = CliRunner().invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 2 and "does not fit the configured noise net mlp_tiny" in \
        " ".join(result.output.split()) and "delete it to train the model again" in " ".join(result.output.split())


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from adbench.data.base import Transform, load_image

    values = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = load_image(tmp_path / "deep.png", Transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    expected = np.round(values / 65535 * 255) / 255
    np.testing.assert_allclose(pixels.numpy(), np.broadcast_to(expected, (3, 32, 32)), atol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["sweep-t", "CONFIG", "--t", "50:950:0"], "--t '50:950:0' gives no timestep: a range start:stop:step needs"),
    (["sweep-t", "CONFIG", "--t", "900:100:50"], "--t '900:100:50' gives no timestep"),
    (["toy", "--t", "5000"], "--t 5000 is outside the toy's schedule [0, 999]"),
    (["fps", "--batch-size", "0"], "Invalid value for '--batch-size'"),  # the rest is click's wording
    (["run", "--dataset", "synthetic", "--no-pretrained", "--weights", "w.pt"],
     "backbone.weights is a pretrained weights file but backbone.pretrained is false (--no-pretrained)"),
])
def test_command_line_mistakes_are_one_line(args, message, tmp_path):
    config = write_config(tmp_path / "c.yaml")
    result = CliRunner().invoke(app, [str(config) if a == "CONFIG" else a for a in args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_quick_sizes_of_the_embedded_dataset_do_not_leak_into_another(tiny_synthetic):
    from adbench.engine.grid import load_grid

    spec = load_grid(ROOT / "registry" / "osd_irf_table1.yaml", quick=True,
                     sets=["data.dataset=mvtec", f"data.root={tiny_synthetic}"])
    assert "args" not in spec.base["data"] and spec.base["backbone"]["name"] == "efficientnet_lite0"
    assert load_grid(ROOT / "registry" / "osd_irf_table1.yaml", quick=True).base["data"]["args"]["n_train"] == 16


def test_stale_temporaries_of_a_shared_cache_go_after_a_day_fresh_ones_stay(tmp_path):
    from adbench.engine.context import SHARED_CACHE_GRACE, ContextCache

    features = tmp_path / "cache" / "features"
    features.mkdir(parents=True)
    old, fresh = features / ".a.pt.1.adbench-tmp", features / ".b.pt.2.adbench-tmp"
    for p in (old, fresh):
        p.write_bytes(b"partial")
    os.utime(old, (0, os.path.getmtime(old) - SHARED_CACHE_GRACE - 1))
    ContextCache(tmp_path / "run", tmp_path / "cache")
    assert not old.exists() and fresh.exists()  # another process may still be writing the fresh one


def test_results_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        from adbench import atomic

        mode = atomic._file_mode()
        atomic_write_text(tmp_path / "table.md", "x")
    finally:
        os.umask(umask)
    assert mode == 0o644 and (tmp_path / "table.md").stat().st_mode & 0o777 == atomic.FILE_MODE


def test_report_on_a_study_folder_points_to_evaluate_best(tmp_path):
    (tmp_path / "study-x").mkdir()
    (tmp_path / "study-x" / "trials.jsonl").write_text("")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "study-x")])
    assert result.exit_code == 2 and "is a study folder" in result.output and "--evaluate-best" in result.output


def test_the_run_cache_holds_the_generated_dataset_whatever_adbench_cache_says(tmp_path, monkeypatch):
    """--cache-dir (the run's cache) decides where the synthetic dataset is generated, not $ADBENCH_CACHE."""
    from adbench.config import RunConfig
    from adbench.engine.build import build_dataset

    monkeypatch.setenv("ADBENCH_CACHE", str(tmp_path / "env-cache"))
    sizes = {"size": 32, "n_train": 2, "n_good": 1, "n_per_defect": 1}
    dataset = build_dataset(RunConfig(data={"dataset": "synthetic", "args": sizes}), tmp_path / "mine")
    (folder,) = (tmp_path / "mine" / "datasets").iterdir()
    assert dataset.categories() and (folder / "dataset.json").is_file() and not (tmp_path / "env-cache").exists()


@pytest.mark.parametrize("name", [".lock.pid", "cells.jsonl", ".lock"])
def test_a_planted_link_in_a_results_folder_is_never_written_through(name, tmp_path):
    """A link in a run folder pointing outside it: the PID file replaces the link (an atomic rename), the cell
    log and the lock refuse it in one line naming it; the file outside keeps its bytes."""
    from adbench.atomic import LinkedFileError
    from adbench.results import folder_lock

    outside, run_dir = tmp_path / "precious.txt", tmp_path / "run"
    outside.write_text("keep me\n")
    run_dir.mkdir()
    (run_dir / name).symlink_to(outside)
    if name == ".lock.pid":
        with folder_lock(run_dir):
            assert not (run_dir / name).is_symlink() and (run_dir / name).read_text() == f"{os.getpid()}\n"
    else:
        with pytest.raises(LinkedFileError, match=rf"^{run_dir / name} is a symbolic link \(to {outside}\): adbench "
                                                  "never writes through a link"):
            if name == ".lock":
                with folder_lock(run_dir):
                    pass
            else:
                RecordLog(run_dir / name).append({"cell_key": "k", "status": "ok"})
    assert outside.read_text() == "keep me\n"


@pytest.mark.parametrize("name", ["models", "maps", "submission-0123456789abcdef"])
def test_a_planted_folder_link_in_a_results_folder_is_refused_before_anything_is_written(name, tmp_path):
    """The run's subfolders linked elsewhere would receive its models, maps or submission on --resume."""
    from adbench.atomic import LinkedFileError
    from adbench.results import folder_lock

    outside, run_dir = tmp_path / "elsewhere", tmp_path / "run"
    outside.mkdir()
    run_dir.mkdir()
    (run_dir / name).symlink_to(outside, target_is_directory=True)
    with pytest.raises(LinkedFileError, match=rf"^{run_dir / name} is a symbolic link \(to {outside}\)"), \
            folder_lock(run_dir):
        (run_dir / name / "written.pt").write_text("x")  # never reached
    assert not list(outside.iterdir())
    (run_dir / name).unlink()
    (run_dir / "shared.pt").symlink_to(outside / "m.pt")  # a linked file (a shared model) is fine: replaced, if
    with folder_lock(run_dir):                            # ever written, never written through
        pass


def test_a_lock_that_links_to_itself_is_one_line(tmp_path):
    from adbench.atomic import LinkedFileError
    from adbench.results import folder_lock

    (tmp_path / ".lock").symlink_to(tmp_path / ".lock")
    with pytest.raises(LinkedFileError, match=r"\.lock is a symbolic link"), folder_lock(tmp_path):
        pass


BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(  # 10^9 values once expanded
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
BOMB += "categories: *i\n"


@pytest.mark.parametrize(("content", "message"), [
    ("seed: 1\ntrain: {epochs: 2}\ndata: {dataset: synthetic}\ntrain: {epochs: 5}\n",
     "c.yaml: key 'train' is given twice, lines 2 and 4: keep one"),
    ("train:\n  epochs: 2\n  epochs: 3\n", "c.yaml: key 'epochs' is given twice, lines 2 and 3: keep one"),
    (BOMB, "c.yaml: its aliases (*name) expand to more than 100,000 values"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "c.yaml is not a text (UTF-8) file: byte 0 cannot be read"),
    (None, "Config file {path} is a folder; give the YAML file in it."),
])
def test_a_config_file_that_cannot_be_read_as_one_is_one_line(content, message, tmp_path):
    """A key given twice, a 1e9-value alias bomb of 350 bytes (refused at once, not expanded), a binary file and
    a folder: one line each, no traceback."""
    path = tmp_path / "c.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = CliRunner().invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "r")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and message.format(path=path) in output and "Traceback" not in output, output


def test_every_unknown_component_is_named_at_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: mvtecc}\nbackbone: {name: effnet}\nnoise_net: {name: ditt}\n"
                    "scoring: {scorers: [{name: osd_irfmean}, {name: invad, steps: x}]}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--results-dir", str(tmp_path / "r")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2
    for named in ("Unknown datasets 'mvtecc'", "Unknown backbones 'effnet'", "Unknown noise-nets 'ditt'",
                  "Unknown scorers 'osd_irfmean'", "scorer 'invad' argument steps must be an integer, got 'x'"):
        assert named in output, output


def test_help_shows_install_extras_with_their_brackets():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert "pip install 'adbench-uiad[ray]'" in " ".join(result.output.split())


@pytest.mark.parametrize("fault", ["missing", "wrong size"])
def test_a_bad_mask_is_refused_before_any_training(fault, tiny_synthetic, tmp_path):
    """A missing mask or one of another size than its image, in the category scored second: the run stops in
    one line naming it before anything is trained."""
    import shutil

    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    mask = sorted((root / "weave" / "ground_truth").rglob("*_mask.png"))[0]
    if fault == "missing":
        mask.unlink()
        message = f"has no mask: expected {mask}"
    else:
        Image.new("L", (7, 9)).save(mask)
        message = f"Mask {mask} is 7x9 but its image"
    config = write_config(tmp_path / "c.yaml", {"data.root": str(root), "categories": ["washer", "weave"],
                                                   "data.setting": "single", "train.epochs": 1,
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}]})
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and message in output and "trained" not in output, output
    assert not list((tmp_path / "r").rglob("*.pt"))


def test_a_changed_file_of_the_generated_dataset_is_named_and_generated_again(tmp_path, capsys):
    from adbench.data.synthetic import synthetic

    sizes = {"size": 32, "n_train": 2, "n_good": 1, "n_per_defect": 1}
    folder = synthetic(cache_dir=tmp_path, **sizes).root
    image = folder / "washer" / "train" / "good" / "001.png"
    original = image.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x40
    image.write_bytes(bytes(damaged))
    capsys.readouterr()
    synthetic(cache_dir=tmp_path, **sizes)
    assert f"warning: {image} is not the file adbench generated" in " ".join(capsys.readouterr().err.split())
    assert image.read_bytes() == original
    synthetic(cache_dir=tmp_path, **sizes)
    assert "warning" not in capsys.readouterr().err  # intact now


@pytest.mark.parametrize(("column", "value", "message"), [
    ("image_auroc", float("inf"), "column image_auroc holds inf (row 0); it must be a number in [0, 1] or NaN"),
    ("pixel_aupro", -300.0, "column pixel_aupro holds -300.0 (row 0); it must be a number in [0, 1]"),
    ("mad", 750.0, "column mad holds 750.0 (row 0); it must be a number in [0, 1]"),
    ("image_ap", "high", "column image_ap holds 'high' (row 0); it must be a number in [0, 1]"),
    ("fps", -1.0, "column fps holds -1.0 (row 0); it must be a number >= 0 or NaN"),
    ("category", None, "not adbench result rows: they lack category"),
    ("seed", None, "not adbench result rows: they lack seed"),
])
def test_impossible_values_in_a_results_file_are_refused_on_read_in_one_line(column, value, message, tmp_path):
    from tests.test_report import fake_rows

    frame = fake_rows()
    if value is None:
        frame = frame.drop(columns=[column])
    else:
        frame[column] = frame[column].astype(object)
        frame.loc[0, column] = value
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (frame.astype({column: str}) if isinstance(value, str) else frame).to_parquet(run_dir / "metrics.parquet")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "t")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and message in output and "Traceback" not in output, output
    assert not list(tmp_path.glob("t.*"))


def test_a_garbage_or_escaping_maps_file_in_a_results_file_is_one_line_not_a_traceback(tmp_path):
    from tests.test_plots import kept_maps_rows

    frame = kept_maps_rows(tmp_path).iloc[:3]  # the third one's maps readable: one figure
    run_dir = tmp_path / "run"
    (run_dir / "maps").mkdir(parents=True)
    (run_dir / "maps" / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    (run_dir / "maps" / "text.npz").write_text("hello")
    names = ["maps/garbage.npz", "maps/text.npz"] + [str(p) for p in frame["maps_file"][2:]]
    frame.assign(maps_file=names, run_folder=str(run_dir)).to_parquet(run_dir / "metrics.parquet")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--figures", "--out", str(tmp_path / "t")])
    output = " ".join(result.output.split())
    assert result.exit_code == 0 and "2 kept map file(s) missing or unreadable" in output, output
    frame.assign(maps_file="../../../../../etc/passwd").to_parquet(run_dir / "metrics.parquet")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--figures", "--out", str(tmp_path / "u")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "names maps_file '../../../../../etc/passwd', which leads outside its run " \
        "folder" in output and "Traceback" not in output, output


def test_a_resume_over_an_edited_cell_log_runs_the_edited_cell_again(tiny_synthetic, tmp_path):
    """A string or impossible metric in cells.jsonl: that cell is not finished (it runs again, with a warning),
    the others are kept, and metrics.parquet is written (it was an Arrow traceback, and no results file)."""
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                   "train.epochs": 1})
    first = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r"), "-s", "osd_irf_mean",
                                     "-s", "knn"])
    assert first.exit_code == 0, first.output
    run_dir = only_run_dir(tmp_path / "r")
    log = run_dir / "cells.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    kept = next(r for r in records if r["scorer"] == "knn")
    edited = next(r for r in records if r["scorer"] == "osd_irf_mean")
    log.write_text("".join(json.dumps(r) + "\n" for r in records if r is not edited)
                   + json.dumps({**edited, "image_auroc": "high"}) + "\n")
    with pytest.warns(UserWarning, match=rf"cell {edited['cell_key']} holds image_auroc 'high'; it must be a "
                                         r"number in \[0, 1\] or NaN: not counted as finished, it runs again"):
        again = CliRunner().invoke(app, ["run", "--resume", str(run_dir)])
    output = " ".join(again.output.split())
    assert again.exit_code == 0 and "Traceback" not in output, output
    rows = pd.read_parquet(run_dir / "metrics.parquet").set_index("scorer")
    assert rows.loc["osd_irf_mean", "image_auroc"] == pytest.approx(edited["image_auroc"], abs=1e-12)  # again
    assert rows.loc["knn", "image_auroc"] == kept["image_auroc"]


def test_figures_asked_of_rows_that_kept_no_maps_say_so(tmp_path):
    from tests.test_report import fake_rows

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fake_rows().to_parquet(run_dir / "metrics.parquet")  # no maps_file
    result = CliRunner().invoke(app, ["report", str(run_dir), "--figures", "--out", str(tmp_path / "t")])
    output = " ".join(result.output.split())
    assert result.exit_code == 0 and "--figures: no row kept anomaly maps (scoring.save_maps 0" in output, output
