"""Experiment tracking in the tools researchers already use: every cell of a run, grid or study (one
category and scorer: one result row) is logged as it finishes, with its config, metrics, provenance and
anomaly-map figure, to MLflow (``--logger mlflow``) or TensorBoard (``--logger tensorboard``). Both are
optional extras (``pip install 'adbench-uiad[mlflow]'`` or ``'adbench-uiad[tensorboard]'``). The results folder stays
the record: a cell is in ``cells.jsonl`` before it is logged, and a logger that fails warns without losing it.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from adbench.atomic import make_dir
from adbench.errors import AdbenchError
from adbench.metrics import metric_keys

LOGGERS = ("mlflow", "tensorboard")
EXTRAS = {"mlflow": "mlflow-skinny", "tensorboard": "tensorboard"}  # the package each logger needs
TAGS = ("dataset", "category", "scorer_label", "backbone", "noise_net", "cell_key", "config_hash", "git_commit",
        "device", "precision", "trial")


def tracked_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a result row a tracker plots: the seven metrics, mAD and the FPS figures (NaN and
    missing values left out: MLflow refuses NaN)."""
    keys = (*metric_keys(), "mad", "fps", "scorer_fps")
    return {k: float(record[k]) for k in keys if isinstance(record.get(k), (int, float)) and record[k] == record[k]}


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

    def log(self, record: dict[str, Any], config: dict[str, Any], flat: dict[str, Any], figure: Path | None,
            folder: Path) -> None:
        from mlflow.entities import Metric, Param

        tags = {**{k: str(record[k]) for k in TAGS if k in record}, "results_folder": str(folder.resolve())}
        run = self.client.create_run(self.experiment_id, run_name=cell_name(record), tags=tags)
        now = int(time.time() * 1000)
        params = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        metrics = [Metric(k, v, now, 0) for k, v in tracked_metrics(record).items()]
        self.client.log_batch(run.info.run_id, metrics=metrics)
        self.client.log_dict(run.info.run_id, config, "config.json")
        if figure is not None:
            self.client.log_artifact(run.info.run_id, str(figure), "figures")
        self.client.set_terminated(run.info.run_id)


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
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}
        with self.writer_class(str(folder / "tensorboard" / name)) as writer:
            writer.add_hparams(hparams, tracked_metrics(record), run_name=".")
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
        for name in dict.fromkeys(loggers or ()):
            try:
                self.loggers.append(MLflowLogger(experiment, Path(results_dir), tracking_uri) if name == "mlflow"
                                    else TensorBoardLogger())
            except ImportError:
                raise AdbenchError(f"--logger {name} needs the package {EXTRAS[name]}: pip install "
                                   f"'adbench-uiad[{name}]'") from None

    def log(self, record: dict[str, Any], folder: Path) -> None:
        """Log one finished cell's row, written by the run, grid or study in ``folder`` (its maps file is
        relative to it); a row whose status is not ok is not a result: skipped."""
        if not self.loggers or record.get("status") != "ok":
            return
        from adbench.report.plots import plot_anomaly_maps
        from adbench.report.tables import flat_config

        config = json.loads(record["config"])
        flat = flat_config(config)
        with tempfile.TemporaryDirectory() as tmp:
            figure = None
            if record.get("maps_file") and (Path(folder) / record["maps_file"]).is_file():
                figure = plot_anomaly_maps(Path(folder) / record["maps_file"], Path(tmp) / "anomaly_maps.png",
                                           cell_name(record))
            for logger in self.loggers:
                try:
                    logger.log(record, config, flat, figure, Path(folder))
                except Exception as exc:  # noqa: BLE001 - the cell is saved already; tracking must not stop the run
                    kind = type(logger).__name__
                    if kind not in self.failed:
                        warnings.warn(f"{kind} could not log cell {record['cell_key']}: {exc} (the results folder "
                                      "has it; further failures of this logger are not repeated)", stacklevel=2)
                    self.failed.add(kind)
