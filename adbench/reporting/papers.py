"""The papers' published numbers as data (``adbench/papers/*.yaml``), and which of our rows each reproduces.

A paper table has columns (a metric of ours, or ``null`` for one we do not measure, e.g. # Params) and
rows as printed. A row's ``ours`` (with its column's ``ours`` and its dataset) names the result-row
columns and values of the adbench rows that reproduce that cell; rows without ``ours`` are the paper's
other methods ("reported": never measured here).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adbench.errors import AdbenchError

PAPERS_DIR = Path(__file__).resolve().parents[1] / "papers"


@dataclass(frozen=True)
class PaperColumn:
    name: str
    metric: str | None  # the adbench metric it reports; None: not one we measure
    ours: Mapping[str, Any]


@dataclass(frozen=True)
class PaperRow:
    label: str  # as printed
    line: int  # its line in the paper's text
    dataset: str  # adbench's name of the dataset
    ours: Mapping[str, Any] | None  # None: another method, reported only
    values: tuple[float | None, ...]  # as printed, one per column; None where the paper prints N/A
    mean_of_values: float | None = None  # where the printed mean disagrees with its printed values: their mean


@dataclass(frozen=True)
class PaperTable:
    key: str  # "<paper file>/<table>", e.g. "invad/table2"
    paper: str
    arxiv: str
    text: str  # the paper's text file the lines refer to
    title: str
    device: str | None
    note: str | None
    columns: tuple[PaperColumn, ...]
    rows: tuple[PaperRow, ...]
    mean: Mapping[str, Any] | None  # {"of": [column names], "is": column name}: the paper's own arithmetic

    def value(self, row: PaperRow, column: str) -> float | None:
        return row.values[[c.name for c in self.columns].index(column)]

    def criteria_keys(self) -> set[str]:
        """The result columns its ``ours`` criteria read (and the dataset): the facts a row is matched on."""
        return {"dataset"} | {k for part in (*self.rows, *self.columns) for k in (part.ours or {})}

    def cite(self) -> str:
        return f"{self.paper} (arXiv {self.arxiv}) {self.title.split(':')[0]}"


def parse_column(item: str | dict) -> PaperColumn:
    if isinstance(item, str):
        return PaperColumn(item, item, {})
    return PaperColumn(item["name"], item.get("metric"), item.get("ours") or {})


def parse_table(key: str, paper: dict, table: dict) -> PaperTable:
    columns = tuple(map(parse_column, table["columns"]))
    rows = tuple(PaperRow(r["label"], int(r["line"]), r["dataset"], r.get("ours"), tuple(r["values"]),
                          r.get("mean_of_values")) for r in table["rows"])
    for row in rows:
        if len(row.values) != len(columns):
            raise AdbenchError(f"{key}: row {row.label!r} (line {row.line}) has {len(row.values)} values for "
                               f"{len(columns)} columns")
    return PaperTable(key, paper["paper"], str(paper["arxiv"]), paper["text"], table["title"], table.get("device"),
                      table.get("note"), columns, rows, table.get("mean"))


@functools.cache
def paper_file(path: Path) -> dict[str, PaperTable]:
    """The tables transcribed in one paper's file (libyaml's loader where PyYAML has it: a report reads one)."""
    paper = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {f"{path.stem}/{name}": parse_table(f"{path.stem}/{name}", paper, table)
            for name, table in paper["tables"].items()}


def paper_tables() -> dict[str, PaperTable]:
    """Every transcribed table, keyed ``<paper>/<table>`` (``osd_irf/table1``, ``invad/table2``, ...)."""
    return {k: t for path in sorted(PAPERS_DIR.glob("*.yaml")) for k, t in paper_file(path).items()}


def paper_table(key: str) -> PaperTable:
    """One transcribed table (only its paper's file read); a clear error naming the known ones otherwise."""
    path = PAPERS_DIR / f"{key.partition('/')[0]}.yaml"
    found = paper_file(path).get(key) if "/" in key and path.is_file() else None
    if found is None:
        raise AdbenchError(f"no transcribed paper table {key!r}; known: {', '.join(paper_tables())}")
    return found


def same(wanted: Any, got: Any) -> bool:
    """A criterion's value against a result row's: numbers by value (3 == 3.0), the rest as text."""
    if isinstance(got, float) and math.isnan(got):
        return False
    if isinstance(wanted, numbers.Number) and isinstance(got, numbers.Number):
        return float(wanted) == float(got)
    return str(wanted) == str(got)


def matches(criteria: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    return all(k in facts and same(v, facts[k]) for k, v in criteria.items())


# The category sets the papers' MVTec AD, VisA and MPDD means run over (each dataset's official list): a mean over
# fewer categories is not compared with them (a per-category cell of a paper names its category in ``ours``).
FULL_CATEGORIES = {
    "mvtec": ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
              "tile", "toothbrush", "transistor", "wood", "zipper"),
    "visa": ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
             "pcb4", "pipe_fryum"),
    "mpdd": ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"),
}


def missing_categories(dataset: str, categories: set[str]) -> list[str]:
    """The categories of ``dataset``'s full set (``FULL_CATEGORIES``) that ``categories`` lacks (none for a dataset
    without a fixed set)."""
    return sorted(set(FULL_CATEGORIES.get(dataset, ())) - set(categories))


def paper_values(table: PaperTable, facts: Mapping[str, Any]) -> tuple[str, dict[str, float]] | None:
    """(the paper's label, {metric: value as printed}) of the cells that the result row ``facts`` (its
    columns: dataset, scorer, scorer.steps, backbone, ...) reproduces; None if it reproduces none."""
    labels, values = [], {}
    for row in table.rows:
        if row.ours is None or not same(row.dataset, facts.get("dataset")) or not matches(row.ours, facts):
            continue
        for column, value in zip(table.columns, row.values, strict=True):
            if column.metric is None or value is None or not matches(column.ours, facts):
                continue
            if column.metric in values and values[column.metric] != value:
                raise AdbenchError(f"{table.key}: a result row matches two cells of {column.metric}: check the "
                                   "table's `ours` criteria")
            values[column.metric] = value
            label = row.label + (f", {column.name}" if column.ours else "")
            labels += [] if label in labels else [label]
    return ("; ".join(labels), values) if values else None


def reported_rows(table: PaperTable, datasets: set[str]) -> list[tuple[PaperRow, dict[str, float]]]:
    """The paper's other methods on ``datasets``, each with {metric: value as printed}."""
    return [(row, {c.metric: v for c, v in zip(table.columns, row.values, strict=True)
                   if c.metric is not None and v is not None and not c.ours})
            for row in table.rows if row.ours is None and row.dataset in datasets]


def grid_paper(folders: list[Path]) -> str:
    """The paper table that the grids in ``folders`` reproduce (the ``paper`` of their ``grid.yaml``); "" when
    none names one."""
    named = set()
    for folder in folders:
        spec = Path(folder) / "grid.yaml"
        if spec.is_file():
            named.add((yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("paper") or "")
    named.discard("")
    if len(named) > 1:
        raise AdbenchError(f"the folders reproduce different paper tables ({', '.join(sorted(named))}): choose one "
                           "with --paper, or --paper none")
    return named.pop() if named else ""
