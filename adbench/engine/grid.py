"""Ablation grids: the cartesian product over config keys, trained once and scored many times.

A grid file::

    name: noise-nets
    base: {dataset: synthetic, backbone: efficientnet_lite0, scorers: [{name: osd_irf_mean}]}
    axes:                       # each key takes a list of values; dotted keys reach nested fields
      noise_net: [mlp, dit_base, unet]
      seed: [0, 1, 2]
      scorer: [osd_irf_mean, "invad:steps=3"]   # one scorer per cell (replaces base scorers)
      scorer.t: [250, 500]                      # an argument of the cell's scorer
    quick: {train.epochs: 5}    # applied with --quick

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
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from adbench.atomic import atomic_write_text
from adbench.config import RunConfig, config_from, parse_sets, read_yaml, with_overrides
from adbench.device import release_device_memory
from adbench.engine.run import (
    Context,
    ContextCache,
    EvalSet,
    build_dataset,
    cell_config,
    console,
    context_key,
    eval_set,
    model_for,
    needs_model,
    score_cell,
)
from adbench.errors import ConfigError
from adbench.results import RecordLog, write_rows

GRID_KEYS = {"name", "base", "axes", "quick", "description"}


@dataclass
class GridSpec:
    name: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Cell:
    cfg: RunConfig  # one category, one scorer
    category: str

    @property
    def key(self) -> str:
        return self.cfg.hash()

    @property
    def spec(self) -> dict[str, Any]:
        return self.cfg.scorers[0]


def load_grid(path: str | Path, sets: list[str] | None = None, quick: bool = False) -> GridSpec:
    """Read a grid file; ``sets`` are ``key=value`` overrides of the base (``--set``)."""
    path = Path(path)
    data = read_yaml(path, "Grid")
    unknown = set(data) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; a grid file has {sorted(GRID_KEYS)}")
    spec = GridSpec(name=data.get("name", path.stem), base=dict(data.get("base") or {}),
                    axes=dict(data.get("axes") or {}), quick=dict(data.get("quick") or {}),
                    description=data.get("description", ""))
    for key, values in spec.axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: axis {key!r} needs a non-empty list of values")
    overrides = {**(spec.quick if quick else {}), **parse_sets(sets)}
    for key in overrides:
        spec.axes.pop(key, None)  # an override fixes an axis to one value
    spec.base = with_overrides(spec.base, overrides)
    if quick:
        spec.name += "-quick"
    return spec


def expand(spec: GridSpec, categories_of=None) -> list[Cell]:
    """All cells, in a stable order: axes combinations x scorers x categories."""
    cells = []
    keys = list(spec.axes)
    for values in itertools.product(*(spec.axes[k] for k in keys)):
        cfg = config_from({"name": spec.name, **spec.base}, dict(zip(keys, values, strict=True)), f"grid {spec.name}")
        if categories_of:
            cfg = cfg.with_train_categories(categories_of(cfg))
        cats = cfg.categories or (categories_of(cfg) if categories_of else [])
        for scorer in cfg.scorers:
            for category in cats:
                cells.append(Cell(cell_config(cfg, category, scorer), category))
    seen, unique = set(), []
    for cell in cells:
        if cell.key not in seen:
            seen.add(cell.key)
            unique.append(cell)
    return unique


class GridRunner:
    def __init__(self, spec: GridSpec, results_dir: Path, cache_dir: Path) -> None:
        self.spec = spec
        self.grid_dir = Path(results_dir) / f"grid-{spec.name}"
        self.cache_dir = Path(cache_dir)
        self.log = RecordLog(self.grid_dir / "cells.jsonl")
        self.contexts = ContextCache(self.grid_dir, self.cache_dir)
        self._categories: dict[tuple, list[str]] = {}

    def categories_of(self, cfg: RunConfig) -> list[str]:
        key = (cfg.dataset, cfg.data_root, json.dumps(cfg.dataset_args, sort_keys=True))
        if key not in self._categories:
            self._categories[key] = build_dataset(cfg).categories()
        return self._categories[key]

    def cells(self) -> list[Cell]:
        return expand(self.spec, self.categories_of)

    def plan(self, cells: list[Cell]) -> dict[str, int]:
        done = self.log.finished()
        todo = [c for c in cells if c.key not in done]
        trainings = {c.cfg.training_key(c.category) for c in todo if needs_model(c.spec)}
        trained = {t for t in trainings if list((self.grid_dir / "models").glob(f"*-{t}.pt"))}
        return {"cells": len(cells), "finished": len(cells) - len(todo), "to_run": len(todo),
                "trainings": len(trainings - trained), "trained_models_reused": len(trained),
                "scoring_passes": len(todo), "failed_before": len(set(self.log.failed()) & {c.key for c in todo})}

    def run(self, cells: list[Cell]) -> pd.DataFrame:
        self.grid_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.grid_dir / "grid.yaml", yaml.safe_dump(dataclasses.asdict(self.spec), sort_keys=False))
        done = self.log.finished()
        groups: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
        for cell in cells:
            if cell.key not in done:
                groups[(context_key(cell.cfg), cell.cfg.training_key(cell.category), cell.category)].append(cell)
        for (_, _, category), group in groups.items():
            prepared = self.attempt(group, self.prepare, category, group)
            if prepared is None:
                continue
            ctx, model, data = prepared
            for cell in group:
                row = self.attempt([cell], score_cell, dataclasses.replace(ctx, cfg=cell.cfg), data, model, cell.spec)
                if row is not None:
                    self.log.append({"status": "ok", **row})
        return self.collect(cells)

    def prepare(self, category: str, group: list[Cell]) -> tuple[Context, Any, EvalSet]:
        """The context, trained model (if any scorer needs one) and evaluation set of a category's cells."""
        ctx = self.contexts.get(group[0].cfg)
        return ctx, model_for(ctx, category, [cell.spec for cell in group]), eval_set(ctx, category)

    def attempt(self, cells: list[Cell], work: Callable[..., Any], *args: Any) -> Any | None:
        """``work(*args)``, or None with the error recorded for each of ``cells`` (the grid goes on; GPU memory
        is released, so a cell that ran out of it does not starve the next)."""
        try:
            return work(*args)
        except Exception as exc:  # noqa: BLE001 - recorded per cell, the grid goes on
            for cell in cells:
                self.record_error(cell, exc)
        release_device_memory()  # the failed work's tensors are unreferenced once the except clause is left
        return None

    def record_error(self, cell: Cell, exc: BaseException) -> None:
        console.print(f"[red]cell {cell.key} ({cell.category}, {cell.spec['name']}) failed:[/] {exc}")
        self.log.append({"status": "error", "cell_key": cell.key, "category": cell.category,
                         "config": cell.cfg.to_dict(), "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()})

    def collect(self, cells: list[Cell]) -> pd.DataFrame:
        """The finished rows of this grid's cells, written as metrics.parquet/csv."""
        done = self.log.finished()
        rows = [{k: v for k, v in done[c.key].items() if k != "status"} for c in cells if c.key in done]
        frame = pd.DataFrame(rows)
        if rows:
            write_rows(self.grid_dir, rows)
        return frame
