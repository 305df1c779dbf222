"""LaTeX output of the report tables: the page a table is printed on, its printed width, and the booktabs
float it becomes (in one column, across the page, scaled to no less than ``MIN_SCALE``, or split by
columns), with cells escaped."""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from adbench.errors import AdbenchError


@dataclass(frozen=True)
class Page:
    """Where a LaTeX table is printed: ``\\columnwidth`` and ``\\textwidth`` (pt) of a paper template."""

    name: str
    column_pt: float
    text_pt: float


PAGES = {p.name: p for p in (
    Page("article", 229.5, 469.0),  # two-column 10 pt article, letter paper: its widths as pdflatex sets them
    Page("cvpr", 237.1, 496.8),  # CVPR, ICCV, WACV: 6.875 in text, 0.3125 in between the columns
    Page("icml", 234.9, 487.8),  # ICML: 6.75 in text, 0.25 in between the columns
    Page("neurips", 397.5, 397.5),  # NeurIPS, ICLR: one 5.5 in column
    Page("lncs", 347.1, 347.1),  # Springer LNCS (ECCV, MICCAI): one 12.2 cm column
)}


def parse_page(text: str) -> Page:
    """A page template by name (``PAGES``) or as ``COLUMN,TEXT`` widths in pt."""
    if text in PAGES:
        return PAGES[text]
    try:
        column, width = (float(v) for v in text.split(","))
    except ValueError:
        raise AdbenchError(f"--page must be one of {', '.join(PAGES)} or COLUMN,TEXT widths in pt "
                           f"(e.g. 241,505), got {text!r}") from None
    if not (MIN_PAGE_PT <= column <= width < math.inf):
        raise AdbenchError(f"--page {text}: widths in pt, the column at least {MIN_PAGE_PT:g} (the narrowest "
                           f"template's is 229.5) and no wider than the text, e.g. 241,505")
    return Page(text, column, width)


MIN_PAGE_PT = 100.0  # a column narrower than this is no page: every table would be scaled to nothing

PAD_PT = 12.0  # \\tabcolsep (6 pt) on both sides of a column
MIN_SCALE = 0.7  # a table is never printed smaller: 10 pt text at 0.7 is 7 pt; a wider one is split
# the fonts of a table cell, as selected in the 10 pt article class: roman, bold (best), and the \\scriptsize of a std
FONTS = {"rm": "\\normalsize", "bf": "\\normalsize\\bfseries", "rm7": "\\scriptsize", "bf7": "\\scriptsize\\bfseries"}
# a cell's units: font groups opening and closing, math, escapes, characters
UNIT = re.compile(r"\\textbf\{|\\underline\{|\{\\scriptsize|\{|\}|\$[^$]*\$|\\[A-Za-z]+\{\}|\\[^A-Za-z]|.")


@lru_cache(maxsize=1)
def tex_widths() -> dict[str, dict[str, float]]:
    """The printed width (pt) of each unit in each of ``FONTS``, as pdflatex sets it (``benchmarks/tex_widths.py``)."""
    return json.loads((Path(__file__).with_name("tex_widths.json")).read_text())


def text_width(text: str) -> float:
    """The printed width (pt) of a LaTeX cell ``text`` (escaped, with ``LATEX_MARKS`` and ``SMALL`` groups):
    the sum of its units' widths in their fonts (kerning aside)."""
    widths, fonts, total = tex_widths(), ["rm"], 0.0
    for unit in UNIT.findall(str(text)):
        if unit == "}":
            if len(fonts) > 1:
                fonts.pop()
        elif unit in ("\\textbf{", "\\underline{", "{", "{\\scriptsize"):
            font = fonts[-1]
            opened = {"\\textbf{": font.replace("rm", "bf"), "{\\scriptsize": font.rstrip("7") + "7"}
            fonts.append(opened.get(unit, font))
        else:
            table = widths[fonts[-1]]
            total += table.get(unit, table["M"])  # a unit not measured: as wide as an M, the widest letter
    return total


def printed_width(frame: pd.DataFrame) -> float:
    """The printed width (pt) of a LaTeX table of ``frame``'s cells and headers (``column_widths``)."""
    return sum(column_widths(frame))


