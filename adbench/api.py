"""The library API: what ``adbench run``, ``train``, ``evaluate``, ``grid``, ``sweep-t``, ``study``, ``report``
and ``fps`` do, callable from Python (the CLI parses its options, calls these and prints).

    >>> import adbench
    >>> out = adbench.run({"categories": ["washer"], "train": {"epochs": 2}})  # the embedded synthetic data
    >>> out.results[["category", "scorer_label", "image_auroc", "mad"]]
    >>> adbench.load_results(out.folder)  # any run or grid folder, later

A configuration is a ``RunConfig``, a mapping of its sections (missing keys take their defaults) or a YAML
file's path. Every call writes the run folder the CLI writes (resumable: ``resume=`` that folder) and returns
an ``Outcome``; a failed cell does not raise (``Outcome.check()`` does, with the CLI's message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adbench.config import RunConfig
from adbench.errors import AdbenchError

if TYPE_CHECKING:
    import pandas as pd

    from adbench.engine.executors import LocalExecutor, RayExecutor
    from adbench.engine.grid import GridRunner, GridSpec
    from adbench.reporting.build import Report
    from adbench.tracking import Tracker

__all__ = ["DEFAULT_RESULTS", "FpsOutcome", "Outcome", "StudyOutcome", "as_config", "evaluate", "fps", "grid",
           "load_results", "report", "run", "study", "sweep_t", "train"]

DEFAULT_RESULTS = Path("results")


@dataclass(frozen=True)
class Outcome:
    """What a call left: its run or grid folder, the rows of the cells that finished, the error records of those
    that failed (none for a training-only call whose nets all trained)."""

    folder: Path
    results: pd.DataFrame
    failed: list[dict[str, Any]] = field(default_factory=list)
    n_cells: int = 0
    plan: dict[str, Any] = field(default_factory=dict)  # a grid's: cells, work units, trainings, ...
    cells: list[Any] = field(default_factory=list)  # a grid's cells (``engine.execute.Cell``), in order
    figures: list[Path] = field(default_factory=list)  # a timestep sweep's metric-vs-t figure

    def check(self) -> Outcome:
        """This outcome, or an ``AdbenchError`` naming the first failure when a cell failed."""
        if self.failed:
            raise AdbenchError(f"{len(self.failed)} of {self.n_cells} cell(s) failed, first: "
                               f"{self.failed[0]['error']} (errors in {self.folder / 'cells.jsonl'}; "
                               f"`adbench run --resume {self.folder}` retries them)")
        return self


def as_config(cfg: RunConfig | Mapping[str, Any] | str | Path) -> RunConfig:
    """A ``RunConfig`` from itself, a mapping of its sections, or a YAML file's path."""
    from adbench.config import config_from, load_config

    if isinstance(cfg, RunConfig):
        return cfg
    if isinstance(cfg, (str, Path)):
        return load_config(Path(cfg))
    return config_from(dict(cfg))


def check_component_names(cfg: RunConfig) -> None:
    """Refuse an unknown dataset, backbone, noise net or scorer (or one of their arguments) before torch loads."""
    from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS, check_names

    check_names([("data.args", DATASETS, cfg.data.dataset, cfg.data.args),
                 ("backbone", BACKBONES, cfg.backbone.name, {}),
                 ("noise_net.args", NOISE_NETS, cfg.noise_net.name, cfg.noise_net.args),
                 *(("scoring.scorers", SCORERS, s["name"], {k: v for k, v in s.items() if k != "name"})
                   for s in cfg.scoring.scorers)])


def default_cache() -> Path:
    from adbench.paths import default_cache_dir

    return default_cache_dir()


