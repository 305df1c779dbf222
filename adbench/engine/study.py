"""Optuna studies over any config keys, scored on a validation split, never on the test set.

A study file::

    name: t-and-lr
    base: {data: {dataset: synthetic}, backbone: {name: efficientnet_lite0}, scoring: {scorers: [{name: osd_irf_mean}]}}
    space:                    # any dotted config key
      scorer.t: {type: int, low: 50, high: 950, step: 50}
      train.lr: {type: float, low: 0.0001, high: 0.01, log: true}
      noise_net.name: {type: categorical, choices: [mlp, dit_base]}
    objective: mad            # any metric key, maximised
    fps_objective: false      # true: also maximise images/s (multi-objective, Pareto front)
    n_trials: 20
    validation: {fraction: 0.2}   # carved from training normals + synthetic defects; or {folder: PATH}
    quick: {train.epochs: 5}

Single-objective studies prune per category (median pruner on the running mean). Storage is
SQLite in the study folder by default; ``--storage`` takes any Optuna RDB URL or a journal file
(``*.log`` / ``*.jsonl``). Studies resume by name until ``n_trials`` trials have finished.
The final test evaluation of the best trial is a separate, explicit step (``--evaluate-best``).
"""

from __future__ import annotations

import dataclasses
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from adbench.config import RunConfig, checked_name, config_from, read_yaml, with_overrides
from adbench.data.validation import CarvedValidation, FolderValidation
from adbench.engine.execute import Cell, execute, work_units
from adbench.engine.run import Context, ContextCache, cell_config, console
from adbench.errors import AdbenchError, ConfigError, OutOfDeviceMemory
from adbench.metrics import reported
from adbench.results import RecordLog

STUDY_KEYS = {"name", "base", "space", "objective", "fps_objective", "n_trials", "validation", "quick",
              "description", "sampler_seed", "heartbeat"}


class TrialCellError(Exception):
    """A cell of a trial failed (its error message, as ``execute`` recorded it)."""


@dataclass
class StudySpec:
    name: str
    base: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    objective: str = "mad"
    fps_objective: bool = False
    n_trials: int = 20
    validation: dict[str, Any] = field(default_factory=lambda: {"fraction": 0.2})
    quick: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    sampler_seed: int = 0
    heartbeat: int = 60  # seconds; with RDB storage a trial silent for 2 heartbeats (a killed worker) is retried

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.fps_objective else ["maximize"]


def load_study(path: str | Path, quick: bool = False) -> StudySpec:
    path = Path(path)
    data = read_yaml(path, "Study")
    unknown = set(data) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; a study file has {sorted(STUDY_KEYS)}")
    spec = StudySpec(**{"name": path.stem, **data})
    spec.name = checked_name(spec.name, f"{path}: name")
    objectives = tuple(c.key for c in reported())  # the metric table's metrics and mAD
    if spec.objective not in objectives:
        raise ConfigError(f"{path}: objective must be one of {objectives}, got {spec.objective!r}")
    if not spec.space:
        raise ConfigError(f"{path}: 'space' needs at least one parameter")
    for key, dist in spec.space.items():
        if dist.get("type") not in ("int", "float", "categorical"):
            raise ConfigError(f"{path}: space.{key} needs type int, float or categorical")
    if quick:
        spec.base = with_overrides(spec.base, spec.quick)
        spec.name += "-quick"
    return spec


def suggest(trial: optuna.Trial, key: str, dist: dict[str, Any]) -> Any:
    kind = dist["type"]
    if kind == "categorical":
        return trial.suggest_categorical(key, dist["choices"])
    args = dict(low=dist["low"], high=dist["high"], log=dist.get("log", False))
    if "step" in dist:
        args["step"] = dist["step"]
    return trial.suggest_int(key, **args) if kind == "int" else trial.suggest_float(key, **args)


def config_for(spec: StudySpec, params: dict[str, Any]) -> RunConfig:
    cfg = config_from(spec.base, {"runtime.name": spec.name, **params}, f"study {spec.name}")
    if len(cfg.scoring.scorers) != 1:
        raise ConfigError(f"study {spec.name}: give exactly one scorer (in base or as a 'scorer' parameter)")
    return cfg


def open_storage(url: str, heartbeat: int = 60) -> Any:
    """An Optuna storage from an RDB URL or a journal file path (``.log``/``.jsonl``).

    RDB storages get a heartbeat: a trial whose worker died (no beat for two intervals) is marked
    failed and run again once, so a killed worker never leaves the study short of trials.
    """
    if url.endswith((".log", ".jsonl")) and "://" not in url:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    # workers starting together race to create the schema (sqlalchemy IntegrityError/OperationalError)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them, tested
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return retry(lambda: optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)),
            Exception)


