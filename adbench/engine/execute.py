"""One execution path: cells grouped into work units, each trained (or loaded) once and scored.

A cell is one category scored by one scorer under one config (one result row). A work unit is one
trained noise net and every cell it scores: under ``multiclass`` the cells of every category, under
``single`` those of one category; cells of scorers without a noise net (knn) form units of their own.
``execute`` does a unit's work and yields one record per cell as it finishes; ``adbench run``, grids
and ``sweep-t`` all go through it (a run is a grid without axes).
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from adbench.config import RunConfig
from adbench.device import release_device_memory
from adbench.engine.build import needs_model
from adbench.engine.context import ContextCache, console, eval_set
from adbench.engine.keys import cell_key, context_key, training_key
from adbench.engine.scoring import score_cell
from adbench.engine.training import train_category
from adbench.errors import AdbenchError


@dataclass(frozen=True)
class Cell:
    cfg: RunConfig  # one category, one scorer
    category: str

    @property
    def key(self) -> str:
        return cell_key(self.cfg)

    @property
    def spec(self) -> dict[str, Any]:
        return self.cfg.scoring.scorers[0]


@dataclass
class WorkUnit:
    """One trained noise net (``model_key``; None for scorers without one) and the cells it scores."""

    model_key: str | None
    cells: list[Cell]

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(c.category for c in self.cells))


def work_units(cells: list[Cell]) -> list[WorkUnit]:
    """``cells`` grouped by the context (dataset + loaded backbone) and the noise net they need, in order."""
    units: dict[tuple[str, str | None], WorkUnit] = {}
    for cell in cells:
        model = training_key(cell.cfg, cell.category) if needs_model(cell.spec) else None
        key = (context_key(cell.cfg), model)
        units.setdefault(key, WorkUnit(model, [])).cells.append(cell)
    return list(units.values())


def error_records(cells: list[Cell], exc: BaseException) -> list[dict[str, Any]]:
    """The records of ``cells`` failed by one error, said in one line (call inside the ``except`` clause: they
    keep the traceback)."""
    named = [f"{c.category} {c.spec['name']}" for c in cells]
    which = f"cell {cells[0].key} ({cells[0].category}, {cells[0].spec['name']})" if len(cells) == 1 else \
        f"{len(cells)} cells ({', '.join(named[:4])}{f' and {len(named) - 4} more' if len(named) > 4 else ''})"
    console.print(f"[red]{escape(which)} failed:[/] {escape(str(exc))}")
    return [{"status": "error", "cell_key": cell.key, "category": cell.category, "config": cell.cfg.to_dict(),
             "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()} for cell in cells]


def attempt(cells: list[Cell], work: Callable[..., Any], *args: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(``work(*args)``, no errors), or (None, an error record for each of ``cells``) with GPU memory
    released, so that a cell that ran out of it does not starve the next."""
    try:
        return work(*args), []
    except Exception as exc:  # noqa: BLE001 - recorded per cell, the rest go on
        errors = error_records(cells, exc)
    release_device_memory()  # the failed work's tensors are unreferenced once the except clause is left
    return None, errors


def execute(unit: WorkUnit, contexts: ContextCache, train_only: bool = False) -> Iterator[dict[str, Any]]:
    """Train or load the unit's noise net, then score each cell; yield one record per cell as it finishes:
    ``{"status": "ok", **row}`` or an error record. A failure fails the cells it reaches (training: all of
    them) and the others go on. ``train_only`` trains and yields only failures."""
    first = unit.cells[0]
    ctx, errors = attempt(unit.cells, contexts.get, first.cfg)
    model = None
    if not errors and unit.model_key is not None:
        model, errors = attempt(unit.cells, train_category, ctx, first.category)
        if model is None and not errors and not train_only:
            errors = error_records(unit.cells, AdbenchError(
                "this machine trained its share of a noise net across machines (runtime.nnodes "
                f"{first.cfg.runtime.nnodes}); the machine of rank 0 wrote the model: score it there "
                "(adbench evaluate RUN_DIR)"))
    if errors or train_only:
        yield from errors
        return
    for category in unit.categories:
        cells = [c for c in unit.cells if c.category == category]
        data, errors = attempt(cells, eval_set, ctx, category)
        yield from errors
        for cell in cells if not errors else []:
            row, failed = attempt([cell], score_cell, dataclasses.replace(ctx, cfg=cell.cfg), data, model, cell.spec)
            yield from failed or [{"status": "ok", **row}]