def run(cfg: RunConfig | Mapping[str, Any] | str | Path | None = None, results_dir: str | Path = DEFAULT_RESULTS,
        cache_dir: str | Path | None = None, resume: str | Path | None = None, tracker: Tracker | None = None,
        executor: LocalExecutor | RayExecutor | None = None, train_only: bool = False,
        on_folder: Callable[[Path], None] | None = None) -> Outcome:
    """Train and evaluate ``cfg`` in a new run folder under ``results_dir`` (or go on with the run folder
    ``resume``, whose config is used; ``cfg`` may then be left out); ``train_only``: train the noise nets and
    score nothing (``evaluate`` scores them later); ``on_folder``: told the run folder before any work."""
    config = None if cfg is None else as_config(cfg)
    if config is None and resume is None:
        raise AdbenchError("run needs a config, or resume= a run folder")
    if config is not None:
        check_component_names(config)
    from adbench.engine.grid import GridRunner

    runner = GridRunner.for_run(config, Path(results_dir), Path(cache_dir) if cache_dir else default_cache(),
                                Path(resume) if resume else None, tracker, executor)
    if on_folder:
        on_folder(runner.grid_dir)
    return finished(runner, train_only)


def train(cfg: RunConfig | Mapping[str, Any] | str | Path | None = None, **options: Any) -> Outcome:
    """``run`` with ``train_only``: the noise net of every category trained and saved, nothing scored."""
    return run(cfg, train_only=True, **options)


def evaluate(run_dir: str | Path, cache_dir: str | Path | None = None, tracker: Tracker | None = None,
             on_folder: Callable[[Path], None] | None = None) -> Outcome:
    """Score the test sets with the trained models of the run folder ``run_dir`` (training any that are missing)."""
    return run(None, cache_dir=cache_dir, resume=run_dir, tracker=tracker, on_folder=on_folder)


def grid(spec: GridSpec | str | Path, sets: list[str] | None = None, quick: bool = False,
         results_dir: str | Path = DEFAULT_RESULTS, cache_dir: str | Path | None = None,
         tracker: Tracker | None = None, executor: LocalExecutor | RayExecutor | None = None,
         on_plan: Callable[[GridRunner, dict[str, Any]], None] | None = None, dry_run: bool = False) -> Outcome:
    """Run an ablation grid (a ``GridSpec`` or a grid YAML's path, with ``sets`` overrides of its base and its
    quick settings when ``quick``) in ``results_dir/grid-<name>``: finished cells are kept and skipped when it
    is started again; ``on_plan``: shown the runner and its plan (cells, units, trainings) before any work;
    ``dry_run``: the plan (and ``cells``) only, nothing run."""
    from adbench.engine.grid import GridRunner, GridSpec, load_grid

    if not isinstance(spec, GridSpec):
        spec = load_grid(Path(spec), list(sets or []), quick)
    runner = GridRunner(spec, Path(results_dir), Path(cache_dir) if cache_dir else default_cache(), tracker=tracker,
                        executor=executor)
    cells = runner.cells()
    plan = runner.plan(cells)
    if on_plan:
        on_plan(runner, plan)
    if dry_run:
        import pandas as pd

        return Outcome(runner.grid_dir, pd.DataFrame(), [], len(cells), plan, cells)
    return dataclasses.replace(finished(runner, cells=cells), plan=plan, cells=cells)


def sweep_t(cfg: RunConfig | Mapping[str, Any] | str | Path | None = None, timesteps: list[int] | None = None,
            scorers: list[str] | None = None, from_run: str | Path | None = None,
            results_dir: str | Path = DEFAULT_RESULTS, cache_dir: str | Path | None = None,
            tracker: Tracker | None = None, executor: LocalExecutor | RayExecutor | None = None,
            on_shared: Callable[[list[Path], int], None] | None = None, cell: int | None = None) -> Outcome:
    """Timestep sensitivity: one trained model per category scored at every t of ``timesteps`` (default 50, 150,
    ..., 950) by each of ``scorers`` (default both OSD-IRF inputs), as a grid ``results_dir/grid-<name>-t``;
    ``from_run``: sweep that run folder's trained models (with its config, unless ``cfg`` is given too: e.g. that
    config with overrides), or a grid folder's (the configuration of its cell ``cell``; without one, the only
    configuration it trained), telling ``on_shared`` the models shared and how many are left to train; the
    metric-vs-t figure is drawn in the grid folder (``figures``)."""
    from adbench.engine.grid import GridRunner, sweep_source, sweep_t_grid

    if cfg is None and from_run is None:
        raise AdbenchError("sweep_t needs a config, or from_run a run or grid folder")
    cache = Path(cache_dir) if cache_dir else default_cache()
    config = as_config(cfg) if cfg is not None else sweep_source(Path(from_run), cell, cache)
    spec = sweep_t_grid(config, list(scorers or ["osd_irf_mean", "osd_irf_noisy"]),
                        list(timesteps or range(50, 951, 100)))
    runner = GridRunner(spec, Path(results_dir), cache, tracker=tracker, executor=executor)
    cells = runner.cells()
    if from_run is not None:
        shared = runner.share_models(Path(from_run) / "models")
        if on_shared:
            on_shared(shared, runner.plan(cells)["trainings"])
    outcome = finished(runner, cells=cells)
    if outcome.results.empty:
        return outcome
    from adbench.reporting.plots import plot_metrics_vs

    return dataclasses.replace(outcome, figures=plot_metrics_vs(outcome.results, "t",
                                                                outcome.folder / "metrics_vs_t", "t sensitivity"))


