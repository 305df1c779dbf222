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
import json
import random
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from adbench.atomic import atomic_write
from adbench.config import QUICK, RunConfig, checked_name, config_from, parse_sets, read_yaml, with_overrides
from adbench.data.validation import CarvedValidation, FolderValidation, OwnValidation
from adbench.engine.build import cell_config
from adbench.engine.context import Context, ContextCache, console
from adbench.engine.execute import Cell, execute, work_units
from adbench.engine.preflight import preflight
from adbench.errors import AdbenchError, ConfigError, OutOfDeviceMemory
from adbench.hashing import stable_hash
from adbench.metrics import reported
from adbench.registry import DATASETS
from adbench.results import RecordLog
from adbench.tracking import Tracker

__all__ = ["DRIVERS", "FINISHED", "SPEC_ATTR", "STUDY_KEYS", "WORKER_ATTR", "check_distribution", "config_for",
           "corners", "load_study", "open_storage", "retry", "spec_hash", "StudyRunner", "StudySpec",
           "suggest", "trial_config", "TrialCellError"]

SPEC_ATTR = "adbench_spec_hash"
DRIVERS = {"MySQLdb": "mysqlclient", "psycopg2": "psycopg2-binary", "pymysql": "pymysql", "psycopg": "psycopg"}
WORKER_ATTR = "adbench_worker_"
STUDY_KEYS = {"name", "base", "space", "objective", "fps_objective", "n_trials", "validation", "quick",
              "quick_trials", "description", "sampler_seed", "heartbeat"}


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
    quick_trials: int = 3  # trials under --quick: a smoke run of about a minute, not the study
    description: str = ""
    sampler_seed: int = 0
    heartbeat: int = 60  # seconds; with RDB storage a trial silent for 2 heartbeats (a killed worker) is retried

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.fps_objective else ["maximize"]


def load_study(path: str | Path, quick: bool = False, sets: list[str] | None = None) -> StudySpec:
    """Read a study file; ``quick`` applies its quick overrides and runs ``quick_trials`` trials at most,
    ``sets`` (``key=value``) override its base."""
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
        check_distribution(dist, f"{path}: space.{key}")
    if quick:
        spec.base = with_overrides(spec.base, spec.quick or QUICK)  # no quick sizes of its own: --quick's
        spec.name += "-quick"
        spec.n_trials = min(spec.n_trials, spec.quick_trials)
    spec.base = with_overrides(spec.base, parse_sets(sets))
    for params in corners(spec.space):  # every key and every end of its range, before trial 1
        preflight(config_for(spec, params, f"{path}: with space {params}"))
    return spec


def check_distribution(dist: Any, where: str) -> None:
    """Refuse a search-space entry Optuna could not sample, saying how to write it."""
    if isinstance(dist, list):
        raise ConfigError(f"{where} is a list: write {{type: categorical, choices: {dist}}}")
    kind = dist.get("type") if isinstance(dist, dict) else None
    if kind not in ("int", "float", "categorical"):
        raise ConfigError(f"{where} needs type int, float or categorical, e.g. {{type: int, low: 1, high: 9}}")
    if kind == "categorical":
        if not isinstance(dist.get("choices"), list) or not dist["choices"]:
            raise ConfigError(f"{where}: a categorical parameter needs a non-empty list 'choices'")
        return
    missing = [k for k in ("low", "high") if not isinstance(dist.get(k), (int, float))]
    if missing:
        raise ConfigError(f"{where}: an {kind} parameter needs numbers {' and '.join(missing)}, got {dist}")
    if dist["low"] > dist["high"]:
        raise ConfigError(f"{where}: low {dist['low']} is above high {dist['high']}")


