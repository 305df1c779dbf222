"""--logger mlflow / tensorboard: every finished cell is logged with its config, metrics and figure; the
numbers a tracker holds are the result rows' (read back from the trackers' own local stores)."""

import json
import sys
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from adbench.cli import app
from adbench.errors import AdbenchError
from adbench.metrics import metric_keys
from adbench.tracking import Tracker, parent_params
from tests.test_end_to_end import write_config
from tests.test_study import study_file

pytest.importorskip("mlflow", reason="mlflow-skinny (the dev or mlflow extra) is not installed")
pytest.importorskip("tensorboard", reason="tensorboard (the dev or tensorboard extra) is not installed")

LOGGED = (*metric_keys(), "mad", "fps", "scorer_fps", "train_seconds", "score_seconds", "peak_memory_mb")


def tensorboard_runs(folder):
    """{run folder name: (scalars {tag: value}, image tags, text tags)} of ``folder/tensorboard``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {}
    for run in sorted((folder / "tensorboard").iterdir()):
        events = EventAccumulator(str(run))
        events.Reload()
        tags = events.Tags()
        runs[run.name] = ({t: events.Scalars(t)[-1].value for t in tags["scalars"]}, tags["images"], tags["tensors"])
    return runs


def test_a_run_logs_every_cell_to_mlflow_and_tensorboard(tiny_synthetic, tmp_path):
    from mlflow import MlflowClient

    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                "train.epochs": 2, "runtime.name": "tracked"})
    results = tmp_path / "res"
    result = CliRunner().invoke(app, ["run", str(config), "--results-dir", str(results), "--logger", "mlflow",
                                      "--logger", "tensorboard", "-s", "osd_irf_mean", "-s", "invad:steps=2"])
    assert result.exit_code == 0, result.output
    (run_dir,) = results.glob("tracked-*")  # beside it: mlflow.db and mlartifacts
    rows = pd.read_parquet(run_dir / "metrics.parquet").set_index("cell_key")
    assert len(rows) == 2

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.adbench_role = 'parent'")
    assert parent.info.run_name == "tracked" and parent.info.status == "FINISHED"
    shared = parent.data.params  # what every cell shares, and what varies between them
    assert (shared["cells"], shared["backbone.name"], shared["train.epochs"], shared["categories"]) == (
        "2", "efficientnet_lite0", "2", "washer")
    assert "scoring.scorers" not in shared and "osd_irf_mean" in shared["varies.scoring.scorers"] \
        and "invad" in shared["varies.scoring.scorers"]
    runs = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["cell_key"] for r in runs) == sorted(rows.index)
    (log,) = set(rows["train_log"])
    losses = pd.read_csv(run_dir / log)["loss"].tolist()
    for run in runs:
        row = rows.loc[run.data.tags["cell_key"]]
        assert run.info.run_name == f"washer {row['scorer_label']}" and run.info.status == "FINISHED"
        assert run.data.metrics == pytest.approx({**{k: row[k] for k in LOGGED}, "train_loss": losses[-1]})
        curve = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in curve] == list(range(len(losses)))  # the whole curve
        assert [m.value for m in curve] == pytest.approx(losses)
        params = run.data.params
        assert params["backbone.name"] == "efficientnet_lite0" and params["train.epochs"] == "2"
        assert params["backbone.pretrained"] == "true" and "backbone.weights" not in params  # unset: not 'None'
        assert params["scorer.name"] == row["scorer"] and (params.get("scorer.t") or "-") == (
            "-" if pd.isna(row.get("scorer.t")) else f"{row['scorer.t']:g}")  # each scorer argument on its own
        assert run.data.tags["results_folder"] == str(run_dir.resolve()) and run.data.tags["split"] == "test"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
            a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert {"config.json", "figures/anomaly_maps.png"} <= artifacts
        config = json.loads((results / "mlartifacts").joinpath(run.info.run_id, "artifacts", "config.json").read_text())
        assert config == json.loads(row["config"])

    logged = tensorboard_runs(run_dir)
    assert len(logged) == 2
    for name, (scalars, images, texts) in logged.items():
        row = rows.loc[name.rsplit("-", 1)[1]]
        assert scalars == pytest.approx({**{k: row[k] for k in LOGGED}, "train_loss": losses[-1]},
                                        rel=1e-6)  # stored as float32
        assert images == ["anomaly maps"] and "config/text_summary" in texts


def test_a_study_logs_each_trial_cell_to_tensorboard(tiny_synthetic, tmp_path):
    spec = study_file(tmp_path / "s.yaml", tiny_synthetic, n_trials=1)
    result = CliRunner().invoke(app, ["study", str(spec), "--results-dir", str(tmp_path), "--logger", "tensorboard"])
    assert result.exit_code == 0, result.output
    trials = [json.loads(line) for line in (tmp_path / "study-tiny" / "trials.jsonl").read_text().splitlines()]
    logged = tensorboard_runs(tmp_path / "study-tiny")
    assert len(trials) == 2 and len(logged) == 2  # one trial, two categories
    for record in trials:
        (name,) = [n for n in logged if n.endswith(f"-{record['cell_key']}")]
        assert name.startswith(f"trial_0_{record['category']}_osd_irf_mean")
        assert logged[name][0]["val_mad"] == pytest.approx(record["mad"], rel=1e-6)  # a validation metric
        assert "mad" not in logged[name][0]


def test_tracking_mistakes_are_one_line_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(AdbenchError, match="--logger wandb: unknown logger; choose from mlflow, tensorboard"):
        Tracker(["wandb"], "x", tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(AdbenchError, match=r"--logger mlflow needs the package mlflow-skinny: pip install "
                                           r"'adbench-uiad\[mlflow\]'"):
        Tracker(["mlflow"], "x", tmp_path)
    monkeypatch.undo()
    with pytest.raises(AdbenchError, match="cannot reach the MLflow server at http://127.0.0.1:9"):
        Tracker(["mlflow"], "x", tmp_path, "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["run", "--dataset", "synthetic", "--logger", "wandb",
                                      "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown logger" in result.output
    assert not (tmp_path / "r").exists()  # refused before a run folder was made


def test_a_failing_logger_warns_once_and_loses_nothing(tmp_path):
    class Unreachable:
        calls = 0

        def log(self, *args):
            Unreachable.calls += 1
            raise ConnectionError("server went away")

    tracker = Tracker()
    tracker.loggers = [Unreachable()]
    record = {"status": "ok", "config": "{}", "category": "washer", "scorer_label": "knn", "cell_key": "k"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.log(record, tmp_path)
        tracker.log(record, tmp_path)
        tracker.log({**record, "status": "error"}, tmp_path)  # not a result: not logged
    assert Unreachable.calls == 2
    assert [str(w.message) for w in caught] == ["Unreachable could not log cell k: server went away (the results "
                                                "folder has it; further failures of this logger are not repeated)"]


def test_a_parent_run_holds_what_its_cells_share_and_what_varies():
    configs = [{"a": 1, "b": {"c": True, "args": {"w": 8}}, "d": None}, {"a": 2, "b": {"c": True, "args": {"w": 8}}}]
    assert parent_params(iter(configs)) == {"cells": 2, "b.args": "w=8", "b.c": "true", "varies.a": "1, 2"}
    assert parent_params(configs, space={"a": {"low": 1, "high": 3}}) == {  # a: the base's value, not the study's
        "cells": 2, "b.args": "w=8", "b.c": "true", "space.a": '{"high": 3, "low": 1}'}