def finished(runner: GridRunner, train_only: bool = False, cells: list | None = None) -> Outcome:
    """Run every cell of ``runner`` (``cells``, when computed already; resumed: those not finished yet) and
    collect what they left."""
    cells = runner.cells() if cells is None else cells
    frame = runner.run(cells, train_only)
    return Outcome(runner.grid_dir, frame, runner.failed(cells, train_only), len(cells))


def load_results(*folders: str | Path) -> pd.DataFrame:
    """The finished rows of run or grid folders (or their ``metrics.parquet`` files), one frame."""
    from adbench.results import load_rows

    return load_rows([Path(f) for f in folders])


@dataclass(frozen=True)
class StudyOutcome:
    """What a study left: its folder, every trial (one row each, as ``trials.csv``), the best parameters on the
    validation objective, the figures drawn (and why any was not), and with ``evaluate_best`` the test-set run of
    the best trial."""

    folder: Path
    trials: pd.DataFrame
    best: dict[str, Any]
    objective: str
    figures: list[Path] = field(default_factory=list)
    skipped_figures: dict[str, str] = field(default_factory=dict)
    best_run: Outcome | None = None


def study(spec: str | Path, sets: list[str] | None = None, quick: bool = False, storage: str | None = None,
          n_trials: int | None = None, new_name: str | None = None, force: bool = False, evaluate_best: bool = False,
          results_dir: str | Path = DEFAULT_RESULTS, cache_dir: str | Path | None = None,
          tracker: Tracker | None = None, executor: LocalExecutor | RayExecutor | None = None, workers: int = 1,
          on_best: Callable[[dict[str, Any]], None] | None = None) -> StudyOutcome:
    """An Optuna study (a study YAML's path, ``sets`` overriding its base) on a validation split carved from the
    training normals, never the test set, in ``results_dir/study-<name>`` (``storage``: an Optuna RDB URL or a
    journal file shared by several processes; ``workers`` > 1: Ray tasks, with a ``RayExecutor``). A study
    started again goes on; ``force`` deletes the stored one first. ``evaluate_best``: no search, the best
    trial's config run on the test set (``best_run``), its parameters told to ``on_best`` first.

        >>> out = adbench.study("registry/study_t.yaml", quick=True)
        >>> out.best, out.trials.sort_values("value").tail(3)
    """
    from adbench.config import checked_name
    from adbench.engine.executors import RayExecutor
    from adbench.engine.study import StudyRunner, config_for, load_study
    from adbench.reporting.plots import plot_study

    if workers > 1 and not isinstance(executor, RayExecutor):
        raise AdbenchError("--workers runs Optuna workers as Ray tasks: add --executor ray (or start more "
                           "`adbench study` processes on the same --storage)")
    loaded = load_study(Path(spec), quick, list(sets or []))
    if n_trials is not None:
        loaded.n_trials = n_trials
    if new_name is not None:
        loaded.name = checked_name(new_name, "--new-name")
    results, cache = Path(results_dir), Path(cache_dir) if cache_dir else default_cache()
    runner = StudyRunner(loaded, results, cache, storage, None if evaluate_best else tracker)
    if force:
        runner.delete()
    if evaluate_best:
        best = runner.best_params(runner.study())
        if on_best:
            on_best(best)
        cfg = config_for(loaded, best).updated({"runtime.name": f"{loaded.name}-best"})
        best_run = run(cfg, results, cache, tracker=tracker, executor=executor)
        return StudyOutcome(runner.study_dir, runner.write_trials(runner.study()), best, loaded.objective,
                            best_run=best_run)
    if isinstance(executor, RayExecutor):
        runner.study()  # made (or its spec checked) once, before the workers start
        executor.study_workers(loaded, results, cache, runner.storage_url, workers,
                               tracker.spec if tracker is not None else (None, None))
        result = runner.study()
    else:
        result = runner.optimize()
    figures, skipped = plot_study(result, runner.study_dir, loaded.objective, loaded.fps_objective)
    return StudyOutcome(runner.study_dir, runner.write_trials(result), runner.best_params(result), loaded.objective,
                        figures, skipped)