def corners(space: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameter sets that give every key each end of its range (each choice), the others their first."""
    values = {k: d["choices"] if d["type"] == "categorical" else [d["low"], d["high"]] for k, d in space.items()}
    first = {k: v[0] for k, v in values.items()}
    return [first] + [{**first, k: v} for k, vs in values.items() for v in vs[1:]]


def spec_hash(spec: StudySpec) -> str:
    """What makes trials comparable: the base config, the space, the objective(s) and the validation."""
    return stable_hash({"base": spec.base, "space": spec.space, "objective": spec.objective,
                        "fps_objective": spec.fps_objective, "validation": spec.validation})


def suggest(trial: optuna.Trial, key: str, dist: dict[str, Any]) -> Any:
    kind = dist["type"]
    if kind == "categorical":
        return trial.suggest_categorical(key, dist["choices"])
    args = dict(low=dist["low"], high=dist["high"], log=dist.get("log", False))
    if "step" in dist:
        args["step"] = dist["step"]
    return trial.suggest_int(key, **args) if kind == "int" else trial.suggest_float(key, **args)


def config_for(spec: StudySpec, params: dict[str, Any], where: str | None = None) -> RunConfig:
    cfg = config_from(spec.base, {"runtime.name": spec.name, **params}, where or f"study {spec.name}")
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
        check_journal(Path(url))
        return JournalStorage(JournalFileBackend(url))
    import sqlalchemy.exc

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        # workers starting together race to create the schema (sqlalchemy IntegrityError/OperationalError)
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them, tested
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return retry(lambda: optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)),
                (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError))
    except ImportError as exc:  # Optuna's, from the driver's ModuleNotFoundError
        missing = next((e.name for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, ImportError) and e.name),
                       None)
        install = f"pip install {DRIVERS.get(missing, missing)}" if missing else "install its SQLAlchemy driver"
        raise AdbenchError(f"--storage {url}: its database driver is not installed (no module {missing!r}): "
                           f"{install}") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:  # unreachable, refused, malformed URL
        reason = str(exc).strip().splitlines()[0]
        raise AdbenchError(f"--storage {url} cannot be opened: {reason}") from None


def check_journal(path: Path) -> None:
    """Refuse, in one line, a journal file whose lines are not all Optuna's JSON records (Optuna would stop on
    it with a traceback): a foreign file, or one cut short by a full disk or a worker killed mid-write. A last
    line without its end is read again under Optuna's own journal lock: another worker may be writing it."""
    if not path.is_file():
        return
    bad = journal_fault(path)
    if bad and bad[1]:  # an unfinished last line: final only while no worker holds the lock
        from optuna.storages.journal import JournalFileSymlinkLock

        lock = JournalFileSymlinkLock(str(path))
        lock.acquire()
        try:
            bad = journal_fault(path)
        finally:
            lock.release()
    if bad:
        number, cut = bad
        raise AdbenchError(f"--storage {path}: line {number}{' (its last, cut short)' if cut else ''} is not an "
                           "Optuna journal record: not a study journal, or one cut short by a full disk or a killed "
                           "worker; give another file, or remove that line to keep the trials before it.")


