"""The result-row catalogue: typed, versioned rows; old results folders report as they did; a metric is one module."""

import importlib.util
import json
import math
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import adbench
from adbench.cli import app
from adbench.columns import ROW_VERSION, catalogue, column, json_schema, make_row, upgrade
from adbench.config import RunConfig
from adbench.errors import ConfigError
from adbench.metrics import METRICS
from adbench.results import load_rows
from tests.test_api import small

FROZEN = Path(__file__).parent / "data" / "rows_before_versions"


OLD_ARTICLE = ["--page", "241,505"]  # --page article's widths at 4aa69dd (the article class sets 229.5, 469 pt)


@pytest.mark.parametrize("folder, options", [
    ("run", ["--significance", "osd_irf_mean / mlp_tiny", *OLD_ARTICLE]),  # rows of 2026-12-07 (4aa69dd), maps kept
    ("older", OLD_ARTICLE),  # the same rows without the 16 columns older versions lacked (scorer_label, setting...)
    ("run_categories", ["--layout", "categories", "--metric", "pixel_aupro", "--format", "md"]),
])
def test_a_results_folder_from_before_the_catalogue_reports_what_it_reported_then(tmp_path, folder, options):
    """Expected files: written by `adbench report` at commit 4aa69dd, before rows had a version (the LaTeX
    re-written when table widths became measured and captions said what a table holds: only widths, scales,
    captions and one comment line moved; the Markdown when the label columns every row shares moved into its
    "All rows:" note, as in the LaTeX)."""
    source = FROZEN / folder.removesuffix("_categories")
    out = tmp_path / folder
    result = CliRunner().invoke(app, ["report", str(source), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    for expected in sorted((FROZEN / "expected").glob(f"{folder}.*")):
        written = (tmp_path / expected.name).read_text().replace("the 241,505 page", "the article page")  # a comment
        assert written == expected.read_text(), expected.name


def test_reading_an_old_row_upgrades_it_once_with_what_its_missing_columns_meant():
    old = load_rows([FROZEN / "older"])
    assert set(old["row_version"]) == {ROW_VERSION}
    row = old.iloc[0]
    # what the code before the catalogue assumed of a row without these columns
    assert (row["scorer_label"], row["aupro_impl"], row["pro_limit"], row["fps_passes"]) == (row["scorer"], "exact",
                                                                                               0.3, 1)
    assert (row["setting"], row["normalisation"], row["maps_file"], list(row["image_scores"])) == ("", "train", "",
                                                                                                   [])
    invad = old[old["scorer"] == "invad"].iloc[0]
    assert invad["scorer.steps"] == 2  # a scorer argument read back from the row's config
    records = old.to_dict("records")
    assert all(a is b for a, b in zip(upgrade(records), records, strict=True))  # a current row is left as it is
    with pytest.raises(ValueError, match="lacks dataset"):
        upgrade([{"category": "x", "scorer": "knn", "config": "{}"}])
    version2 = {**records[0], "row_version": 2, "pixel_aupimo": 0.25}  # AUPIMO between the exact bounds then
    (read,) = upgrade([version2])
    assert read["pixel_aupimo_exact"] == 0.25 and "pixel_aupimo" not in read and read["row_version"] == ROW_VERSION


def test_a_row_holds_every_declared_column_of_its_type_and_nothing_else():
    frozen = pd.read_parquet(FROZEN / "run" / "metrics.parquet").iloc[0].to_dict()
    values = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in frozen.items()
              if k not in ("pixel_aupimo", "pixel_segf1")}
    row = make_row(values)
    assert row["row_version"] == ROW_VERSION and type(row["n_test"]) is int and type(row["fps"]) is float
    assert row["image_labels"] == [int(v) for v in frozen["image_labels"]]
    with pytest.raises(ValueError, match=r"missing \['nfe'\], not in the catalogue \['colour'\]"):
        make_row({**{k: v for k, v in values.items() if k != "nfe"}, "colour": "red"})
    with pytest.raises(TypeError, match="result column n_test: int, got 'seven'"):
        make_row({**values, "n_test": "seven"})
    with pytest.raises(TypeError, match="result column holdout_below_min: bool, got 1"):
        make_row({**values, "holdout_below_min": 1})


def test_the_row_schema_takes_every_stored_row_and_refuses_an_undeclared_column():
    schema = json_schema()
    for row in load_rows([FROZEN / "run"]).to_dict("records"):
        stored = {k: (v.tolist() if isinstance(v, np.ndarray) else None if isinstance(v, float) and math.isnan(v)
                      else v) for k, v in row.items() if column(k).stored}
        jsonschema.validate(stored, schema)
        with pytest.raises(jsonschema.ValidationError, match="colour"):
            jsonschema.validate({**stored, "colour": "red"}, schema)
    cli = CliRunner().invoke(app, ["schema", "--rows"])
    assert json.loads(cli.output) == schema


def test_every_metric_of_the_table_is_a_column_with_its_header_unit_and_passes():
    by_key = {c.key: c for c in catalogue()}
    for metric in METRICS:
        entry = by_key[metric.key]
        assert (entry.header, entry.unit, entry.in_mad, entry.always) == (
            metric.header, "%", metric.in_mad and not metric.optional, not metric.optional)
    assert by_key["pixel_aupro"].passes == ("in memory", "streamed", "bootstrap")
    assert by_key["pixel_aupimo"].passes == ("in memory",) and by_key["fps"].unit == "images/s"


TOY_METRIC = '''
import numpy as np

from adbench.metrics import Metric, register_metric


def tpr_at_no_false_positive(ranked):
    """The share of anomalous images scored above every normal one."""
    c = ranked.curve
    return float(c.tp[c.fp == 0].max(initial=0) / c.n_pos)


register_metric(Metric("image_tpr0", "TPR@0FP", level="image", compute=tpr_at_no_false_positive, in_mad=False,
                       optional=True, note="Anomalous images above every normal one"))
'''


@pytest.fixture
def toy_metric(tmp_path):
    """A metric added by a module of its own, as a user's plugin adds one; taken out of the table after."""
    path = tmp_path / "toy_metric.py"
    path.write_text(TOY_METRIC)
    spec = importlib.util.spec_from_file_location("toy_metric", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    yield METRICS[-1]
    METRICS.remove(METRICS[-1])
    sys.modules.pop("toy_metric", None)


@pytest.mark.slow
def test_a_metric_is_one_module_and_one_line_and_flows_into_rows_reports_and_the_catalogue(toy_metric, tiny_synthetic,
                                                                                          tmp_path):
    assert toy_metric.key == "image_tpr0"
    cfg = small(tiny_synthetic)
    cfg["scoring"] = {**cfg["scoring"], "extra_metrics": ["image_tpr0"]}
    out = adbench.run(cfg, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache").check()
    row = out.results.iloc[0]
    scores, labels = np.asarray(row["image_scores"]), np.asarray(row["image_labels"]).astype(bool)
    assert row["image_tpr0"] == np.mean(scores[labels] > scores[~labels].max())  # computed apart from the curve
    report = CliRunner().invoke(app, ["report", str(out.folder), "--out", str(tmp_path / "t"), "--format", "md",
                                      "--metrics", "image_auroc,image_tpr0"])  # optional metrics: when asked
    assert report.exit_code == 0, report.output
    assert "| I-AUROC | TPR@0FP |" in (tmp_path / "t.md").read_text()
    listed = CliRunner().invoke(app, ["list", "columns"], terminal_width=200)
    assert "image_tpr0" in listed.output and "Anomalous images above every normal one" in listed.output
    assert "image_tpr0" in json_schema()["properties"]


def test_a_default_pixel_metric_the_streamed_pass_lacks_is_refused_before_a_large_category_is_scored(tmp_path):
    from adbench.engine.context import spill_for
    from adbench.metrics import Metric, register_metric

    register_metric(Metric("pixel_max", "max", level="pixel", compute=lambda r: 0.0, in_mad=False))
    try:
        cfg = RunConfig(runtime={"metric_memory_mb": 1}, backbone={"image_size": 64})
        with pytest.raises(ConfigError, match="pixel_max need the maps in memory"):
            spill_for(SimpleNamespace(cfg=cfg, cache_dir=tmp_path), "bottle", 1000)
    finally:
        METRICS.pop()


def test_significance_takes_the_scorer_label_alone_when_one_method_has_it(tmp_path):
    from adbench.errors import AdbenchError
    from adbench.reporting.significance import baseline_method

    rows = load_rows([FROZEN / "run"])
    assert baseline_method("osd_irf_mean", rows) == "osd_irf_mean / mlp_tiny"
    assert baseline_method("invad(steps=2)", rows) == "invad(steps=2) / mlp_tiny"
    with pytest.raises(AdbenchError, match="'mlp_tiny': no such method; choose from osd_irf_mean / mlp_tiny, "):
        baseline_method("mlp_tiny", rows)
    by_label = adbench.report(FROZEN / "run", out=tmp_path / "t", formats="md", significance="osd_irf_mean")
    assert by_label.written[0].read_text() == (FROZEN / "expected" / "run.md").read_text()


def test_a_table_from_stored_rows_imports_no_torch(tmp_path):
    """Nor scipy (the metrics' region labelling), jinja2 (pandas' Styler) or matplotlib: a table is pandas' work."""
    import subprocess

    code = ("import sys, adbench; adbench.report(sys.argv[1], out=sys.argv[2], formats='both'); "
            "print([m for m in ('torch', 'scipy', 'jinja2', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code, str(FROZEN / "run"), str(tmp_path / "t")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("ADBENCH_REQUIRE_TEX"),
                    reason="no TeX engine installed")  # CI installs one and sets ADBENCH_REQUIRE_TEX
def test_a_reports_latex_compiles_with_the_packages_it_names_and_no_missing_glyph(tmp_path):
    import re
    import subprocess

    tex = adbench.report(FROZEN / "run", out=tmp_path / "t", formats="latex", significance="osd_irf_mean",
                         page="article").written[0].read_text()
    tex += adbench.report(FROZEN / "run", out=tmp_path / "s", formats="latex", significance="osd_irf_mean",
                          page="article", notes="short", label="tab:s").written[0].read_text()
    assert "\\S{} differs from osd\\_irf\\_mean / mlp\\_tiny's (p \\textless{} 0.05); full notes in the comment" in tex
    renamed = adbench.report(FROZEN / "run", out=tmp_path / "r", formats="latex", page="article", label="tab:r",
                             rename={"Pixel": "Pixel-level (%)", "Image": "\\input{/etc/hostname}"})
    tex += renamed.written[0].read_text()  # a spanning header renamed: escaped like every other name
    assert "\\multicolumn{3}{c}{\\textbackslash{}input\\{/etc/hostname\\}}" in tex and "Pixel-level (\\%)" in tex
    packages = sorted({p for found in re.findall(r"% needs \\usepackage\{([^}]*)\}", tex) for p in found.split(",")})
    assert "(p \\textless{} 0.05)" in tex and packages
    printed = re.sub(r"^%.*$", "", tex, flags=re.MULTILINE)  # comment lines are not typeset
    assert not re.search(r"[<>|]", printed)  # OT1 text prints < > | as other glyphs, silently
    (tmp_path / "doc.tex").write_text("\\documentclass[10pt,twocolumn]{article}\n"
                                      f"\\usepackage{{{','.join(packages)}}}\n\\begin{{document}}\n{tex}\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "doc.tex"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text()
    log = log.replace("LaTeX Warning: Label(s) may have changed", "")  # a first pass: the labels are new
    for trouble in ("Missing character", "Undefined control sequence", "Overfull", "LaTeX Warning"):
        assert trouble not in log, log[log.find(trouble):][:300]


def test_a_rename_reaches_each_part_of_a_method_keeps_its_marks_and_one_matching_nothing_is_reported(tmp_path):
    done = adbench.report(FROZEN / "run", out=tmp_path / "t", formats="md",
                          rename={"knn": "kNN", "mlp_tiny": "MLP", "P-AUROC": "P-ROC", "nonesuch": "x"})
    text = done.written[0].read_text()
    assert "| kNN‡ | none |" in text  # the methods layout: the scorer column alone
    assert "| P-ROC |" in text and "knn" not in text.split("Notes:")[0]
    assert done.unused_renames == ["nonesuch"]
    categories = adbench.report(FROZEN / "run", out=tmp_path / "c", formats="md", layout="categories",
                                rename={"knn": "kNN", "mlp_tiny": "MLP", "invad": "InvAD"})
    assert "| category | osd_irf_mean / MLP | InvAD(steps=2) / MLP | kNN‡ / none |" in \
        categories.written[0].read_text() and categories.unused_renames == []  # a scorer's name before its args
    cli = CliRunner().invoke(app, ["report", str(FROZEN / "run"), "--out", str(tmp_path / "x"), "--format", "md",
                                   "--rename", "nonesuch=x"])
    assert cli.exit_code == 0 and "--rename 'nonesuch' matched no label, header or method" in cli.output


@pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("ADBENCH_REQUIRE_TEX"),
                    reason="no TeX engine installed")
def test_the_article_page_is_the_article_class_geometry_as_pdflatex_sets_it(tmp_path):
    import re
    import subprocess

    from adbench.reporting.latex import PAGES

    (tmp_path / "g.tex").write_text("\\documentclass[10pt,twocolumn]{article}\n\\begin{document}\n"
                                    "\\typeout{WIDTHS \\the\\columnwidth\\space\\the\\textwidth}x\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "g.tex"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    column, text = map(float, re.search(r"WIDTHS ([\d.]+)pt ([\d.]+)pt", done.stdout).groups())
    assert (PAGES["article"].column_pt, PAGES["article"].text_pt) == (column, text) == (229.5, 469.0)


def test_a_paper_that_no_row_reproduces_is_said_in_one_line(tmp_path):
    """The frozen rows are on a synthetic dataset named mvtec, 2 of its 15 categories: nothing is compared."""
    done = adbench.report(FROZEN / "run", out=tmp_path / "t", formats="md", paper="invad/table3")  # BMAD's
    assert done.notices == ["--paper invad/table3: no row of these results reproduces one of its cells (its rows are "
                            "on bmad; `ours` in adbench/papers/invad.yaml says which scorer and arguments do): the "
                            "tables show none of its values; --reported adds its other methods on those datasets"]
    assert adbench.report(FROZEN / "run", out=tmp_path / "u", formats="md", paper="osd_irf/table1").notices == []
    assert "Not compared with OSD-IRF" in (tmp_path / "u.md").read_text()