def report(results: list[str | Path] | str | Path, out: str | Path = "reports/table", formats: str = "both",
           layout: str = "methods", metric: str = "image_auroc", per_category: bool = True,
           caption: str | None = None, label: str | None = None, paper: str | None = None, reported: bool = False,
           fps_records: list[str | Path] | None = None, figures: bool = False, figure_width: str = "page",
           page: str = "article", notes: str = "below", rename: Mapping[str, str] | None = None,
           metrics: list[str] | None = None, significance: str | None = None) -> Report:
    """Tables (Markdown and/or LaTeX, ``formats`` md, latex or both) from the stored rows of run or grid folders
    (or ``metrics.parquet`` files), nothing recomputed; the files written. ``layout``: methods (the papers'
    main tables), categories (one ``metric`` per class) or bmad; ``paper``: a transcribed table (e.g.
    ``osd_irf/table1``; default: the one the grid's preset names, ``"none"``: none) whose values and Δ go under
    the rows reproducing them, with its other methods as rows when ``reported``; ``fps_records``: ``adbench fps``
    files whose FPS replace the rows'; ``figures``: anomaly-map figures and metric against t; ``page`` (article,
    cvpr, icml, neurips, lncs or COLUMN,TEXT pt), ``notes`` (below, caption or short), ``rename``, ``metrics`` and
    ``significance`` (a method: the others tested against it) style the tables. Returns the files written (and
    the kept-map files the figures lacked).

        >>> adbench.report(["results/grid-osd-irf-table1"], out="reports/table1", metrics=["image_auroc", "mad"])
    """
    from adbench.reporting.build import write_report

    return write_report([Path(p) for p in ([results] if isinstance(results, (str, Path)) else results)], Path(out),
                        formats, layout, metric, per_category, caption, label, paper, reported,
                        [Path(p) for p in fps_records or []], figures, figure_width, page, notes, dict(rename or {}),
                        tuple(metrics or ()), significance or "")


@dataclass(frozen=True)
class FpsOutcome:
    """``adbench fps``'s measurement: one record per scorer (images/s, latency, FLOPs, share of a same-run peak)
    and the JSON file they were written to (``report --fps`` reads it)."""

    path: Path
    records: list[dict[str, Any]]


def fps(cfg: RunConfig | Mapping[str, Any] | str | Path | None = None, batch_size: int = 64, warmup: int = 3,
        iters: int = 10, compile_model: bool = False, results_dir: str | Path = DEFAULT_RESULTS) -> FpsOutcome:
    """Images/s of the full pipeline and of each scorer alone, batch-1 latency, FLOPs per image and the TFLOP/s
    achieved as a share of a matrix product's peak measured in the same run, for ``cfg``'s backbone, noise net
    and scorers (the default config: ``None``); written to ``results_dir/fps-<backbone>-<noise net>-<time>.json``.

        >>> adbench.fps({"backbone": {"name": "efficientnet_b4"}, "noise_net": {"name": "dit_gigant"}}).records
    """
    import json
    from datetime import datetime, timezone

    from adbench.atomic import atomic_write_text
    from adbench.engine.fps import measure_fps, records_as_rows

    config = RunConfig() if cfg is None else as_config(cfg)
    rows = records_as_rows(measure_fps(config, batch_size, warmup, iters, compile_model))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(results_dir) / f"fps-{config.backbone.name}-{config.noise_net.name}-{stamp}.json"
    atomic_write_text(path, json.dumps({"config": config.to_dict(), "records": rows}, indent=1))
    return FpsOutcome(path, rows)