def journal_fault(path: Path) -> tuple[int, bool] | None:
    """(the number of the first line of ``path`` that is no journal record, whether it is an unfinished last
    line), or None."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                record = json.loads(line)
            except ValueError:  # not JSON, not UTF-8
                record = None
            if not isinstance(record, dict) or "op_code" not in record:
                return number, not line.endswith(b"\n")
    return None


def trial_config(path: str | Path, trial: int, storage: str | None = None, sets: list[str] | None = None,
                 quick: bool = False, results_dir: str | Path = "results") -> tuple[RunConfig, dict[str, Any]]:
    """The config of ``trial`` of the study in ``path`` and its parameters, read from the study's storage (default:
    the SQLite file in its folder under ``results_dir``)."""
    spec = load_study(path, quick, sets)
    db = Path(results_dir) / f"study-{spec.name}" / "study.db"
    if storage is None and not db.is_file():
        raise AdbenchError(f"study {spec.name!r} has not run under {results_dir} (no study.db); pass --storage or "
                           "--results-dir")
    url = storage or f"sqlite:///{db}"
    try:
        found = optuna.load_study(study_name=spec.name, storage=open_storage(url))
    except KeyError:
        raise AdbenchError(f"no study named {spec.name!r} in {url}") from None
    trials = {t.number: t for t in found.get_trials(deepcopy=False)}
    if trial not in trials:
        raise AdbenchError(f"--trial {trial}: study {spec.name!r} has trials {min(trials, default=0)} to "
                           f"{max(trials, default=-1)}")
    return config_for(spec, trials[trial].params), trials[trial].params


def retry(fn: Any, exceptions: type[BaseException] | tuple, attempts: int = 5) -> Any:
    """``fn()``, retried after a short random pause when it raises ``exceptions``."""
    for attempt in range(attempts):
        try:
            return fn()
        except exceptions:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
COUNTED = (*FINISHED, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
SURPLUS_ATTR = "surplus"


class SurplusTrial(optuna.TrialPruned):
    """A trial started when other workers' trials already made the study's ``n_trials``: it is not run (Optuna
    records it as pruned, with the reason in its user attribute ``surplus``; nothing counts or lists it)."""


def is_surplus(trial: optuna.trial.FrozenTrial) -> bool:
    return SURPLUS_ATTR in trial.user_attrs


class StudyRunner:
    def __init__(self, spec: StudySpec, results_dir: Path, cache_dir: Path, storage: str | None = None,
                 tracker: Tracker | None = None) -> None:
        self.spec = spec
        self.tracker = tracker or Tracker()
        self.study_dir = Path(results_dir) / f"study-{spec.name}"
        self.cache_dir = Path(cache_dir)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # adbench prints each trial's cells itself
        self.storage_url = storage or f"sqlite:///{self.study_dir / 'study.db'}"
        if storage is None:
            self.study_dir.mkdir(parents=True, exist_ok=True)  # the default storage lives in it
        self.storage = open_storage(self.storage_url, spec.heartbeat)  # a bad --storage makes no study folder
        self.study_dir.mkdir(parents=True, exist_ok=True)
        self.worker = uuid.uuid4().hex
        self.log = RecordLog(self.study_dir / "trials.jsonl")
        self.contexts = ContextCache(self.study_dir, self.cache_dir)

    def study(self) -> optuna.Study:
        """The study of this spec in the storage (created on first use). A study of the same name made from
        another spec (base, space, objective or validation) is refused: its trials would not compare."""
        sampler = optuna.samplers.TPESampler(seed=self.spec.sampler_seed)
        pruner = optuna.pruners.NopPruner() if self.spec.fps_objective else optuna.pruners.MedianPruner(
            n_startup_trials=3)
        # two workers creating the same study at once: one wins, the other loads it on retry
        study = retry(lambda: optuna.create_study(study_name=self.spec.name, storage=self.storage,
                                                  load_if_exists=True, directions=self.spec.directions,
                                                  sampler=sampler, pruner=pruner),
                      optuna.exceptions.DuplicatedStudyError)
        expected, found = spec_hash(self.spec), study.user_attrs.get(SPEC_ATTR)
        if found is None:
            study.set_user_attr(SPEC_ATTR, expected)
        elif found != expected:
            raise AdbenchError(f"study {self.spec.name!r} in {self.storage_url} was made from another spec (its "
                               "base, space, objective or validation changed since), so its trials would not "
                               "compare with new ones: pass --new-name NAME for a new study, or --force to "
                               "delete this one and start again.")
        return study

    def delete(self) -> None:
        """Delete this spec's study from the storage (``--force``); its trial log is kept aside."""
        if self.spec.name in optuna.study.get_all_study_names(self.storage):
            optuna.delete_study(study_name=self.spec.name, storage=self.storage)
        if self.log.path.exists():
            self.log.path.rename(self.log.path.with_name(f"trials-deleted-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"))

    def worker_seed(self, study: optuna.Study) -> int:
        """The sampler seed of this worker: the spec's ``sampler_seed`` for the first live worker (a single
        worker is reproducible), one derived from it and the worker's rank for each further worker (so
        concurrent workers, on this machine or another sharing the storage, draw different parameters).
        Workers rank by registration in the study; a killed worker's registration stays."""
        study.set_user_attr(f"{WORKER_ATTR}{self.worker}", [time.time(), self.worker])
        live = sorted(v for k, v in study.user_attrs.items() if k.startswith(WORKER_ATTR) and v)
        rank = live.index([study.user_attrs[f"{WORKER_ATTR}{self.worker}"][0], self.worker])
        return self.spec.sampler_seed if rank == 0 else int(
            np.random.SeedSequence([self.spec.sampler_seed, rank]).generate_state(1)[0])

    def validation_source(self) -> str:
        """Where the trials' validation images come from (as ``get`` chooses), for the study's output."""
        val = self.spec.validation
        if val.get("folder"):
            return f"the folder {val['folder']}"
        dataset = config_for(self.spec, {}).data.dataset
        if DATASETS.can(dataset, "validation_split"):
            return f"{dataset}'s own labelled validation split (valid/), not the test set"
        return f"{val.get('fraction', 0.2):.0%} of the training normals, half given synthetic defects"

    def get(self, cfg: RunConfig) -> Context:
        """The validation context of ``cfg`` (a ContextCache for ``execute``): the test set is read from the
        validation folder, else the dataset's own validation split (BMAD's), else carved from the training
        normals; the real test set is never seen."""
        base = self.contexts.get(cfg)
        val = self.spec.validation
        dataset = (FolderValidation(base.dataset, val["folder"]) if val.get("folder")
                   else OwnValidation(base.dataset) if DATASETS.can(cfg.data.dataset, "validation_split")
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
            record = {**record, "trial": trial.number, "study": self.spec.name,
                      "cell_key": f"{trial.number}-{record['cell_key']}"}
            self.log.append(record)
            self.tracker.log(record, self.study_dir)
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
        attribute ``fail_reason``, and its memory is released before the next trial. A surplus trial is
        pruned before it runs (see ``SurplusTrial``)."""
        ahead = self.counted_before(trial)
        if ahead >= self.spec.n_trials:
            reason = (f"not run: the {ahead} trials numbered before it make the study's n_trials "
                      f"({self.spec.n_trials}); another worker started one at the same time")
            trial.set_user_attr(SURPLUS_ATTR, reason)
            console.print(f"study {self.spec.name}: trial {trial.number} {reason}")
            raise SurplusTrial(reason)
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
        """Run trials until ``n_trials`` have finished in the study, with the trials other workers are
        running counted in. With a heartbeat (RDB storage) this worker then waits for those: a trial whose
        worker died (silent for two heartbeats) is failed and run again here, so the study never ends short.
        Optuna's trial budget is checked after each trial, so two workers can both start one more: the later
        numbered of those is not run (``surplus``), and the study has exactly ``n_trials``."""
        study = self.study()
        study.sampler = optuna.samplers.TPESampler(seed=self.worker_seed(study))
        self.tracker.start(self.study_dir, [config_for(self.spec, {}).to_dict()], self.spec.space,
                           {"objective": self.spec.objective, "fps_objective": self.spec.fps_objective,
                            "n_trials": self.spec.n_trials, "validation": json.dumps(self.spec.validation)})
        console.print(f"study {self.spec.name}: {self.finished(study)}/{self.spec.n_trials} trials finished; "
                      f"validation images: {self.validation_source()}")
        try:
            self.run_trials(study)
            while self.spec.n_trials > self.finished(study) and self.storage_has_heartbeat():
                running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if not running:  # trials that failed with an error: the study ends short, as they say
                    break
                console.print(f"study {self.spec.name}: waiting for trial(s) {[t.number for t in running]} of other "
                              f"workers (a worker silent for {2 * self.spec.heartbeat} s has died: its trial runs "
                              "again here)")
                time.sleep(self.spec.heartbeat)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # and queue them again
                self.run_trials(study)
            retried = {t.number: t.system_attrs["failed_trial"] for t in study.get_trials(deepcopy=False)
                       if "failed_trial" in t.system_attrs}
            if retried:
                console.print(f"study {self.spec.name}: " + ", ".join(
                    f"trial {lost} lost its worker (no heartbeat) and ran again as trial {again}"
                    for again, lost in retried.items()))
        finally:
            study.set_user_attr(f"{WORKER_ATTR}{self.worker}", None)  # this worker has left
        return study

    def counted_before(self, trial: optuna.Trial) -> int:
        """How many trials numbered before ``trial`` count toward ``n_trials`` (finished, running or queued).
        Numbers are given in order by the storage, so every worker sees the same count for a trial."""
        before = trial.study.get_trials(deepcopy=False, states=COUNTED)
        return sum(t.number < trial.number and not is_surplus(t) for t in before)

    def finished(self, study: optuna.Study) -> int:
        """Trials finished (complete or pruned), surplus ones not counted."""
        return sum(not is_surplus(t) for t in study.get_trials(deepcopy=False, states=FINISHED))

    def storage_has_heartbeat(self) -> bool:
        rdb = isinstance(self.storage, optuna.storages.RDBStorage)
        return rdb and self.storage.get_heartbeat_interval() is not None

    def run_trials(self, study: optuna.Study) -> None:
        """Trials until the finished ones and those other workers run make ``n_trials``."""
        todo = self.spec.n_trials - self.finished(study)
        if todo > 0:
            running = (*FINISHED, optuna.trial.TrialState.RUNNING)
            study.optimize(self.guarded_objective, n_trials=todo, catch=(AdbenchError, ValueError),
                           callbacks=[optuna.study.MaxTrialsCallback(self.spec.n_trials, states=running)])

    def write_trials(self, study: optuna.Study) -> pd.DataFrame:
        """Every trial (number, state, value(s), each parameter, duration) as ``trials.csv`` in the study folder;
        surplus trials (never run) are left out."""
        values = ["value"] if not self.spec.fps_objective else ["value_0", "value_1"]
        frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration"))
        surplus = [t.number for t in study.get_trials(deepcopy=False) if is_surplus(t)]
        frame = frame[~frame["number"].isin(surplus)].reset_index(drop=True) if surplus else frame
        frame = frame.rename(columns={**{c: c.removeprefix("params_") for c in frame.columns},
                                      **dict(zip(values, [f"validation {self.spec.objective}", "images/s"],
                                                 strict=False))})
        frame["duration"] = frame["duration"].dt.total_seconds().round(1) if "duration" in frame else None
        atomic_write(self.study_dir / "trials.csv", lambda p: frame.to_csv(p, index=False))
        return frame

    def best_params(self, study: optuna.Study) -> dict[str, Any]:
        if self.spec.fps_objective:  # the Pareto-optimal trial with the best metric
            return max(study.best_trials, key=lambda t: t.values[0]).params
        return study.best_trial.params
