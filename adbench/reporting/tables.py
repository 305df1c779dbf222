"""Paper-style tables (Markdown and LaTeX) generated only from stored result rows.

Columns are keyed by metric name, so they cannot shift. A method is everything in a row's config
except the category and the seed; config keys that differ between methods get their own column.
The averaged table averages categories per seed, then shows mean ± std over seeds (when there
are several). LaTeX uses booktabs. Marks rank rows only against the rows they compare with: the same dataset
(and category, per category), and for FPS the same device, precision and image size; on the displayed
(rounded) values, ties sharing a mark. The best is bold, the second underlined (Markdown: italic).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from adbench.atomic import atomic_write_text
from adbench.errors import AdbenchError
from adbench.metrics import FPS, Column, Metric, optional_metrics, reported
from adbench.metrics import table as metric_table
from adbench.metrics.pro import MVTEC3D_THRESHOLDS
from adbench.reporting.latex import LATEX_MARKS, PAGES, Page, latex_cell, latex_escape, latex_float
from adbench.reporting.methods import (
    NONE,
    REFERENCE_MARK,
    TRANSDUCTIVE_MARK,
    dataset_names,
    flat_row_config,
    is_reference,
    label_header,
    reference_scorers,
    scorer_labels,
    with_method_column,
    with_variant_columns,
)
from adbench.reporting.papers import FULL_CATEGORIES, PaperTable, missing_categories, paper_values, reported_rows
from adbench.reporting.significance import ALPHA, SIGNIFICANT, significance_note, significant


def scorer_arg(frame: pd.DataFrame, arg: str) -> pd.Series:
    """The value of a scorer argument (e.g. ``t``) of every row: its ``scorer.<arg>`` column (None where no
    row's scorer takes it)."""
    return frame.get(f"scorer.{arg}", pd.Series(None, index=frame.index, dtype=object))


def columns() -> dict[str, Column]:
    """Metric key -> column, in order: the metric table's metrics, mAD, then FPS (the columns every table shows
    unless ``--metrics`` chooses; shared: not to be changed)."""
    return table_columns(id(metric_table.METRICS), len(metric_table.METRICS))[0]


def all_columns() -> dict[str, Column]:
    """``columns`` with the optional metrics (``scoring.extra_metrics``) after the others, before FPS."""
    return table_columns(id(metric_table.METRICS), len(metric_table.METRICS))[1]


@functools.lru_cache(maxsize=8)
def table_columns(registry: int, n_metrics: int) -> tuple[dict[str, Column], dict[str, Column]]:
    """(``columns``, ``all_columns``) of the metric table ``registry`` (its id) while it holds ``n_metrics``
    metrics (a table reads them thousands of times; ``register_metric`` adds one)."""
    return ({c.key: c for c in (*reported(), FPS)}, {c.key: c for c in (*reported(), *optional_metrics(), FPS)})


def stat_keys(frame: pd.DataFrame) -> list[str]:
    """The columns a table of ``frame`` can show: every default one, and the optional metrics its rows hold."""
    return [k for k in all_columns() if k in columns() or k in frame]


RANKED = "measured"  # the only kind of row that marks rank
PARTIAL = "*"  # after a mean that left out a category or seed without the value (NaN): not ranked
KINDS = (RANKED, "reference", "paper", "delta", "reported")


@dataclass
class Table:
    """Rows of (label columns, {metric: (mean, std)}), each with its kind (``KINDS``: measured, a measured
    reference such as knn, a paper's value, the difference from it, another method as reported), the group it
    is ranked in and the group its FPS is ranked in (None: not ranked; FPS measured on several devices,
    precisions or sizes). Paper and reported values are as printed (percent); Δ in displayed units."""

    label_columns: list[str]
    rows: list[tuple[list[str], dict[str, tuple[float, float]]]]
    groups: list[tuple | None] = field(default_factory=list)
    fps_groups: list[tuple | None] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    paper: PaperTable | None = None  # the paper table its paper, Δ and reported rows come from
    keys: list[str] = field(default_factory=lambda: list(columns()))  # the metric columns shown
    suffixes: dict[tuple[int, str], str] = field(default_factory=dict)  # (row, metric) -> a mark after the value
    # rows a paper cell fits but averaged over part of its category set: (dataset, n, missing) -> their scorers
    uncompared: dict[tuple, list[str]] = field(default_factory=dict)

    def has_na(self) -> bool:
        """Whether a measured cell shows n/a."""
        return any(self.kinds[i] in (RANKED, "reference") and math.isnan(stats[k][0])
                   for i, (_, stats) in enumerate(self.rows) for k in self.keys)

    def shared_labels(self) -> dict[str, str]:
        """The label columns with one value on every row of ours (not the scorer, nor a per-category table's
        category): said once, in an "All rows:" note, not in a column of their own."""
        ours = [labels for (labels, _), kind in zip(self.rows, self.kinds, strict=True)
                if kind in (RANKED, "reference")]
        return {c: ours[0][j] for j, c in enumerate(self.label_columns)
                if ours and c not in ("scorer", "category") and len({row[j] for row in ours}) == 1}

    def shown_labels(self) -> list[int]:
        """The positions of the label columns shown (``shared_labels`` are not)."""
        shared = self.shared_labels()
        return [j for j, c in enumerate(self.label_columns) if c not in shared]

    def add(self, labels: list[str], stats: dict[str, tuple[float, float]], kind: str,
            group: tuple | None = None, fps_group: tuple | None = None) -> None:
        self.rows.append((labels, stats))
        self.kinds.append(kind)
        self.groups.append(group)
        self.fps_groups.append(fps_group)


def with_fps_records(frame: pd.DataFrame, records: list[dict[str, Any]]) -> pd.DataFrame:
    """``frame`` with the FPS column of each row replaced by the ``adbench fps`` record of its backbone, noise
    net and scorer (the protocol for reported speed), and ``device``/``precision``/``fps_batch_size`` by the
    record's; a row without a record keeps its run-table figure. ``fps_source`` says which."""
    by_setup = {(r["backbone"], r["noise_net"], r["scorer"]): r for r in records}
    frame = frame.assign(fps_source="run")
    labels = scorer_labels(frame)
    for i, row in frame.iterrows():
        record = by_setup.get((row["backbone"], row["noise_net"], labels[i]))
        if record is not None:
            frame.loc[i, ["fps", "device", "precision", "fps_batch_size", "fps_source"]] = [
                record["pipeline_images_per_s"], record["device"], record["precision"], record["batch_size"],
                "adbench fps"]
    return frame


def fps_group(rows: pd.DataFrame) -> tuple | None:
    """Where the FPS of ``rows`` was measured (device, precision, image size); None if not in one place or not
    to be ranked (``trusted_fps``)."""
    if not trusted_fps(rows).all():
        return None
    configs = map(flat_row_config, rows["config"])
    sizes = [c.get("backbone.image_size", c.get("image_size")) for c in configs]
    where = [rows["device"].tolist(), rows["precision"].tolist(), sizes]
    return tuple(w[0] for w in where) if all(len(set(map(str, w))) == 1 for w in where) else None


def row_kind(scorer: str) -> str:
    """A row's kind by its scorer as tables show it (``with_variant_columns`` marks references)."""
    return "reference" if is_reference(scorer) else RANKED


def averaged_table(frame: pd.DataFrame, paper: PaperTable | None = None, reported: bool = False) -> Table:
    """Methods x metrics, categories averaged per seed, then mean ± std over seeds; a mean that a category or
    seed without the metric (NaN) left out is marked ``PARTIAL`` and not ranked, and rows are ranked only
    against rows over the same dataset and category set. With ``paper``: under each row that reproduces a
    cell of it, the paper's value and Δ (ours - paper); ``reported``: then the paper's other methods on the
    datasets shown."""
    facts = frame.reset_index(drop=True)  # the rows' own columns (scorer name), one row per index
    frame, method = with_variant_columns(facts)
    table = Table(method, [], paper=paper)
    keys = stat_keys(frame)
    per_seed = frame.groupby([*method, "seed"], sort=False, dropna=False)[keys].mean()  # categories averaged
    over_seeds = per_seed.groupby(level=list(range(len(method))), sort=False, dropna=False)
    means, stds = over_seeds.mean().to_numpy(), over_seeds.std(ddof=1).to_numpy()  # one seed: std NaN
    missing_values = frame[keys].isna().to_numpy()
    datasets, category_of = frame["dataset"].to_numpy(), frame["category"].to_numpy()
    groups = frame.groupby(method, sort=False, dropna=False).indices  # first appearance, as the aggregates
    for i, (labels, positions) in enumerate(groups.items()):  # labels: a tuple, one value per method column
        stats = {k: (means[i, j], stds[i, j]) for j, k in enumerate(keys)}
        gaps = missing_values[positions]
        table.suffixes |= {(len(table.rows), k): PARTIAL for j, k in enumerate(keys)
                           if gaps[:, j].any() and not gaps[:, j].all()}
        dataset, categories = datasets[positions[0]], set(category_of[positions])
        group = frame.iloc[positions]
        table.add(list(map(str, labels)), stats, row_kind(labels[method.index("scorer")]),
                  (dataset, tuple(sorted(map(str, categories)))), fps_group(group))
        found = paper_values(paper, shared_facts(facts.iloc[positions], paper.criteria_keys())) if paper else None
        missing = missing_categories(dataset, categories)
        if found and missing:  # the paper's mean is over the full set: no Δ against a part of it
            scorer = str(labels[method.index("scorer")])
            table.uncompared.setdefault((dataset, len(categories), tuple(missing)), []).append(scorer)
        elif found:
            add_paper_rows(table, list(map(str, labels)), stats, *found)
    if paper and reported:
        for row, values in reported_rows(paper, set(frame["dataset"])):
            table.add(blank_labels(method, f"{row.label} (reported)", row.dataset), as_stats(values), "reported")
    return table


def shared_facts(rows: pd.DataFrame, keys: set[str]) -> dict[str, Any]:
    """The columns of ``keys`` every one of ``rows`` has the same value in: what an averaged row is a row of (a
    mean over categories has no category, so it reproduces no per-category cell of a paper)."""
    first = rows.iloc[0]
    return {k: first[k] for k in rows.columns if k in keys and rows[k].nunique(dropna=False) == 1}


def blank_labels(method: list[str], scorer: str, dataset: str = "") -> list[str]:
    """Label cells of a row that is not ours: a name in the scorer column; under a row of ours (no
    ``dataset``: a paper's value, Δ) the rest blank, as the row above; another method as reported: its
    ``dataset``, the rest ``NONE`` (the paper states no such setting)."""
    fill = NONE if dataset else ""
    return [scorer if c == "scorer" else dataset if c == "dataset" and dataset else fill for c in method]


def as_stats(values: dict[str, float]) -> dict[str, tuple[float, float]]:
    return {k: (values.get(k, float("nan")), float("nan")) for k in columns()}


def add_paper_rows(table: Table, labels: list[str], stats: dict[str, tuple[float, float]], label: str,
                   values: dict[str, float]) -> None:
    """The paper's value of each metric it prints for this row, then Δ = ours - paper on the displayed values
    (FPS: not compared, measured on other hardware)."""
    method = table.label_columns
    table.add(blank_labels(method, f"↳ paper: {label}"), as_stats(values), "paper")
    delta = {k: (shown(k, stats[k][0]) - v if k != FPS.key and not math.isnan(stats[k][0]) else float("nan"),
                 float("nan")) for k, v in values.items()}
    table.add(blank_labels(method, "↳ Δ ours - paper"), {k: delta.get(k, (float("nan"),) * 2)
                                                                    for k in columns()}, "delta")


def per_category_table(frame: pd.DataFrame, different: dict[str, set[Any]] | None = None) -> Table:
    """Methods x categories x metrics; FPS only in the averaged table (one network on images of one size runs
    at one speed: per category, its FPS differs by timing noise alone). ``different``: metric -> the rows that
    differ from a baseline's (``significant``), a ``SIGNIFICANT`` mark on that metric where every seed does."""
    different = different or {}
    frame, method = with_variant_columns(frame)
    table = Table([*method, "category"], [], keys=[k for k in columns() if k != FPS.key])
    keys = stat_keys(frame)
    grouped = frame.groupby([*method, "category"], sort=False, dropna=False)
    means, stds = grouped[keys].mean().to_numpy(), grouped[keys].std(ddof=1).to_numpy()  # one row: std NaN
    datasets = frame["dataset"].to_numpy()
    for i, (labels, positions) in enumerate(grouped.indices.items()):  # first appearance, as the aggregates
        stats = {k: (means[i, j], stds[i, j]) for j, k in enumerate(keys)}
        for key, rows in different.items():
            if set(frame.index[positions]) <= rows:
                table.suffixes[(len(table.rows), key)] = SIGNIFICANT
        table.add(list(map(str, labels)), stats, row_kind(labels[method.index("scorer")]),
                  (datasets[positions[0]], labels[-1]))  # no FPS column: not ranked
    return table


def shown(key: str, mean: float) -> float:
    """The value as the table displays it (percent or not, one decimal): what marks rank."""
    return round((100 if all_columns()[key].percent else 1) * mean, 1)


def fmt(key: str, mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    scale = 100 if all_columns()[key].percent else 1
    text = f"{shown(key, mean):.1f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.1f}"


def cell(table: Table, i: int, key: str) -> str:
    """Row ``i``'s ``key`` cell as displayed: ours by ``fmt``; a paper's value as printed; Δ signed; ``NONE``
    where the paper prints none."""
    kind, (mean, std) = table.kinds[i], table.rows[i][1].get(key, (float("nan"), float("nan")))
    if kind in (RANKED, "reference"):
        return fmt(key, mean, std)
    if math.isnan(mean):
        return NONE
    return f"{mean:+.1f}" if kind == "delta" else f"{mean:g}" if key == FPS.key else f"{mean:.1f}"


def markdown(table: Table, style: Style | None = None) -> str:
    """``table`` in Markdown, without the label columns every row shares (``all_rows_note`` says them)."""
    style = style or Style()
    shown = table.shown_labels()
    header = [md_cell(style.name(h)) for h in (*(label_header(table.label_columns[j]) for j in shown),
                                               *(all_columns()[k].header for k in table.keys))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    marks = rank_marks(table)
    for i, (labels, _) in enumerate(table.rows):
        cells = [MARKDOWN_MARKS.get(marks.get((i, k)), "{}").format(cell(table, i, k)) + table.suffixes.get((i, k), "")
                 for k in table.keys]
        lines.append("| " + " | ".join([*(md_cell(style.name(labels[j])) for j in shown), *cells]) + " |")
    return "\n".join(lines)


def md_cell(text: str) -> str:
    """``text`` as one Markdown table cell: a ``|`` escaped, line breaks as spaces (a category or method named
    with either would otherwise break the table's rows)."""
    return re.sub(r"\r\n|\r|\n", " ", str(text)).replace("|", "\\|")


def all_rows_note(table: Table, style: Style | None = None) -> list[str]:
    """The note that says the label columns every row shares (``Table.shared_labels``); none when none are."""
    style = style or Style()
    fixed = "; ".join(f"{style.name(label_header(c))}: {style.name(v)}" for c, v in table.shared_labels().items())
    return [f"All rows: {fixed}."] if fixed else []


MARKDOWN_MARKS = {"best": "**{}**", "second": "_{}_"}
RICH_STYLES = {"best": "bold", "second": "underline"}


def rich_table(table: Table, title: str = "") -> Any:
    """``table`` for a terminal: a ``rich`` table with the same columns and marks as the Markdown one."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    shown = table.shown_labels()
    out = RichTable(title=title, title_justify="left", caption=" ".join(all_rows_note(table)) or None,
                    caption_justify="left")
    for j in shown:
        out.add_column(label_header(table.label_columns[j]))
    for k in table.keys:
        out.add_column(columns()[k].header, justify="right")
    marks = rank_marks(table)
    for i, (labels, _) in enumerate(table.rows):
        cells = [f"[{RICH_STYLES[marks[(i, k)]]}]{cell(table, i, k)}[/]" if (i, k) in marks else cell(table, i, k)
                 for k in table.keys]
        out.add_row(*(escape(labels[j]) for j in shown), *cells)
    return out


def markdown_table(frame: pd.DataFrame, per_category: bool = True, paper: PaperTable | None = None,
                   reported: bool = False, style: Style | None = None) -> str:
    """Averaged table (and per-category rows) in Markdown; metrics in %, FPS in images/s; with ``paper``, its
    values and Δ under the rows that reproduce them (``averaged_table``)."""
    style = style or Style()
    averaged = style.averaged(frame, paper, reported)
    parts = ["### Mean over categories", "", markdown(averaged, style), ""]
    tables = [averaged]
    if per_category:
        tables.append(style.per_category(frame))
        parts += ["### Per category", "", markdown(tables[-1], style), ""]
    notes = all_rows_note(averaged, style) + table_notes(frame, averaged, fps=FPS.key in averaged.keys,
                                                         na=any(t.has_na() for t in tables))
    notes += [significance_note(style.significance, frame)] if per_category and style.significance else []
    return "\n".join(parts) + "\n" + markdown_notes(notes)


def markdown_notes(notes: list[str]) -> str:
    """A table's notes under it in Markdown: one bullet each."""
    return "Notes:\n\n" + "".join(f"- {n}\n" for n in notes)


BMAD_ORDER = ("Brain", "Liver", "RESC", "OCT2017", "RSNA", "Camelyon16")  # InvAD's BMAD table


def bmad_matrix(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[int, tuple[str, str]], str]]:
    """InvAD's BMAD table: one row per method; for each BMAD dataset det. (image AU-ROC) and, where it has
    masks, loc. (pixel AU-ROC); then the mean of those columns and FPS. Each number is the mean over seeds;
    marks rank the methods within each column. Returns (displayed cells, marks)."""
    present = [c for c in BMAD_ORDER if c in set(frame["category"])]
    if not present:
        raise AdbenchError(f"the bmad layout is InvAD's table of the BMAD datasets ({', '.join(BMAD_ORDER)}); these "
                           f"results hold none (categories {', '.join(map(str, frame['category'].unique()))}): use "
                           "--layout methods or categories")
    frame = with_method_column(frame)
    per = frame.groupby(["method", "category"], sort=False)[["image_auroc", "pixel_auroc", "fps"]].mean()
    values = {}
    for category in present:
        rows = per.xs(category, level="category")
        values[(category, "det.")] = rows["image_auroc"]
        if rows["pixel_auroc"].notna().any():
            values[(category, "loc.")] = rows["pixel_auroc"]
    table = pd.DataFrame(values)
    table[("", "mean")] = table.mean(axis=1, skipna=False)
    table[("", "FPS")] = per["fps"].groupby("method", sort=False).mean()
    marks = {}
    for column in table.columns:
        key = "fps" if column[1] == "FPS" else "image_auroc"
        ranked = best_two({i: shown(key, v) for i, (method, v) in enumerate(table[column].items())
                           if not math.isnan(v) and not is_reference(method)})
        marks |= {(i, column): mark for i, mark in ranked.items()}
    cells = pd.DataFrame({c: [fmt("fps" if c[1] == "FPS" else "image_auroc", v, float("nan")) for v in table[c]]
                          for c in table.columns}, index=table.index)
    return cells, marks


def bmad_tables(frame: pd.DataFrame, label: str, caption: str | None = None, style: Style | None = None
                ) -> tuple[str, str]:
    """(Markdown, LaTeX) of the BMAD layout (``bmad_matrix``)."""
    cells, marks = bmad_matrix(frame)
    notes = ["det.: image AU-ROC, loc.: pixel AU-ROC (where the dataset has masks), mean: of the columns before "
             "it.", *table_notes(frame, na=cells.eq("n/a").any().any())]
    return matrix_tables(cells, marks, "method", "BMAD", notes, label, caption, style, table_subject(frame))


def category_matrix(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, dict[tuple[int, str], str]]:
    """The per-class layout of papers' appendices: one row per category (and their mean), one column per
    method, one ``metric``; marks rank the methods of each row. Returns (displayed cells, marks)."""
    if metric not in columns():
        raise AdbenchError(f"--metric must be one of {list(columns())}, got {metric!r}")
    frame = with_method_column(frame)
    per_seed = frame.groupby(["method", "category", "seed"], sort=False)[metric].mean()
    values = per_seed.groupby(["method", "category"], sort=False).mean().unstack("method")
    values.loc["mean"] = frame.groupby(["method", "seed"], sort=False)[metric].mean().groupby("method").mean()
    marks = {}
    for i, category in enumerate(values.index):
        ranked = best_two({m: shown(metric, v) for m, v in values.loc[category].items()
                           if not math.isnan(v) and not is_reference(m)})
        marks |= {(i, m): mark for m, mark in ranked.items()}
    cells = pd.DataFrame({m: [fmt(metric, values.loc[c, m], float("nan")) for c in values.index]
                          for m in values.columns}, index=values.index)
    return cells, marks


def category_tables(frame: pd.DataFrame, metric: str, label: str, caption: str | None = None,
                    style: Style | None = None) -> tuple[str, str]:
    """(Markdown, LaTeX) of the per-class layout (``category_matrix``) of ``metric``."""
    cells, marks = category_matrix(frame, metric)
    notes = table_notes(frame, fps=metric == FPS.key, na=cells.eq("n/a").any().any())
    return matrix_tables(cells, marks, "category", f"{columns()[metric].header} per category", notes, label,
                         caption, style, table_subject(frame))


def matrix_tables(cells: pd.DataFrame, marks: dict[tuple[int, Any], str], corner: str, title: str,
                  notes: list[str], label: str, caption: str | None, style: Style | None = None,
                  subject: str = "") -> tuple[str, str]:
    """(Markdown, LaTeX) of a matrix layout: the rows of ``cells`` under the heading ``corner``, one column
    per column of ``cells`` (two-level headers where those are pairs), ``marks`` keyed (row number, column);
    a rule above the row of means; labels and headers named by ``style``; the caption says ``title`` and
    ``subject`` (``table_subject``)."""
    style = style or Style()
    pairs = isinstance(cells.columns, pd.MultiIndex)
    corner = style.name(corner)
    shown = [tuple(map(style.name, c)) if pairs else style.name(c) for c in cells.columns]

    def marked(styles: dict[str, str], text: Callable[[str], str]) -> list[list[str]]:
        return [[text(style.name(row)), *(styles.get(marks.get((i, c)), "{}").format(text(cells.iloc[i][c]))
                                          for c in cells.columns)] for i, row in enumerate(cells.index)]

    names = [md_cell(" ".join(c).strip() if pairs else c) for c in shown]
    md = "\n".join([f"| {md_cell(corner)} | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1),
                     *("| " + " | ".join(r) + " |" for r in marked(MARKDOWN_MARKS, md_cell))])
    headers = [("", corner), *(tuple(map(latex_escape, c)) for c in shown)] if pairs \
        else [corner, *map(latex_escape, shown)]
    tex_cells = pd.DataFrame(marked(LATEX_MARKS, latex_escape),
                             columns=pd.MultiIndex.from_tuples(headers) if pairs else headers)
    lead = f"{caption} " if caption else ""
    tex = styled_float(tex_cells, 1, f"{lead}{title}{subject}.", label, notes, style)
    tex = re.sub(r"^mean & ", "\\\\midrule\nmean & ", tex, flags=re.MULTILINE)
    return f"### {title}\n\n{md}\n\n{markdown_notes(notes)}", tex


def table_subject(frame: pd.DataFrame) -> str:
    """What a caption says the table holds: ``(dataset(s), N categories, setting)``."""
    datasets = ", ".join(dict.fromkeys(dataset_names(frame)))
    n = frame["category"].nunique()
    settings = [SETTINGS.get(x, x) for x in sorted(set(frame["setting"])) if x]  # "": not recorded
    return f" ({datasets}, {n} categor{'y' if n == 1 else 'ies'}{''.join(f', {x}' for x in settings)})"


SETTINGS = {"multiclass": "multi-class", "singleclass": "single-class"}


def styled_float(frame: pd.DataFrame, n_labels: int, caption: str, label: str, notes: list[str], style: Style,
                 shared: tuple[str, ...] = ()) -> str:
    """``latex_float`` on ``style``'s page with its notes as ``style.notes`` says: under the table or in the
    caption, ``shared`` (what every row shares) first; or ``short``: one line of units and marks under it, the
    full notes kept as comments above it, ``shared`` in the caption."""
    if style.notes != "short":
        return latex_float(frame, n_labels, caption, label, [*shared, *notes], style.page, style.notes == "below")
    comment = "".join(f"% note: {n}\n" for n in notes)
    return comment + latex_float(frame, n_labels, " ".join([caption, *shared]), label, [short_notes(notes)],
                                 style.page)


def short_notes(notes: list[str]) -> str:
    """One line: units, seeds, and what each mark in the table means (the full notes say how)."""
    shown = []
    for note in notes:
        if note == "Metrics in %." or note.startswith(("Mean ± std over", "n/a:")):
            shown.append(note.split(" (e.g.")[0].rstrip("."))
        elif note.startswith(REFERENCE_MARK):
            shown.append(f"{REFERENCE_MARK} reference without diffusion, not ranked")
        elif note.startswith((TRANSDUCTIVE_MARK, "All rows transductive")):
            shown.append(f"{note.split(':')[0]}: test-set normalisation")
        elif note.startswith(SIGNIFICANT):  # "§ differs from X's on the same test images ..."
            differs = note.split("'s on the same")[0]
            shown.append(f"{differs}'s (p < {ALPHA:g})")
        elif note.startswith("↳ paper"):
            shown.append(f"{note.split(' (')[0]}; Δ = ours - paper")
    return "; ".join(shown) + "; full notes in the comment above."


def rank_marks(table: Table) -> dict[tuple[int, str], str]:
    """(row, metric) -> 'best' or 'second' among the measured rows of the row's group with a value (higher is
    better for every column), on the displayed values; a group of one row is not ranked. Reference rows (knn),
    a paper's values, Δ and reported rows are never ranked."""
    marks = {}
    for key in table.keys:
        groups = table.fps_groups if key == FPS.key else table.groups
        members: dict[tuple, list[int]] = {}
        for i, group in enumerate(groups):
            if group is not None and table.kinds[i] == RANKED and not math.isnan(table.rows[i][1][key][0]) \
                    and table.suffixes.get((i, key)) != PARTIAL:
                members.setdefault(group, []).append(i)
        for rows in members.values():
            marks |= {(i, key): mark for i, mark in best_two({i: shown(key, table.rows[i][1][key][0])
                                                              for i in rows}).items()}
    return marks


def best_two(values: dict[Any, float]) -> dict[Any, str]:
    """'best' and 'second' for the keys with the highest and second-highest value (ties share a mark); no
    marks among fewer than two values."""
    if len(values) < 2:
        return {}
    ranked = sorted(set(values.values()), reverse=True)
    return {k: "best" if v == ranked[0] else "second" for k, v in values.items() if v in ranked[:2]}


NOTES = ("below", "caption", "short")  # a table's notes: a footnote block under it, the caption, one line


@dataclass(frozen=True)
class Style:
    """How tables are printed: the LaTeX page they go on and where their notes go (``NOTES``), the names
    shown for labels and headers (``names``: as displayed -> as wanted, e.g. ``osd_irf_mean`` -> ``OSD-IRF``;
    a label keeps its marks) and the metric columns of the methods layout (``metrics``; empty: all)."""

    page: Page = PAGES["article"]
    notes: str = "below"
    names: dict[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    significance: str = ""  # a method the per-category table tests every other against (``significant``)
    renamed: set = field(default_factory=set, compare=False, repr=False)  # the ``names`` that matched something
    built: list = field(default_factory=list, compare=False, repr=False)  # (what it is of, what was built once)

    def averaged(self, frame: pd.DataFrame, paper: PaperTable | None, reported: bool) -> Table:
        """``averaged_table`` of ``frame`` with the ``chosen`` columns, built once for a frame shown in both
        formats and checked for paper rows."""
        return self.once(("averaged", frame, paper, reported),
                         lambda: self.chosen(averaged_table(frame, paper, reported)))

    def per_category(self, frame: pd.DataFrame) -> Table:
        """``per_category_table`` of ``frame`` with the ``chosen`` columns and ``significance``'s marks, built
        once for a frame shown in both formats."""
        return self.once(("per category", frame),
                         lambda: self.chosen(per_category_table(frame, self.differences(frame))))

    def differences(self, frame: pd.DataFrame) -> dict[str, set[Any]]:
        """``significant`` against ``significance`` (nothing without one), computed once for a frame shown in
        both formats."""
        return self.once(("differences", frame),
                         lambda: significant(frame, self.significance) if self.significance else {})

    def once(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()``, or what it gave for ``key`` before (its frames compared by identity: the same object)."""
        def same(a: Any, b: Any) -> bool:
            return a == b if isinstance(a, (str, bool)) else a is b

        for seen, built in self.built:
            if len(seen) == len(key) and all(map(same, seen, key)):
                return built
        self.built.append((key, build()))
        return self.built[-1][1]

    def __post_init__(self) -> None:
        if self.notes not in NOTES:
            raise AdbenchError(f"--notes must be one of {', '.join(NOTES)}, got {self.notes!r}")
        unknown = [m for m in self.metrics if m not in all_columns()]
        if unknown:
            raise AdbenchError(f"--metrics: unknown column(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(all_columns())}")

    def name(self, text: str) -> str:
        """``text`` as shown: renamed when ``names`` has it, or has a part of a method label (``knn‡ / none``:
        ``knn``, ``none``) or a scorer's name (``osd_irf_mean`` of ``osd_irf_mean(t=500)``), each without its
        marks, which it keeps. Tables, layouts and figure legends all show names through this."""
        if not self.names:
            return str(text)
        whole = self._renamed(str(text), by_scorer=False)
        return whole if whole != str(text) else " / ".join(map(self._renamed, str(text).split(" / ")))

    def _renamed(self, text: str, by_scorer: bool = True) -> str:
        """``text`` renamed whole, or (``by_scorer``) its scorer name before its arguments
        (``osd_irf_mean(t=500)``)."""
        bare = text.rstrip(TRANSDUCTIVE_MARK + REFERENCE_MARK + SIGNIFICANT)
        if bare not in self.names:
            bare = bare.split("(")[0]
            if not by_scorer or "(" not in text or bare not in self.names:
                return text
        self.renamed.add(bare)
        return self.names[bare] + text[len(bare):]

    def unused_names(self) -> list[str]:
        """The ``names`` that matched no label, header or method (after the tables were written)."""
        return [n for n in self.names if n not in self.renamed]

    def chosen(self, table: Table) -> Table:
        """``table`` with only the chosen metric columns (all when none were chosen)."""
        if self.metrics:
            held = {k for _, stats in table.rows for k in stats}
            table.keys = [k for k in all_columns() if k in self.metrics and k in held]
        return table


def header_of(column: Column) -> tuple[str, str]:
    """The two-level LaTeX header of a metric column: (Image or Pixel, its name within the level)."""
    if isinstance(column, Metric):
        return column.level.capitalize(), column.header.removeprefix(f"{column.level[0].upper()}-")
    return "", column.header


def latex(table: Table, caption: str, label: str, notes: list[str], style: Style) -> str:
    """One LaTeX table (``latex_float``) with a two-level header (Image | Pixel | mAD | FPS); label columns
    that are the same on every row are said once, in the first note (``all_rows_note``)."""
    marks = rank_marks(table)
    shown = table.shown_labels()
    cells: dict[tuple[str, str], list[str]] = {
        ("", latex_escape(style.name(label_header(table.label_columns[j])))): [
            latex_escape(style.name(labels[j])) for labels, _ in table.rows] for j in shown}
    for key in table.keys:
        level, header = header_of(all_columns()[key])
        cells[(latex_escape(style.name(level)), latex_escape(style.name(header)))] = [
            LATEX_MARKS.get(marks.get((i, key)), "{}").format(latex_cell(cell(table, i, key)))
            + latex_escape(table.suffixes.get((i, key), ""))
            for i in range(len(table.rows))]
    frame = pd.DataFrame(cells)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return styled_float(frame, len(shown), caption, label, notes, style, tuple(all_rows_note(table, style)))


def latex_tables(frame: pd.DataFrame, label: str = "tab:adbench", per_category: bool = True,
                 caption: str | None = None, paper: PaperTable | None = None, reported: bool = False,
                 style: Style | None = None) -> str:
    """The averaged table (and the per-category one) in LaTeX; ``caption`` leads the captions; ``paper`` and
    ``reported`` as ``averaged_table``; ``style``: the page and where the notes go."""
    style = style or Style()
    averaged = style.averaged(frame, paper, reported)
    lead = f"{caption} " if caption else ""
    subject = table_subject(frame)
    text = latex(averaged, f"{lead}Mean over categories{subject}.", label,
                 table_notes(frame, averaged, fps=FPS.key in averaged.keys, na=averaged.has_na()), style)
    if per_category:
        categories = style.per_category(frame)
        text += "\n" + latex(categories, f"{lead}Per category{subject}.", label + "-categories",
                             table_notes(frame, categories, fps=False, na=categories.has_na())
                             + ([significance_note(style.significance, frame)] if style.significance else []), style)
    return text


FORMATS = ("md", "latex", "both")


LAYOUTS = ("methods", "categories", "bmad")


def write_tables(frame: pd.DataFrame, out_path: Path, fmt: str = "both", per_category: bool = True,
                 caption: str | None = None, label: str | None = None, layout: str = "methods",
                 metric: str = "image_auroc", paper: PaperTable | None = None, reported: bool = False,
                 style: Style | None = None) -> list[Path]:
    """The tables of ``frame`` at ``out_path`` (suffix ``.md`` and/or ``.tex``, each written atomically);
    ``caption`` leads the LaTeX captions, ``label`` is the LaTeX label (default ``tab:<file stem>``).
    ``layout``: ``methods`` (methods x metrics, as the papers' main tables), ``categories`` (categories x
    methods for one ``metric``, as per-class appendix tables) or ``bmad`` (InvAD's BMAD table). ``paper``: a
    transcribed paper table whose values and Δ go under our rows (methods layout), with its other methods
    when ``reported``. ``style``: the LaTeX page and where the notes go."""
    if fmt not in FORMATS:
        raise AdbenchError(f"--format must be md, latex or both, got {fmt!r}")
    if layout not in LAYOUTS:
        raise AdbenchError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    label = label or f"tab:{out_path.stem}"
    if layout == "categories":
        md, tex = category_tables(frame, metric, label, caption, style)
    elif layout == "bmad":
        md, tex = bmad_tables(frame, label, caption, style)
    else:
        md = markdown_table(frame, per_category, paper, reported, style) if fmt != "latex" else ""
        tex = latex_tables(frame, label, per_category, caption, paper, reported, style) if fmt != "md" else ""
    written = []
    for suffix, text, wanted in ((".md", md, ("md", "both")), (".tex", tex, ("latex", "both"))):
        if fmt in wanted:
            written.append(out_path.with_suffix(suffix))
            atomic_write_text(written[-1], text)
    return written


def footnote(frame: pd.DataFrame, table: Table | None = None) -> str:
    """The notes of a table of ``frame`` (``table_notes``) as one paragraph."""
    return " ".join(table_notes(frame, table))


def table_notes(frame: pd.DataFrame, table: Table | None = None, fps: bool = True, na: bool = True) -> list[str]:
    """What the numbers of a table of ``frame`` mean, only what applies: units, FPS (when the table shows it),
    protocols, seeds, n/a (when a cell shows it), the setting, the transductive flag; for a ``table`` with a
    paper's rows, where they come from and how Δ is taken."""
    notes = ["Metrics in %."]
    limits = sorted(set(frame["pro_limit"].dropna()))
    if limits and limits != [0.3]:
        notes.append(f"AU-PRO integrated up to FPR {'/'.join(f'{x:g}' for x in limits)} (the papers: 0.3).")
    if (frame["aupro_impl"] == "mvtec3d").any():
        notes.append(f"AU-PRO{' of the rows with aupro impl mvtec3d' if frame['aupro_impl'].nunique() > 1 else ''} as "
                     f"MVTec 3D-AD's evaluation code computes it ({MVTEC3D_THRESHOLDS} thresholds at evenly spaced "
                     "ranks of the normal pixels' scores, tied scores as steps), not exact.")
    if fps:
        notes.append(fps_note(frame))
    protocols = []
    for name, group in frame.groupby("protocol", sort=True):
        row = group.iloc[0]
        scores = "/".join(sorted(group["image_score"].unique()))
        normalised = f", {row['normalisation']} normalisation" if row["normalisation"] != "train" else ""
        protocols.append(f"{name} = image score {scores}, smoothing sigma {row['smoothing_sigma']:g}, "
                         f"pool {int(row['pool_size'])}{normalised}")
    notes.append(f"Protocol{'s' if len(protocols) > 1 else ''}: {'; '.join(protocols)}.")
    seeds = frame["seed"].nunique()
    if seeds > 1:
        notes.append(f"Mean ± std over {seeds} seeds.")
    if na:
        notes.append("n/a: not defined for this data (e.g. no pixel masks).")
        if frame["dataset"].eq("bmad").any():
            notes.append("mAD of BMAD rows: the mean of the metrics that exist (the three image metrics for "
                         "OCT2017, RSNA and Camelyon16, which have no masks).")
    notes += [n for n in (weighting_note(frame), setting_note(frame), invad_note(frame), ader_note(frame),
                          none_note(table), compared_note(table)) if n]
    if reference_scorers(frame["scorer"]).any():
        notes.append(f"{REFERENCE_MARK} reference without diffusion, not ranked: nearest-neighbour distance to the "
                     "training feature bank of the same backbone (PatchCore-style greedy coreset), image score = "
                     "max of the map.")
    if table is not None and (paper := paper_note(table)):
        notes.append(paper)
    if frame["transductive"].all():
        notes.append("All rows transductive: image-score components min-max normalised over the test set (as the "
                     "official InvAD code).")
    elif frame["transductive"].any():
        notes.append(f"{TRANSDUCTIVE_MARK} transductive: image-score components min-max normalised over the test "
                     "set (as the official InvAD code); others use held-out normal training images.")
    return notes


def compared_note(table: Table | None) -> str:
    """What a ``PARTIAL`` mark means, and that rows over different category sets of a dataset rank apart."""
    if table is None:
        return ""
    notes = [f"{PARTIAL} mean over the categories (and seeds) where the metric is defined, fewer than the row's: "
             "not ranked."] if PARTIAL in table.suffixes.values() else []
    ranked = {g for g, kind in zip(table.groups, table.kinds, strict=True) if g is not None and kind == RANKED}
    datasets = [g[0] for g in ranked]  # an averaged table's groups: (dataset, its category set)
    if "category" not in table.label_columns and len(datasets) > len(set(datasets)):
        notes.append("Rows averaging different category sets of a dataset are ranked apart, each set on its own.")
    return " ".join(notes)


def none_note(table: Table | None) -> str:
    """What a ``NONE`` cell and a blank label cell of ``table`` mean, where it has them."""
    if table is None:
        return ""
    shown = table.shown_labels()
    labels = any(labels[j] == NONE for labels, _ in table.rows for j in shown)
    values = any(cell(table, i, k) == NONE for i in range(len(table.rows)) for k in table.keys)
    parts = [*["a setting or argument the row's method does not have"] * labels,
             *["a value the paper does not print"] * values]
    blank = any(kind in ("paper", "delta") for kind in table.kinds) and len(shown) > 1
    return " ".join([f'A "{NONE}" cell: {" or ".join(parts)}.' if parts else "",
                     "A blank label cell: as the row above." if blank else ""]).strip()


def fps_note(frame: pd.DataFrame) -> str:
    """How the FPS column was measured, where, and whether it is ranked (``fps_group``)."""
    devices = sorted(frame["device"].unique())
    batches = "/".join(map(str, sorted({int(b) for b in frame["fps_batch_size"]})))
    passes = "/".join(map(str, sorted({int(p) for p in frame["fps_passes"]})))
    where = devices[0] if len(devices) == 1 else f"DIFFERENT devices ({'; '.join(devices)}): not comparable"
    if (fps_sources(frame) == "adbench fps").all():
        return (f"FPS in images/s from `adbench fps` (the full pipeline, batch {batches}, synchronised, after a "
                f"warm-up) on {where}.")
    unranked = " FPS timed on a CPU during the run is not ranked." if not trusted_fps(frame).all() else ""
    return (f"FPS in images/s (backbone + scorer + post-processing on one batch of {batches} test images, the "
            f"median of {passes} timed pass(es) after a warm-up; `adbench fps` is the protocol for reported "
            f"speed) on {where}.{unranked}")


def fps_sources(frame: pd.DataFrame) -> pd.Series:
    return frame["fps_source"]


def trusted_fps(frame: pd.DataFrame) -> pd.Series:
    """Rows whose FPS may be ranked: from an ``adbench fps`` record, or timed on a GPU (a CPU's timings during
    a run move with whatever else the machine does)."""
    return (fps_sources(frame) == "adbench fps") | ~frame["device"].astype(str).str.startswith("cpu")


INVAD_SUBSETS = {
    "code": "code = evaluations evenly over [0, T-1] ({0, 500, 999} for 3 steps), the last step to abar = 0, "
            "as the official code",
    "even": "even = targets [333, 666, 999] for 3 steps, a third-party reading of the paper (unverified)",
}


def invad_note(frame: pd.DataFrame) -> str:
    """Which InvAD timestep subset the table's invad rows use."""
    invad = frame["scorer"].str.split("(").str[0] == "invad"  # older rows hold the label in ``scorer``
    subsets = sorted(set(scorer_arg(frame[invad], "subset").fillna("code")))
    return f"InvAD timesteps: {'; '.join(INVAD_SUBSETS[s] for s in subsets)}." if subsets else ""


def ader_note(frame: pd.DataFrame) -> str:
    if not frame["protocol"].str.startswith("ader").any():
        return ""
    return ("ader: maps upsampled with align_corners=True, masks resized bilinearly then > 0.5, as ADer; "
            "adbench's metrics are exact, ADer's binned (adeval 50 strips, 21-threshold pixel F1-max).")


def setting_note(frame: pd.DataFrame) -> str:
    """Multi-class (one noise net for the categories it lists) or single-class (one per category)."""
    notes = []
    for setting, group in frame[frame["setting"].astype(bool)].groupby("setting", sort=True):  # "": unrecorded
        if setting == "multiclass":
            sets = sorted(group["trained_on"].unique())
            notes.append(f"{SETTINGS[setting]} = one noise net trained on the normal images of "
                         + "; ".join(f"{len(s.split(','))} categor{'y' if ',' not in s else 'ies'} "
                                     f"({s.replace(',', ', ')})" for s in sets)
                         + ", scoring each category (the papers' main tables)")
        else:
            notes.append(f"{SETTINGS['singleclass']} = one noise net per category")
    return f"Setting: {'; '.join(notes)}." if notes else ""


def weighting_note(frame: pd.DataFrame) -> str:
    """How image-score components were weighted: standardised by held-out normals, summed."""
    held = frame[~frame["transductive"]]
    if held.empty:
        return ""
    low, high = int(held["n_holdout"].min()), int(held["n_holdout"].max())
    small = "; fewer than 20 in a small category, flagged holdout_below_min" if held["holdout_below_min"].any() else ""
    return ("Image-score components are each standardised by the mean and std of the category's held-out "
            f"normal training images ({low if low == high else f'{low}-{high}'} per category{small}) and summed "
            "with equal weights.")


def paper_note(table: Table) -> str:
    """Where a table's paper, Δ and reported rows come from; empty when it has none."""
    paper = table.paper
    skipped = "; ".join(
        f"{', '.join(dict.fromkeys(scorers))} average {n} of the {len(FULL_CATEGORIES[dataset])} {dataset} categories "
        f"the paper's means are over (missing {', '.join(missing)})"
        for (dataset, n, missing), scorers in table.uncompared.items())
    skipped = f"Not compared with {paper.cite()}: {skipped}." if paper and skipped else ""
    if paper is None or not set(table.kinds) & {"paper", "reported"}:
        return skipped
    text = (f"↳ paper: as printed in {paper.cite()} ({paper.title.split(': ', 1)[-1]}); Δ = ours - paper on the "
            "displayed values, FPS not compared")
    text += f" (the paper's: {paper.device})." if paper.device else "."
    if "reported" in table.kinds:
        text += f" Rows marked (reported): other methods as printed in {paper.cite()}, not measured here."
    text += " Paper, Δ and reported rows are not ranked." + (f" {paper.note}" if paper.note else "")
    return f"{text} {skipped}".strip()
