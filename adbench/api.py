"""The library API: what ``adbench run``, ``train``, ``evaluate`` and ``grid`` do, callable from Python.

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
    from adbench.tracking import Tracker

__all__ = ["DEFAULT_RESULTS", "Outcome", "as_config", "evaluate", "grid", "load_results", "run", "sweep_t",
           "train"]

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
    ``dry_run``: the plan only, nothing run."""
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

        return Outcome(runner.grid_dir, pd.DataFrame(), [], len(cells), plan)
    return dataclasses.replace(finished(runner, cells=cells), plan=plan)


def sweep_t(cfg: RunConfig | Mapping[str, Any] | str | Path | None = None, timesteps: list[int] | None = None,
            scorers: list[str] | None = None, from_run: str | Path | None = None,
            results_dir: str | Path = DEFAULT_RESULTS, cache_dir: str | Path | None = None,
            tracker: Tracker | None = None, executor: LocalExecutor | RayExecutor | None = None,
            on_shared: Callable[[list[Path], int], None] | None = None) -> Outcome:
    """Timestep sensitivity: one trained model per category scored at every t of ``timesteps`` (default 50, 150,
    ..., 950) by each of ``scorers`` (default both OSD-IRF inputs), as a grid ``results_dir/grid-<name>-t``;
    ``from_run``: sweep that run folder's trained models (with its config, unless ``cfg`` is given too: e.g. that
    config with overrides), telling ``on_shared`` the models shared and how many are left to train."""
    from adbench.engine.grid import GridRunner, sweep_t_grid
    from adbench.results import read_run_config

    if cfg is None and from_run is None:
        raise AdbenchError("sweep_t needs a config, or from_run a run folder")
    config = as_config(cfg) if cfg is not None else read_run_config(Path(from_run))
    spec = sweep_t_grid(config, list(scorers or ["osd_irf_mean", "osd_irf_noisy"]),
                        list(timesteps or range(50, 951, 100)))
    runner = GridRunner(spec, Path(results_dir), Path(cache_dir) if cache_dir else default_cache(), tracker=tracker,
                        executor=executor)
    cells = runner.cells()
    if from_run is not None:
        shared = runner.share_models(Path(from_run) / "models")
        if on_shared:
            on_shared(shared, runner.plan(cells)["trainings"])
    return finished(runner, cells=cells)


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