def column_widths(frame: pd.DataFrame) -> list[float]:
    """The printed width (pt) of each column of ``frame``: its widest cell or last header, and the padding; the
    last column of a spanning header wider than its columns takes the rest, as ``\\multicolumn`` sets it."""
    headers = [c[-1] if isinstance(c, tuple) else c for c in frame.columns]
    widths = [max(text_width(h), *map(text_width, frame.iloc[:, j])) + PAD_PT for j, h in enumerate(headers)]
    for group in spanner_groups(frame):
        name = frame.columns[group[0]][0]
        extra = text_width(name) + PAD_PT - sum(widths[j] for j in group) if name else 0.0
        widths[group[-1]] += max(extra, 0.0)
    return widths


def spanner_groups(frame: pd.DataFrame, start: int = 0) -> list[list[int]]:
    """The columns of ``frame`` from ``start`` on in runs under one spanning header (each alone without one)."""
    groups: list[list[int]] = []
    for j in range(start, len(frame.columns)):
        column = frame.columns[j]
        spanned = isinstance(column, tuple) and column[0]
        if groups and spanned and frame.columns[groups[-1][-1]][0] == column[0]:
            groups[-1].append(j)
        else:
            groups.append([j])
    return groups


def column_parts(frame: pd.DataFrame, n_labels: int, text_pt: float) -> list[list[int]]:
    """The columns of each LaTeX table ``frame`` is printed as: all of them when the table fits ``text_pt`` at
    ``MIN_SCALE`` or larger; else the value columns in as few consecutive parts as fit that way beside the
    ``n_labels`` label columns (repeated in every part), cut only between spanning headers (inside one only
    when it alone is too wide)."""
    widths = column_widths(frame)
    room = text_pt / MIN_SCALE
    if sum(widths) <= room:
        return [list(range(len(widths)))]
    labels = list(range(n_labels))
    base, parts, current = sum(widths[:n_labels]), [], []
    for group in spanner_groups(frame, n_labels):
        if current and base + sum(widths[i] for i in current + group) > room:
            parts.append(labels + current)
            current = []
        for j in group:
            if current and base + sum(widths[i] for i in current) + widths[j] > room:
                parts.append(labels + current)
                current = []
            current.append(j)
    return parts + [labels + current]


def latex_float(frame: pd.DataFrame, n_labels: int, caption: str, label: str, notes: list[str],
                page: Page = PAGES["article"], notes_below: bool = True) -> str:
    """``frame`` (``n_labels`` left-aligned label columns, then right-aligned values) as booktabs tables,
    caption on top, ``notes`` in a footnote block under the last one (or in the caption, ``notes_below`` false): in
    one column of the page when it fits there, else across the page (``table*``); scaled down to the page's
    width when wider, never below ``MIN_SCALE``: a table wider still is split into parts (``column_parts``),
    each saying so in its caption."""
    parts = column_parts(frame, n_labels, page.text_pt)
    notes_text = re.sub(r"`([^`]*)`", r"\\texttt{\1}", latex_escape(" ".join(notes)))
    tables = []
    for k, part in enumerate(parts, start=1):
        piece = frame.iloc[:, part]
        head = caption if len(parts) == 1 else (
            f"{caption} Part {k} of {len(parts)}: split by columns to stay readable at the "
            f"{page.name} page width.")
        if not notes_below and notes and k == len(parts):
            head = f"{head} {' '.join(notes)}"
        tables.append(latex_table(piece, n_labels, head, label if k == 1 else f"{label}-part{k}",
                                  notes_text if notes_below and k == len(parts) else "", page))
    return "\n".join(tables)


