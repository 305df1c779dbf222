"""Experiment tracking in the tools researchers already use: every cell of a run, grid or study (one
category and scorer: one result row) is logged as it finishes, with its config (each scorer argument a
parameter of its own), metrics (``val_`` on a study's validation split, tagged ``split``), cost, training
loss curve, provenance and anomaly-map figure, to MLflow (``--logger mlflow``: a run per cell, nested under
one run of the run, grid or study) or TensorBoard (``--logger tensorboard``). Both are
optional extras (``pip install 'adbench-uiad[mlflow]'`` or ``'adbench-uiad[tensorboard]'``). The results folder stays
the record: a cell is in ``cells.jsonl`` before it is logged, and a logger that fails warns without losing it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from adbench.atomic import make_dir
from adbench.errors import AdbenchError
from adbench.metrics import metric_keys

__all__ = ["COSTS", "EXTRAS", "LOGGERS", "MAX_LOSS_POINTS", "TAGS", "cell_name", "loss_curve", "MLflowLogger",
           "parent_params", "sampled_log", "split_of", "TensorBoardLogger", "tracked_metrics", "tracked_params",
           "Tracker"]

LOGGERS = ("mlflow", "tensorboard")
EXTRAS = {"mlflow": "mlflow-skinny", "tensorboard": "tensorboard"}  # the package each logger needs
TAGS = ("dataset", "category", "scorer_label", "backbone", "noise_net", "cell_key", "config_hash", "git_commit",
        "device", "precision", "trial")


COSTS = ("train_seconds", "score_seconds", "peak_memory_mb")
MAX_LOSS_POINTS = 1000  # of a training loss curve: longer ones are logged every k-th step


def split_of(record: dict[str, Any]) -> str:
    """``validation`` for a study trial's cell (scored on a split carved from training normals), else ``test``."""
    return "validation" if "trial" in record else "test"


