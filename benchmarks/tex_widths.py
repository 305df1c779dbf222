"""Measure the printed width (pt) of every text a report table cell can hold, as pdflatex sets it in the
10 pt article class (Computer Modern, OT1): each printable character and each escape of
``adbench.reporting.latex.LATEX_ESCAPES``, in the table's four fonts (roman and bold, normal size and the
``\\scriptsize`` of a std). Writes ``adbench/reporting/tex_widths.json``, which ``printed_width`` sums.

    python benchmarks/tex_widths.py      # needs pdflatex (texlive-latex-base)
"""

from __future__ import annotations

import json
import re
import string
import subprocess
import tempfile
from pathlib import Path

from adbench.reporting.latex import FONTS, LATEX_ESCAPES

OUT = Path(__file__).resolve().parents[1] / "adbench" / "reporting" / "tex_widths.json"


def texts() -> list[str]:
    """Every unit ``latex.text_width`` splits a cell into (``latex.UNIT``): plain characters, escapes, the space."""
    plain = [c for c in string.printable[:95] if c not in LATEX_ESCAPES and c != " "]
    return plain + sorted(set(LATEX_ESCAPES.values()) - {"'"}) + ["x x", "xx"]


def measure() -> dict[str, dict[str, float]]:
    units = texts()
    lines = [f"\\sbox0{{{select} {unit}}}\\typeout{{W {font} {i} \\the\\wd0}}"
             for font, select in FONTS.items() for i, unit in enumerate(units)]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "w.tex").write_text("\\documentclass[10pt,twocolumn]{article}\n\\begin{document}\n"
                                            + "\n".join(lines) + "\n\\end{document}\n")
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "w.tex"], cwd=folder, check=True,
                       capture_output=True, timeout=120)
        log = (Path(folder) / "w.log").read_text()
    widths: dict[str, dict[str, float]] = {font: {} for font in FONTS}
    for font, i, pt in re.findall(r"^W (\w+) (\d+) ([\d.]+)pt$", log, flags=re.MULTILINE):
        widths[font][units[int(i)]] = float(pt)
    for table in widths.values():
        table[" "] = round(table.pop("x x") - table.pop("xx"), 5)
    return widths


if __name__ == "__main__":
    OUT.write_text(json.dumps(measure(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
