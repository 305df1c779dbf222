"""Faults: disk full, concurrent study workers, determinism records."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from adbench.atomic import DiskFullError, atomic_write_text
from adbench.cli import app
from adbench.results import RecordLog
from tests.test_end_to_end import only_run_dir, write_config
from tests.test_study import study_file

ROOT = Path(__file__).resolve().parents[1]


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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
def test_killed_study_worker_is_replaced_and_the_study_completes(tiny_synthetic, tmp_path):
    import signal
    import time

    path = study_file(tmp_path / "s.yaml", tiny_synthetic, name="killed", n_trials=3, heartbeat=1)
    cmd = [sys.executable, "-m", "adbench", "study", str(path), "--results-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = RecordLog(tmp_path / "study-killed" / "trials.jsonl")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not log.read():
        time.sleep(0.05)  # the first category of trial 0 is done: the trial is mid-way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2.5)  # longer than the grace period of two heartbeats
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{tmp_path / 'study-killed' / 'study.db'}")
    states = [t.state for t in study.trials]
    finished = [s for s in states if s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) >= 3 and optuna.trial.TrialState.RUNNING not in states