def retry(fn: Any, exceptions: type[BaseException] | tuple, attempts: int = 5) -> Any:
    """``fn()``, retried after a short random pause when it raises ``exceptions``."""
    for attempt in range(attempts):
        try:
            return fn()
        except exceptions:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())


class StudyRunner:
    def __init__(self, spec: StudySpec, results_dir: Path, cache_dir: Path, storage: str | None = None) -> None:
        self.spec = spec
        self.study_dir = Path(results_dir) / f"study-{spec.name}"
        self.study_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cache_dir)
        self.storage = open_storage(storage or f"sqlite:///{self.study_dir / 'study.db'}", spec.heartbeat)
        self.log = RecordLog(self.study_dir / "trials.jsonl")
        self.contexts = ContextCache(self.study_dir, self.cache_dir)

    def study(self) -> optuna.Study:
        sampler = optuna.samplers.TPESampler(seed=self.spec.sampler_seed)
        pruner = optuna.pruners.NopPruner() if self.spec.fps_objective else optuna.pruners.MedianPruner(
            n_startup_trials=3)
        # two workers creating the same study at once: one wins, the other loads it on retry
        return retry(lambda: optuna.create_study(study_name=self.spec.name, storage=self.storage,
                                                 load_if_exists=True, directions=self.spec.directions,
                                                 sampler=sampler, pruner=pruner),
                     optuna.exceptions.DuplicatedStudyError)

    def get(self, cfg: RunConfig) -> Context:
        """The validation context of ``cfg`` (a ContextCache for ``execute``): the test set is carved from
        the training normals (or read from the validation folder); the real test set is never seen."""
        base = self.contexts.get(cfg)
        val = self.spec.validation
        dataset = (FolderValidation(base.dataset, val["folder"]) if val.get("folder")
                   else CarvedValidation(base.dataset, self.cache_dir, val.get("fraction", 0.2), cfg.seed))
        return dataclasses.replace(base, dataset=dataset)

    def objective(self, trial: optuna.Trial) -> float | tuple[float, float]:
        params = {key: suggest(trial, key, dist) for key, dist in self.spec.space.items()}
        ctx = self.get(config_for(self.spec, params))
        cfg = ctx.cfg  # training categories resolved
        cells = [Cell(cell_config(cfg, category, cfg.scoring.scorers[0]), category) for category in ctx.categories()]
        values, fps = [], []
        for step, record in enumerate(r for unit in work_units(cells) for r in execute(unit, self)):
            if record["status"] == "error":  # the trial fails with the cell's error (out of memory: marked so)
                raise TrialCellError(record["error"])
            self.log.append({**record, "trial": trial.number, "study": self.spec.name,
                             "cell_key": f"{trial.number}-{record['cell_key']}"})
            values.append(record[self.spec.objective])
            fps.append(record["fps"])
            if not self.spec.fps_objective:
                trial.report(float(np.mean(values)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        if np.isnan(np.mean(values)):
            raise AdbenchError(f"objective {self.spec.objective} is undefined (NaN) on the validation data")
        return (float(np.mean(values)), float(np.mean(fps))) if self.spec.fps_objective else float(np.mean(values))

    def guarded_objective(self, trial: optuna.Trial) -> float | tuple[float, float]:
        """``objective``; a trial that runs out of GPU memory fails alone, with the reason in its user
        attribute ``fail_reason``, and its memory is released before the next trial."""
        try:
            return self.objective(trial)
        except TrialCellError as exc:
            error = str(exc)
        if not error.startswith(f"{torch.OutOfMemoryError.__name__}: "):
            raise AdbenchError(f"trial {trial.number}: {error}")
        reason = f"out of GPU memory: {error.split(': ', 1)[1].splitlines()[0]}"
        trial.set_user_attr("fail_reason", reason)  # ``execute`` released the trial's GPU memory
        raise OutOfDeviceMemory(f"trial {trial.number} {reason}")

    def optimize(self) -> optuna.Study:
        study = self.study()
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = len(study.get_trials(deepcopy=False, states=states))
        console.print(f"study {self.spec.name}: {done}/{self.spec.n_trials} trials finished")
        if done < self.spec.n_trials:
            study.optimize(self.guarded_objective, n_trials=self.spec.n_trials - done, catch=(AdbenchError, ValueError),
                           callbacks=[optuna.study.MaxTrialsCallback(self.spec.n_trials, states=states)])
        return study

    def best_params(self, study: optuna.Study) -> dict[str, Any]:
        if self.spec.fps_objective:  # the Pareto-optimal trial with the best metric
            return max(study.best_trials, key=lambda t: t.values[0]).params
        return study.best_trial.params