def tracked_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a result row a tracker plots: the seven metrics and mAD (named ``val_<metric>`` on a
    study's validation split, so they never pass for test metrics), the FPS figures and the cell's cost
    (NaN and missing values left out: MLflow refuses NaN)."""
    prefix = "val_" if split_of(record) == "validation" else ""
    names = {**{k: prefix + k for k in (*metric_keys(), "mad")}, **{k: k for k in ("fps", "scorer_fps", *COSTS)}}
    return {name: float(record[k]) for k, name in names.items()
            if isinstance(record.get(k), (int, float)) and record[k] == record[k]}


def tracked_params(record: dict[str, Any], flat: dict[str, Any]) -> dict[str, str | int | float]:
    """The parameters of a cell: its flattened config (unset values left out, booleans as ``true``/``false``)
    and each scorer argument on its own (``scorer.t``: the main ablation axis, filterable and plottable)."""
    arguments = {k: v for k, v in record.items() if k.startswith("scorer.")}
    params = {**flat, "scorer.name": record.get("scorer"), **arguments}
    return {k: param_value(v) for k, v in params.items() if v is not None and v == v}


def param_value(value: Any) -> str | int | float:
    return str(value).lower() if isinstance(value, bool) else value if isinstance(value, (int, float, str)) \
        else str(value)


def parent_params(configs: Iterable[dict[str, Any]], space: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of a run, grid or study as a whole, from the configs of its cells: each flattened key
    with one value in all of them; each other key as ``varies.<key>`` with the values it takes (a grid's
    axes, the categories); a study's search ``space`` as ``space.<key>`` (its keys' values in ``configs``
    are only the base's); ``cells``: how many configs."""
    from adbench.reporting.methods import flat_config

    seen: dict[str, dict[str, None]] = {}
    n = 0
    for config in configs:
        n += 1
        flat = flat_config(config)
        for key in seen.keys() | flat.keys():
            value = flat.get(key)
            seen.setdefault(key, {})[str(param_value(value)) if value is not None else "none"] = None
    params: dict[str, Any] = {"cells": n}
    for key, values in sorted(seen.items()):
        if key in (space or {}) or values.keys() == {"none"}:
            continue
        params[key if len(values) == 1 else f"varies.{key}"] = ", ".join(values)
    return params | {f"space.{k}": json.dumps(v, sort_keys=True) for k, v in (space or {}).items()}


def loss_curve(record: dict[str, Any], folder: Path) -> list[tuple[int, float]]:
    """(step, loss) of the training log of the cell's noise net (``train_log``, relative to ``folder``), at most
    ``MAX_LOSS_POINTS`` of them, the last step included; empty without one."""
    path = Path(folder) / record["train_log"] if record.get("train_log") else None
    if path is None or not path.is_file():
        return []
    return list(sampled_log(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=16)
def sampled_log(path: str, mtime_ns: int) -> tuple[tuple[int, float], ...]:
    """``loss_curve``'s points of one log file, read once however many cells its noise net scores (``mtime_ns``:
    a log written again is read again)."""
    import csv

    with open(path, newline="") as fh:
        rows = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(fh)]
    every = max(1, -(-len(rows) // MAX_LOSS_POINTS))
    return tuple(r for i, r in enumerate(rows) if i % every == 0 or i == len(rows) - 1)


def cell_name(record: dict[str, Any]) -> str:
    trial = f"trial {record['trial']} " if "trial" in record else ""
    return f"{trial}{record['category']} {record['scorer_label']}"


class MLflowLogger:
    """One MLflow run per cell, in the experiment named after the run, grid or study folder."""

    def __init__(self, experiment: str, results_dir: Path, tracking_uri: str | None) -> None:
        import os

        import mlflow
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines (database migrations) would interleave with ours
            logging.getLogger(name).setLevel(logging.WARNING)
        local = tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI")
        if local:
            make_dir(results_dir)
        default = f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"
        uri = default if local else tracking_uri or mlflow.get_tracking_uri()
        self.client, self.uri = MlflowClient(tracking_uri=uri), uri
        if uri.startswith(("http://", "https://")):  # MLflow's own client retries for minutes before failing
            import requests

            try:
                requests.get(f"{uri.rstrip('/')}/health", timeout=10).raise_for_status()
            except requests.RequestException as exc:
                raise AdbenchError(f"--logger mlflow: cannot reach the MLflow server at {uri}: {type(exc).__name__} "
                                   "(is it running? check --tracking-uri)") from None
        try:
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                experiment, artifact_location=(results_dir / "mlartifacts").resolve().as_uri() if local else None)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the store: one line before any work
            raise AdbenchError(f"--logger mlflow: cannot open experiment {experiment!r} at {uri}: "
                               f"{str(exc).splitlines()[0]} (check --tracking-uri)") from None

        self.experiment, self.parents = experiment, {}

    def start(self, folder: Path, params: dict[str, Any]) -> None:
        """Give the parent run of ``folder`` the ``params`` it does not have yet (MLflow keeps a parameter's
        first value: a resumed grid's are its own)."""
        from mlflow.entities import Param

        run_id = self.parent(folder)
        held = self.client.get_run(run_id).data.params
        new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in held]
        for start in range(0, len(new), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=new[start:start + 100])

    def parent(self, folder: Path) -> str:
        """The run of the run, grid or study in ``folder``, that each cell's run nests under (found again when
        the same folder is resumed)."""
        where = str(folder.resolve())
        if where not in self.parents:
            found = [r for r in self.client.search_runs([self.experiment_id], "tags.adbench_role = 'parent'")
                     if r.data.tags.get("results_folder") == where]
            self.parents[where] = found[0].info.run_id if found else self.client.create_run(
                self.experiment_id, run_name=self.experiment,
                tags={"adbench_role": "parent", "results_folder": where}).info.run_id
        return self.parents[where]

    def log(self, record: dict[str, Any], config: dict[str, Any], flat: dict[str, Any], figure: Path | None,
            folder: Path) -> None:
        from mlflow.entities import Metric, Param

        tags = {**{k: str(record[k]) for k in TAGS if k in record}, "results_folder": str(folder.resolve()),
                "split": split_of(record), "mlflow.parentRunId": self.parent(folder)}
        run = self.client.create_run(self.experiment_id, run_name=cell_name(record), tags=tags)
        now = int(time.time() * 1000)
        params = [Param(k, str(v)[:6000]) for k, v in tracked_params(record, flat).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        metrics = [Metric(k, v, now, 0) for k, v in tracked_metrics(record).items()]
        metrics += [Metric("train_loss", loss, now, step) for step, loss in loss_curve(record, folder)]
        for start in range(0, len(metrics), 1000):  # at most 1000 metrics per batch
            self.client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
        self.client.log_dict(run.info.run_id, config, "config.json")
        if figure is not None:
            self.client.log_artifact(run.info.run_id, str(figure), "figures")
        self.client.set_terminated(run.info.run_id)
        self.client.set_terminated(tags["mlflow.parentRunId"])  # finished as of its latest cell


class TensorBoardLogger:
    """One TensorBoard run folder per cell under ``<results folder>/tensorboard``: hyperparameters and metrics
    (the HPARAMS tab), the config as text and the anomaly-map figure as an image."""

    def __init__(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer_class = SummaryWriter

    def log(self, record: dict[str, Any], config: dict[str, Any], flat: dict[str, Any], figure: Path | None,
            folder: Path) -> None:
        import numpy as np
        from PIL import Image

        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{cell_name(record)}-{record['cell_key']}")
        with self.writer_class(str(folder / "tensorboard" / name)) as writer:
            writer.add_hparams({**tracked_params(record, flat), "split": split_of(record)}, tracked_metrics(record),
                               run_name=".")
            for step, loss in loss_curve(record, folder):
                writer.add_scalar("train_loss", loss, step)
            writer.add_text("config", "```\n" + json.dumps(config, indent=1) + "\n```")
            if figure is not None:
                with Image.open(figure) as img:
                    writer.add_image("anomaly maps", np.asarray(img.convert("RGB")), dataformats="HWC")


class Tracker:
    """The loggers asked for (none: every call is a no-op), opened before any work so that a missing package
    or an unreachable tracking server fails at once; ``log`` sends each a finished cell's row. MLflow's
    experiment is ``experiment`` (the run, grid or study name): its runs are the cells, tagged with their
    results folder."""

    def __init__(self, loggers: list[str] | None = None, experiment: str = "", results_dir: Path = Path("results"),
                 tracking_uri: str | None = None) -> None:
        unknown = sorted(set(loggers or ()) - set(LOGGERS))
        if unknown:
            raise AdbenchError(f"--logger {unknown[0]}: unknown logger; choose from {', '.join(LOGGERS)}")
        self.loggers, self.failed = [], set()
        self.spec = (list(loggers) if loggers else None, tracking_uri)  # what opens it again (a Ray worker)
        for name in dict.fromkeys(loggers or ()):
            try:
                self.loggers.append(MLflowLogger(experiment, Path(results_dir), tracking_uri) if name == "mlflow"
                                    else TensorBoardLogger())
            except ImportError:
                raise AdbenchError(f"--logger {name} needs the package {EXTRAS[name]}: pip install "
                                   f"'adbench-uiad[{name}]'") from None

    def start(self, folder: Path, configs: Iterable[dict[str, Any]], space: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> None:
        """Before the cells of the run, grid or study in ``folder``: its parent run's parameters
        (``parent_params`` of its cells' ``configs`` and a study's ``space``, then ``extra``; MLflow only,
        TensorBoard has no parent run). ``configs`` is read only when MLflow logs."""
        mlflow = [logger for logger in self.loggers if isinstance(logger, MLflowLogger)]
        if mlflow:
            params = parent_params(configs, space) | (extra or {})
            for logger in mlflow:
                self.attempt(logger, "its parent run's parameters",
                             functools.partial(logger.start, Path(folder), params))

    def attempt(self, logger: Any, what: str, call: Callable[[], None]) -> None:
        """``call`` on ``logger``: a failure warns once per logger and never stops the run."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the cell is saved already; tracking must not stop the run
            kind = type(logger).__name__
            if kind not in self.failed:
                warnings.warn(f"{kind} could not log {what}: {exc} (the results folder has it; further failures of "
                              "this logger are not repeated)", stacklevel=3)
            self.failed.add(kind)

    def log(self, record: dict[str, Any], folder: Path) -> None:
        """Log one finished cell's row, written by the run, grid or study in ``folder`` (its maps file is
        relative to it); a row whose status is not ok is not a result: skipped."""
        if not self.loggers or record.get("status") != "ok":
            return
        from adbench.reporting.methods import flat_config
        from adbench.reporting.plots import plot_anomaly_maps

        config = json.loads(record["config"])
        flat = flat_config(config)
        with tempfile.TemporaryDirectory() as tmp:
            figure = None
            if record.get("maps_file") and (Path(folder) / record["maps_file"]).is_file():
                figure = plot_anomaly_maps(Path(folder) / record["maps_file"], Path(tmp) / "anomaly_maps.png",
                                           cell_name(record))
            for logger in self.loggers:
                self.attempt(logger, f"cell {record['cell_key']}",
                             functools.partial(logger.log, record, config, flat, figure, Path(folder)))