def latex_table(frame: pd.DataFrame, n_labels: int, caption: str, label: str, notes: str, page: Page) -> str:
    """One booktabs float of ``frame`` (``latex_float``): a comment naming the packages it needs, a rule under
    each spanning header, the notes in a footnote block."""
    width = printed_width(frame)
    one_column = MIN_SCALE * width <= page.column_pt or page.column_pt == page.text_pt
    text = with_spanner_rules(booktabs(frame, n_labels, re.sub(r"`([^`]*)`", r"\\texttt{\1}", latex_escape(caption)),
                                       label, "table" if one_column else "table*"))
    packages = ["booktabs"]
    target = page.column_pt if one_column else page.text_pt
    if width > target:
        scale = math.floor(100 * target / width) / 100
        packages.append("graphicx")
        text = text.replace("\\begin{tabular}", f"% scaled to {scale:.2f} to fit the {page.name} page "
                            f"({target:g} pt)\n\\scalebox{{{scale:.2f}}}{{%\n\\begin{{tabular}}").replace(
            "\\end{tabular}", "\\end{tabular}}")
    if notes:
        end = "\\end{table*}" if "\\end{table*}" in text else "\\end{table}"
        text = text.replace(end, f"\\par\\smallskip\n\\parbox{{\\linewidth}}{{\\footnotesize {notes}}}\n{end}")
    return f"% needs \\usepackage{{{','.join(packages)}}}\n% {width:.1f} pt wide unscaled\n{text}"


def booktabs(frame: pd.DataFrame, n_labels: int, caption: str, label: str, environment: str) -> str:
    """``frame``'s cells (LaTeX already) as a booktabs tabular in a float: ``n_labels`` left-aligned columns, the
    rest right-aligned; with two header levels, the first said once over the columns it spans (``\\multicolumn``)."""
    def row(cells: list[str]) -> str:
        return " & ".join(cells) + " \\\\"

    header = []
    if isinstance(frame.columns, pd.MultiIndex):
        spans = [(name, len(list(run))) for name, run in itertools.groupby(frame.columns.get_level_values(0))]
        header.append(row([f"\\multicolumn{{{n}}}{{c}}{{{name}}}" if n > 1 else str(name) for name, n in spans]))
        names = list(frame.columns.get_level_values(1))
    else:
        names = list(frame.columns)
    header.append(row(list(map(str, names))))
    body = [row(list(map(str, values))) for values in frame.itertuples(index=False)]
    align = "l" * n_labels + "r" * (len(frame.columns) - n_labels)
    return "\n".join([f"\\begin{{{environment}}}[t]", "\\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
                      f"\\begin{{tabular}}{{{align}}}", "\\toprule", *header, "\\midrule", *body, "\\bottomrule",
                      "\\end{tabular}", f"\\end{{{environment}}}"]) + "\n"


def with_spanner_rules(text: str) -> str:
    """``text`` (a booktabs table) with a ``\\cmidrule`` under each named ``\\multicolumn`` header."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "\\multicolumn" not in line or "\\midrule" in lines[i + 1]:
            continue
        rules, column = [], 1
        for piece in re.split(r"(?<!\\)&", line.removesuffix("\\\\")):
            found = re.fullmatch(r"\s*\\multicolumn\{(\d+)\}\{c\}\{(.*)\}\s*", piece)
            span = int(found.group(1)) if found else 1
            if found and found.group(2):
                rules.append(f"\\cmidrule(lr){{{column}-{column + span - 1}}}")
            column += span
        if rules:
            lines.insert(i + 1, " ".join(rules))
        break
    return "\n".join(lines) + "\n"


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "±": r"$\pm$", "†": r"$^\dagger$", "‡": r"$^\ddagger$",  # marks of report.tables
                 "↳": r"$\hookrightarrow$", "Δ": r"$\Delta$", "’": "'", "§": r"\S{}",
                 "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}  # OT1 prints < as ¡


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


LATEX_MARKS = {"best": "\\textbf{{{}}}", "second": "\\underline{{{}}}"}
SMALL = "\\scriptsize"  # the std after a mean, as papers print it: 81.5 with a small ±0.7


def latex_cell(text: str) -> str:
    """A displayed cell in LaTeX: ``mean ± std`` as the mean with its std in small type beside it."""
    mean, plus, std = text.partition(" ± ")
    return f"{latex_escape(mean)}{{{SMALL}$\\pm${latex_escape(std)}}}" if plus else latex_escape(text)
