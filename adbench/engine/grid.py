"""Ablation grids: the cartesian product over config keys, trained once and scored many times.

A grid file::

    name: noise-nets
    base: {data: {dataset: synthetic}, backbone: {name: efficientnet_lite0}}
    axes:                       # each key takes a list of values; dotted keys reach nested fields
      noise_net.name: [mlp, dit_base, unet]
      seed: [0, 1, 2]
      scorer: [osd_irf_mean, "invad:steps=3"]   # one scorer per cell (replaces base scorers)
      scorer.t: [250, 500]                      # an argument of the cell's scorer
      backbone: [{name: vit_base, image_size: 224}, {name: efficientnet_b4}]  # whole sections; an override
                                                # of backbone.image_size fixes it in every value
    quick: {train.epochs: 5}    # applied with --quick
    quick_axes:                 # with --quick, these axes take these values instead
      noise_net.name: [mlp_tiny]
    paper: invad/table8         # the transcribed paper table it reproduces (adbench/papers): `adbench report`
                                # shows the paper's values and Δ under the rows that reproduce them

Every (axes combination, scorer, category) is a cell, keyed by the hash of its effective config.
Cells sharing a training key reuse one trained noise net (under ``setting: multiclass``, the
default, one per dataset and training setup, not one per category); features are cached per backbone, so
cells that differ only in scoring (t, steps, image score...) cost one scoring pass. Finished cells
are appended to ``cells.jsonl`` as they complete; a restarted grid skips them. A failing cell is
recorded with its error and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from adbench.atomic import atomic_write_text, make_dir, remove_stale_temporaries
from adbench.config import QUICK, RunConfig, checked_name, config_from, parse_sets, read_yaml, with_overrides
from adbench.engine.build import build_dataset, cell_config, needs_model
from adbench.engine.context import Context, ContextCache
from adbench.engine.execute import Cell, work_units
from adbench.engine.executors import LocalExecutor, RayExecutor
from adbench.engine.keys import cell_key, training_key
from adbench.engine.preflight import check_data, preflight
from adbench.errors import AdbenchError, ConfigError
from adbench.metrics import SPRO_PREFIX
from adbench.reporting.papers import paper_tables
from adbench.results import RecordLog, folder_lock, new_run_dir, read_run_config, write_rows
from adbench.tracking import Tracker

__all__ = ["GRID_KEYS", "expand", "fix_field", "GridRunner", "GridSpec", "load_grid", "sweep_t_grid"]

GRID_KEYS = {"name", "base", "axes", "quick", "quick_axes", "description", "paper"}


@dataclass
class GridSpec:
    name: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    quick_axes: dict[str, list] = field(default_factory=dict)
    description: str = ""
    paper: str = ""  # a transcribed paper table (``adbench.reporting.papers``) the grid reproduces


def load_grid(path: str | Path, sets: list[str] | None = None, quick: bool = False) -> GridSpec:
    """Read a grid file; ``sets`` are ``key=value`` overrides of the base (``--set``)."""
    path = Path(path)
    data = read_yaml(path, "Grid")
    unknown = set(data) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; a grid file has {sorted(GRID_KEYS)}")
    spec = GridSpec(name=checked_name(data.get("name", path.stem), f"{path}: name"), base=dict(data.get("base") or {}),
                    axes=dict(data.get("axes") or {}), quick=dict(data.get("quick") or {}),
                    quick_axes=dict(data.get("quick_axes") or {}), description=data.get("description", ""),
                    paper=str(data.get("paper") or ""))
    if spec.paper and spec.paper not in paper_tables():
        raise ConfigError(f"{path}: paper {spec.paper!r} is not a transcribed paper table; known: "
                          f"{', '.join(paper_tables())}")
    for where, axes in (("axis", spec.axes), ("quick_axes", spec.quick_axes)):
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{path}: {where} {key!r} needs a non-empty list of values")
    not_axes = sorted(set(spec.quick_axes) - set(spec.axes))
    if not_axes:
        raise ConfigError(f"{path}: quick_axes {not_axes} are not axes of the grid ({sorted(spec.axes)}); "
                          "a fixed value under --quick goes in quick")
    if quick:
        spec.axes.update(spec.quick_axes)
    sets_ = parse_sets(sets)
    quick_ = (spec.quick or QUICK) if quick else {}  # a grid without its own quick sizes: --quick's training
    if "data.dataset" in sets_:  # the quick sizes of the grid's dataset mean nothing to another one
        quick_ = {k: v for k, v in quick_.items() if k != "data.args"}
    overrides = {**quick_, **sets_}
    for key in overrides:
        spec.axes.pop(key, None)  # an override fixes an axis to one value
        fix_field(spec.axes, key)
    spec.base = with_overrides(spec.base, overrides)
    if quick:
        spec.name += "-quick"
    return spec


def fix_field(axes: dict[str, list], key: str) -> None:
    """An override of ``section.field`` fixes that field in an axis over whole sections (``backbone:
    [{name: vit_base, image_size: 224}, ...]``): it leaves every value, and values that became equal merge."""
    for axis, values in axes.items():
        field_ = key.removeprefix(f"{axis}.")
        if field_ != key and "." not in field_ and all(isinstance(v, dict) for v in values):
            axes[axis] = []
            for value in ({k: v for k, v in value.items() if k != field_} for value in values):
                axes[axis] += [] if value in axes[axis] else [value]


def sweep_t_grid(cfg: RunConfig, scorers: list[str], timesteps: list[int]) -> GridSpec:
    """The timestep sweep of one config: each scorer at each t, one trained model per category."""
    return GridSpec(f"sweep-t-{cfg.runtime.name}", base=cfg.to_dict(), axes={"scorer": scorers, "scorer.t": timesteps})


def sweep_source(folder: Path, cell: int | None, cache_dir: Path) -> RunConfig:
    """The config whose trained models a timestep sweep scores: a run folder's, or a grid folder's cell ``cell``
    (numbered as ``adbench config --grid`` lists them) over every category the grid scored with that cell's
    settings; without ``cell``, the one configuration the grid trained models for."""
    folder = Path(folder)
    if (folder / "config.yaml").is_file():
        if cell is not None:
            raise AdbenchError(f"{folder} is a run folder: --cell chooses a cell of a grid folder")
        return read_run_config(folder)
    if not (folder / "grid.yaml").is_file():
        raise AdbenchError(f"{folder} is neither a run folder (config.yaml) nor a grid folder (grid.yaml): give the "
                           "folder `adbench run`, `train` or `grid` wrote")
    runner = GridRunner(load_grid(folder / "grid.yaml"), folder.parent, cache_dir, run_dir=folder)
    cells = runner.cells()
    if cell is not None and not 0 <= cell < len(cells):
        raise AdbenchError(f"--cell {cell}: the grid has {len(cells)} cells (0 to {len(cells) - 1})")

    def setting(c: Cell) -> str:  # a cell's configuration apart from its category and scorer
        return cell_key(c.cfg.updated({"categories": None, "scoring.scorers": [{"name": "osd_irf_mean"}]}))

    trained = [c for c in cells if needs_model(c.spec)]
    settings = list(dict.fromkeys(map(setting, trained)))
    if cell is None and len(settings) != 1:
        raise AdbenchError(f"{folder} trained noise nets of {len(settings)} configurations: choose one with --cell N "
                           f"(`adbench config --grid {folder / 'grid.yaml'}` lists the cells)")
    chosen = cells[cell] if cell is not None else next(c for c in trained if setting(c) == settings[0])
    if not needs_model(chosen.spec):
        raise AdbenchError(f"--cell {cell} is scored by {chosen.spec['name']}, which has no noise net to sweep")
    categories = list(dict.fromkeys(c.category for c in cells if setting(c) == setting(chosen)))
    return chosen.cfg.updated({"categories": categories})


def expand(spec: GridSpec, categories_of=None) -> list[Cell]:
    """All cells, in a stable order: axes combinations x scorers x categories."""
    cells = []
    keys = list(spec.axes)
    for values in itertools.product(*(spec.axes[k] for k in keys)):
        combination = dict(zip(keys, values, strict=True))
        cfg = config_from(spec.base, {"runtime.name": spec.name, **combination}, f"grid {spec.name}")
        preflight(cfg)
        if categories_of:
            cfg = cfg.with_train_categories(categories_of(cfg))
        cats = cfg.categories or (categories_of(cfg) if categories_of else [])
        for scorer in cfg.scoring.scorers:
            for category in cats:
                cells.append(Cell(cell_config(cfg, category, scorer), category))
    seen, unique = set(), []
    for cell in cells:
        if cell.key not in seen:
            seen.add(cell.key)
            unique.append(cell)
    return unique


class GridRunner:
    """Runs a grid's cells through the one execution path, resumably: finished cells (in ``cells.jsonl``)
    are skipped, each new one is appended as it finishes."""

    def __init__(self, spec: GridSpec, results_dir: Path, cache_dir: Path, run_dir: Path | None = None,
                 tracker: Tracker | None = None, executor: LocalExecutor | RayExecutor | None = None) -> None:
        self.spec = spec
        self.tracker = tracker or Tracker()
        self.executor = executor or LocalExecutor()
        self.grid_dir = Path(run_dir) if run_dir is not None else Path(results_dir) / f"grid-{spec.name}"
        self.cache_dir = Path(cache_dir)
        self.log = RecordLog(self.grid_dir / "cells.jsonl")
        self.contexts = ContextCache(self.grid_dir, self.cache_dir)
        self._categories: dict[tuple, list[str]] = {}
        self.errors: list[dict[str, Any]] = []  # the error records of the last run

    @classmethod
    def for_run(cls, cfg: RunConfig | None, results_dir: Path, cache_dir: Path,
                resume: Path | None = None, tracker: Tracker | None = None,
                executor: LocalExecutor | RayExecutor | None = None) -> GridRunner:
        """A run as a grid without axes, in a new run folder (data and names checked, and the backbone
        loaded, before the folder is made), or in the folder ``resume`` with that folder's config (a
        ``cfg`` given too must be the same configuration)."""
        ctx = None
        if resume is not None:
            saved = read_run_config(resume)
            resolved = None if cfg is None else cfg.with_train_categories(saved.data.train_categories or [])
            if resolved is not None and cell_key(resolved) != cell_key(saved):
                raise AdbenchError(f"{resume} holds another configuration (its config.yaml): resume it without a "
                                   "config and options, or start a new run.")
            cfg, run_dir = saved, Path(resume)
        else:
            ctx = Context.create(cfg, Path(), cache_dir)
            cfg = ctx.cfg  # with the resolved training categories
            run_dir = new_run_dir(results_dir, cfg)
        runner = cls(GridSpec(cfg.runtime.name, base=cfg.to_dict()), results_dir, cache_dir, run_dir, tracker, executor)
        if ctx is not None:
            runner.contexts.add(dataclasses.replace(ctx, run_dir=run_dir))  # its backbone is loaded already
        return runner

    def failed(self, cells: list[Cell], train_only: bool = False) -> list[dict[str, Any]]:
        """The error records of ``cells`` that failed and have not finished since; ``train_only``: those of the
        last ``run`` (a training that succeeds on a retry finishes no cell, so the log keeps its old error)."""
        if train_only:
            return list(self.errors)
        keys = {c.key for c in cells}
        return [r for key, r in self.log.failed().items() if key in keys]

    def share_models(self, models: Path) -> list[Path]:
        """Link the trained models in ``models`` (another run's) into this grid's, so cells with the same
        training key score them instead of training again (a model under another key is simply unused)."""
        mine = make_dir(self.grid_dir / "models")
        linked = []
        for model in sorted(Path(models).glob("*.pt")):
            if not (mine / model.name).exists():
                (mine / model.name).symlink_to(model.resolve())
                linked.append(mine / model.name)
                for kept in (model.with_suffix(".train.json"), model.with_suffix(".train_log.csv")):  # its cost
                    if kept.is_file() and not (mine / kept.name).exists():
                        (mine / kept.name).symlink_to(kept.resolve())
        return linked

    def categories_of(self, cfg: RunConfig) -> list[str]:
        key = (cfg.data.dataset, cfg.data.root, json.dumps(cfg.data.args, sort_keys=True))
        if key not in self._categories:
            self._categories[key] = build_dataset(cfg, self.cache_dir).categories()
        return self._categories[key]

    def cells(self) -> list[Cell]:
        return expand(self.spec, self.categories_of)

    def plan(self, cells: list[Cell]) -> dict[str, int]:
        done = self.log.finished()
        todo = [c for c in cells if c.key not in done]
        trainings = {training_key(c.cfg, c.category) for c in todo if needs_model(c.spec)}
        trained = {t for t in trainings if list((self.grid_dir / "models").glob(f"*-{t}.pt"))}
        return {"cells": len(cells), "finished": len(cells) - len(todo), "to_run": len(todo),
                "trainings": len(trainings - trained), "trained_models_reused": len(trained),
                "scoring_passes": len(todo), "failed_before": len(set(self.log.failed()) & {c.key for c in todo})}

    def run(self, cells: list[Cell], train_only: bool = False) -> pd.DataFrame:
        """Execute the unfinished ``cells`` (``train_only``: only train their noise nets); return every
        finished row of ``cells``, also written as metrics.parquet/csv."""
        with folder_lock(self.grid_dir):  # one process per grid folder; interrupted writes' leftovers go
            remove_stale_temporaries(self.grid_dir)
            atomic_write_text(self.grid_dir / "grid.yaml",
                              yaml.safe_dump(dataclasses.asdict(self.spec), sort_keys=False))
            done = self.log.finished()
            todo = [c for c in cells if c.key not in done]
            self.check_data(todo)
            units = work_units(todo)
            self.tracker.start(self.grid_dir, (c.cfg.to_dict() for c in cells))
            self.errors.clear()
            for record in self.executor.records(units, self.contexts, train_only):
                self.log.append(record)
                self.tracker.log(record, self.grid_dir)
                if record["status"] == "error":
                    self.errors.append(record)
            return self.collect(cells)

    def check_data(self, cells: list[Cell]) -> None:
        """Before any training: the test images and masks of every category ``cells`` score, and the training
        images of every category their models train on (``check_data``), per dataset."""
        by_data: dict[str, list[Cell]] = {}
        for cell in cells:
            by_data.setdefault(json.dumps(cell.cfg.data.model_dump(), sort_keys=True, default=str), []).append(cell)
        for group in by_data.values():
            cfg = group[0].cfg
            trained = {t for c in group if needs_model(c.spec) for t in c.cfg.trained_on(c.category)}
            regions = any(k.startswith(SPRO_PREFIX) for c in group for k in c.cfg.scoring.extra_metrics)
            private = any(c.cfg.scoring.submission for c in group)
            check_data(build_dataset(cfg, self.cache_dir), sorted({c.category for c in group}), sorted(trained),
                       regions, private)

    def collect(self, cells: list[Cell]) -> pd.DataFrame:
        """The finished rows of this grid's cells, written as metrics.parquet/csv."""
        done = self.log.finished()
        rows = [{k: v for k, v in done[c.key].items() if k != "status"} for c in cells if c.key in done]
        return write_rows(self.grid_dir, rows) if rows else pd.DataFrame()
