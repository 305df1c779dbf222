"""Tables from stored rows: golden files pin the format; LaTeX structure checks; report CLI."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adbench.cli import app
from adbench.config import RunConfig, parse_scorer
from adbench.engine.build import scorer_columns
from adbench.metrics import metric_keys
from adbench.reporting.papers import FULL_CATEGORIES, paper_table
from adbench.reporting.tables import (
    Style,
    averaged_table,
    category_matrix,
    category_tables,
    footnote,
    fps_group,
    latex_tables,
    markdown_table,
    per_category_table,
    rank_marks,
    rich_table,
    with_fps_records,
)
from adbench.results import upgraded
from tests.golden_numbers import GOLDEN

MVTEC = FULL_CATEGORIES["mvtec"]  # the 15 categories a paper's MVTec AD mean is over


def fake_rows(categories=("bottle", "metal_nut")):
    """Rows as the engine writes them: 2 scorers x 2 categories x 2 seeds, one transductive scorer (with more
    ``categories``, the same means over them)."""
    rows = []
    for s_idx, (scorer, transductive) in enumerate([("osd_irf_mean(t=500)", False), ("invad(steps=3)", True)]):
        for c_idx, category in enumerate(categories):
            for seed in (0, 1):
                base = 0.80 + 0.05 * s_idx + 0.02 * c_idx / (len(categories) - 1) + 0.01 * seed
                spec = parse_scorer(scorer.replace("(", ":").rstrip(")"))
                cfg = RunConfig(data={"dataset": "mvtec"}, seed=seed, categories=[category],
                                scoring={"scorers": [spec]})
                rows.append({
                    "dataset": "mvtec", "category": category, "scorer": spec["name"], "scorer_label": scorer,
                    **scorer_columns(spec),
                    "backbone": "efficientnet_b4",
                    "noise_net": "dit_gigant", "protocol": "invad", "transductive": transductive,
                    **{k: base + 0.001 * i for i, k in enumerate(metric_keys())}, "mad": base + 0.003,
                    "fps": 100.0 + 10 * s_idx, "seed": seed, "device": "NVIDIA H100 80GB HBM3",
                    "setting": "multiclass", "trained_on": "bottle,metal_nut", "n_holdout": 20 + 5 * c_idx,
                    "holdout_below_min": False,
                    "fps_batch_size": 64, "fps_passes": 5, "image_score": "nll+diff", "smoothing_sigma": 0.0,
                    "pool_size": 1,
                    "config": json.dumps(cfg.to_dict(), sort_keys=True),
                })
    return upgraded(pd.DataFrame(rows))


@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_golden_tables(fmt):
    frame = fake_rows()
    text = markdown_table(frame) if fmt == "md" else latex_tables(frame, "tab:golden")
    golden = GOLDEN / f"table.{fmt}"
    if os.environ.get("ADBENCH_UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        golden.write_text(text)
    assert text == golden.read_text()


def test_latex_is_well_formed():
    text = latex_tables(fake_rows(), "tab:x")
    assert text.count(r"\begin{table") == text.count(r"\end{table") == 2
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 2
    assert text.count(r"\toprule") == text.count(r"\bottomrule") == 2
    body = re.sub(r"\\label\{[^}]*\}|^%.*$|\{%$", "", text, flags=re.MULTILINE)  # comments; % ends a line
    assert not re.search(r"(?<!\\)_", body), "unescaped underscore"
    assert not re.search(r"(?<!\\)%", body), "unescaped percent"
    rows = [line for line in text.splitlines() if line.endswith("\\\\") and "multicolumn" not in line]
    # averaged: the scorer + 9 metric columns (dataset, backbone, noise net and protocol are the same on every
    # row: in the notes); per category: one more label column, no FPS
    assert {line.count("&") for line in rows} == {9}
    assert text.count("{") == text.count("}")
    assert "All rows: dataset: mvtec; backbone: efficientnet\\_b4; noise net: dit\\_gigant; protocol: invad." in text
    assert r"& \multicolumn{3}{c}{Image} & \multicolumn{4}{c}{Pixel} &" in text  # two-level header
    assert "\\multicolumn{4}{c}{Pixel} & \\multicolumn{2}{c}{} \\\\\n\\cmidrule(lr){2-4} \\cmidrule(lr){5-8}\n" in text
    assert text.index(r"\caption{") < text.index(r"\begin{tabular}")  # caption on top
    assert r"\begin{table*}[t]" in text and "\\scalebox{0.83" in text  # 561.6 pt (pdflatex's box) on 469 pt
    assert text.startswith("% needs \\usepackage{booktabs,graphicx}\n")
    held = " (mvtec, 2 categories, multi-class)"  # what the tables hold
    assert rf"\caption{{Mean over categories{held}.}}" in text and rf"\caption{{Per category{held}.}}" in text
    assert r"\texttt{adbench fps}" in text and "`" not in text


def test_seeds_give_mean_and_std_and_best_is_bold():
    frame = fake_rows()
    table = averaged_table(frame)
    (labels, stats), _ = table.rows
    # per seed: mean over the two categories; then mean and std over the seeds
    assert stats["image_auroc"][0] == pytest.approx((0.80 + 0.82 + 0.81 + 0.83) / 4)
    assert stats["image_auroc"][1] == pytest.approx(pd.Series([0.81, 0.82]).std())
    md = markdown_table(frame)
    assert "± " in md and "Mean ± std over 2 seeds" in md and "invad(steps=3)†" in md
    tex = latex_tables(frame)
    assert r"\textbf{86.5{\scriptsize$\pm$0.7}}" in tex and r"\underline{81.5{\scriptsize$\pm$0.7}}" in tex


def test_varying_config_keys_become_columns():
    frame = fake_rows()
    lr = [json.dumps({**json.loads(c), "train": {**json.loads(c)["train"], "lr": 0.001 * (i % 2 + 1)}})
          for i, c in enumerate(frame["config"])]
    frame = frame.assign(config=lr)
    table = averaged_table(frame)
    assert "train.lr" in table.label_columns and len(table.rows) == 4


def test_different_devices_are_flagged():
    frame = fake_rows()
    frame.loc[0, "device"] = "cpu (2 threads)"
    assert "DIFFERENT devices" in markdown_table(frame)


def test_report_cli_reads_stored_results(tmp_path):
    frame = fake_rows()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame.to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "reports" / "main"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--format", "both"])
    assert result.exit_code == 0, result.output
    assert out.with_suffix(".md").read_text() == (GOLDEN / "table.md").read_text()
    assert out.with_suffix(".tex").read_text() == (GOLDEN / "table.tex").read_text().replace("tab:golden", "tab:main")
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "No results in" in missing.output
    assert "metrics.parquet is missing" in missing.output


def test_captions_say_which_invad_timesteps_and_what_ader_does():
    frame = fake_rows()
    note = footnote(frame)
    assert "InvAD timesteps: code = evaluations evenly over [0, T-1] ({0, 500, 999} for 3 steps)" in note
    assert "unverified" not in note and "align_corners" not in note
    assert ("Setting: multi-class = one noise net trained on the normal images of 2 categories (bottle, metal_nut), "
            "scoring each category (the papers' main tables).") in note
    assert "Setting: single-class = one noise net per category." in footnote(frame.assign(setting="single"))
    assert ("standardised by the mean and std of the category's held-out normal training images (20-25 per "
            "category) and summed with equal weights.") in note
    assert "(3 per category; fewer than 20" in footnote(frame.assign(n_holdout=3, holdout_below_min=True))
    even = frame.assign(**{"scorer.subset": frame["scorer.subset"].replace("code", "even")}, protocol="ader")
    note = footnote(even)
    assert "even = targets [333, 666, 999] for 3 steps, a third-party reading of the paper (unverified)" in note
    assert "code =" not in note and "align_corners=True, masks resized bilinearly then > 0.5" in note


def test_knn_rows_are_marked_as_references():
    frame = fake_rows()
    knn = frame[frame["scorer_label"] == "osd_irf_mean(t=500)"].assign(scorer="knn", scorer_label="knn",
                                                                        noise_net="none")
    knn["config"] = [c.replace('"epochs": 300', '"epochs": 1') for c in knn["config"]]  # knn cells: default nets
    text = markdown_table(pd.concat([frame, knn]))
    # a reference: never marked, though it ties with the second best (no train.epochs column either)
    assert "| knn‡ | none | 81.5 ± 0.7 |" in text  # dataset, backbone and protocol: the same on every row
    assert "| osd_irf_mean(t=500) | dit_gigant | _81.5 ± 0.7_ |" in text
    assert "- All rows: dataset: mvtec; backbone: efficientnet_b4; protocol: invad.\n" in text
    epochs = markdown_table(pd.concat([frame.assign(config=[c.replace('"epochs": 300', '"epochs": 5')
                                                            for c in frame["config"]]).iloc[:1], frame, knn]))
    assert "| epochs |" in epochs and "| knn‡ | none | - |" in epochs  # knn rows show "-"
    assert "- A \"-\" cell: a setting or argument the row's method does not have.\n" in epochs
    assert "‡ reference without diffusion, not ranked: nearest-neighbour distance" in text
    assert r"knn$^\ddagger$" in latex_tables(pd.concat([frame, knn]))


def test_rows_written_before_scorer_label_render_the_same():
    """Older result files hold the label in ``scorer`` and have no ``scorer_label``: once upgraded, the same table."""
    frame = fake_rows()
    legacy = frame.assign(scorer=frame["scorer_label"]).drop(columns=["scorer_label", "row_version"])
    assert markdown_table(upgraded(legacy)) == markdown_table(frame)


def test_write_tables_writes_the_formats_asked(tmp_path):
    from adbench.errors import AdbenchError
    from adbench.reporting.tables import write_tables

    frame = fake_rows()
    assert write_tables(frame, tmp_path / "t", "md") == [tmp_path / "t.md"] and not (tmp_path / "t.tex").exists()
    assert (tmp_path / "t.md").read_text() == (GOLDEN / "table.md").read_text()
    assert write_tables(frame, tmp_path / "u", "latex") == [tmp_path / "u.tex"]
    assert "tab:u" in (tmp_path / "u.tex").read_text()
    with pytest.raises(AdbenchError, match="--format must be md, latex or both, got 'pdf'"):
        write_tables(frame, tmp_path / "v", "pdf")


def test_marks_rank_within_a_dataset_and_category_on_displayed_values_fps_within_a_device():
    frame = fake_rows()
    visa = frame.assign(dataset="visa", **{k: frame[k] - 0.3 for k in metric_keys()})  # worse everywhere
    table = per_category_table(pd.concat([frame, visa], ignore_index=True))
    marks = rank_marks(table)
    by_label = {tuple(labels[i] for i in (0, 1, 5)): row for row, (labels, _) in enumerate(table.rows)}
    for dataset in ("mvtec", "visa"):  # each dataset and category has its own best: visa's are not all unmarked
        for category in ("bottle", "metal_nut"):
            assert marks[(by_label[(dataset, "invad(steps=3)†", category)], "image_auroc")] == "best"
            assert marks[(by_label[(dataset, "osd_irf_mean(t=500)", category)], "image_auroc")] == "second"
    averaged = averaged_table(frame)
    averaged.rows[1][1]["image_auroc"] = (averaged.rows[0][1]["image_auroc"][0] + 0.0004, float("nan"))
    tied = rank_marks(averaged)  # 81.54 and 81.5 are both shown 81.5: both best
    assert tied[(0, "image_auroc")] == tied[(1, "image_auroc")] == "best"
    averaged.fps_groups = [("NVIDIA H100", "bf16", 256), ("cpu (2 threads)", "fp32", 256)]
    assert (0, "fps") not in rank_marks(averaged) and (1, "fps") not in rank_marks(averaged)
    one = averaged_table(frame[frame["scorer"] == "invad"])
    assert rank_marks(one) == {}  # a group of one row is not ranked


def test_fps_is_grouped_by_device_precision_and_size():
    frame = fake_rows()
    assert fps_group(frame) == ("NVIDIA H100 80GB HBM3", "", 256)  # precision not recorded in these rows
    mixed = frame.assign(device=["cpu (2 threads)"] + list(frame["device"][1:]))
    assert fps_group(mixed) is None


def test_the_terminal_table_has_the_markdown_cells_and_marks():
    from rich.console import Console

    table = averaged_table(fake_rows())
    console = Console(width=400, record=True, color_system="standard", force_terminal=True)
    console.print(rich_table(table))
    text = console.export_text(clear=False)
    assert "invad(steps=3)†" in text and "86.5 ± 0.7" in text and "81.5 ± 0.7" in text
    styled = console.export_text(styles=True)
    assert "\x1b[1m86.5 ± 0.7" in styled and "\x1b[4m81.5 ± 0.7" in styled  # best bold, second underlined


def scales(tex: str) -> list[float]:
    return [float(x) for x in re.findall(r"\\scalebox\{([0-9.]+)\}", tex)]


def test_a_latex_table_takes_one_column_the_page_or_is_scaled_never_below_0_7_and_split_when_wider():
    from adbench.reporting.latex import PAGES, column_widths, latex_float
    from adbench.reporting.tables import category_tables

    one_seed = fake_rows().query("seed == 0")
    wide = latex_tables(one_seed, "t", per_category=False)  # 10 columns: 475 pt, as pdflatex prints it
    assert "\\begin{table*}" in wide and scales(wide) == [0.98]  # floor(100 * 469 / 475) / 100
    narrow = category_tables(one_seed.query("scorer == 'knn' or scorer == 'invad'"), "image_auroc", "t")[1]
    assert "\\begin{table}" in narrow and "scalebox" not in narrow and "graphicx" not in narrow
    # a one-column template (NeurIPS) never spans two columns; a narrower one scales more
    assert "table*" not in latex_tables(one_seed, "t", per_category=False, style=Style(PAGES["neurips"]))
    # Computer Modern 10 pt: digits 5 pt, the period 2.77779 pt, m 8.33336 pt (cmr10.tfm), 6 pt \tabcolsep each side
    frame = pd.DataFrame({"m": ["a", "b"], **{f"c{j}": ["12.3", "45.6"] for j in range(14)}})
    widths = column_widths(frame)
    label, value = 8.33336 + 12, 3 * 5 + 2.77779 + 12
    assert widths[0] == pytest.approx(label, abs=1e-4) and widths[1] == pytest.approx(value, abs=1e-4)
    page = PAGES["article"]  # 229.5 pt columns, 469 pt text
    per_part = int((page.text_pt / 0.7 - label) // value)  # value columns beside the label column, at 0.7
    assert per_part == 21
    wider = pd.DataFrame({"m": ["a", "b"], **{f"{k}{j}": ["12.3", "45.6"] for k in "abc" for j in range(10)}})
    for n_values, environment, scale in (
            (4, ["table"], []),  # 139 pt: in a column
            (7, ["table"], []),  # 229 pt: just fits a column
            (10, ["table"], [0.72]),  # 318 pt: a column at 229.5 / 318 >= 0.7
            (14, ["table*"], []),  # 437 pt: not a column at 0.7 (306 pt), the page unscaled
            (20, ["table*"], [0.76]),  # 616 pt: the page at 0.76
            (30, ["table*", "table"], [0.72, 0.79])):  # 914 pt: split, 21 + 9 value columns; the second fits a column
        piece = wider.iloc[:, :1 + n_values]
        tex = latex_float(piece, 1, "Cap.", "tab:w", ["A note."], page)
        assert re.findall(r"\\begin\{(table\*?)\}", tex) == environment, n_values
        assert scales(tex) == scale, n_values
        assert tex.count("A note.") == 1 and tex.index("A note.") > tex.rindex("\\end{tabular}")
    heads = re.findall(r"^m & .*\\\\$", tex, flags=re.MULTILINE)  # the label column heads every part
    assert len(heads) == 2 and [h.count("&") for h in heads] == [21, 9]
    assert "Part 1 of 2: split by columns" in tex and "\\label{tab:w-part2}" in tex


def test_a_split_never_cuts_a_spanning_header():
    from adbench.reporting.latex import PAGES, column_parts

    # spanners of 6 columns of 29.78 pt (179 pt each) beside a 20.3 pt label: three make 557 pt, four 735 pt, over
    # 469 / 0.7 = 670 pt: three spanners then one, not 21 columns then 3 (which would cut the fourth spanner)
    columns = [("", "m")] + [(level, f"c{j}") for level in ("Image", "Pixel", "Region", "Time") for j in range(6)]
    frame = pd.DataFrame([["a", *["12.3"] * 24]], columns=pd.MultiIndex.from_tuples(columns))
    parts = column_parts(frame, 1, PAGES["article"].text_pt)
    assert parts == [[0, *range(1, 19)], [0, *range(19, 25)]]
    # a spanner wider than a whole part is cut only inside itself
    lone = pd.DataFrame([["a", *["12.3"] * 30]],
                        columns=pd.MultiIndex.from_tuples([("", "m")] + [("Image", f"c{j}") for j in range(30)]))
    assert [len(p) - 1 for p in column_parts(lone, 1, PAGES["article"].text_pt)] == [21, 9]


def test_notes_list_only_what_applies_and_rules_frame_the_spanners_and_the_mean_row():
    from adbench.reporting.tables import category_tables, table_notes

    frame = fake_rows()
    tex = category_tables(frame, "pixel_aupro", "tab:z")[1]
    assert "\\midrule\nmean & " in tex and tex.count("\\midrule") == 2  # under the header, above the mean
    assert "FPS" not in tex and "n/a" not in tex  # no FPS column, no n/a cell: no note on either
    assert "\\caption{AU-PRO per category (mvtec, 2 categories, multi-class).}" in tex
    assert "\\parbox{\\linewidth}{\\footnotesize Metrics in" in tex
    with_na = frame.assign(pixel_aupro=float("nan"))
    assert "n/a: not defined" in category_tables(with_na, "pixel_aupro", "tab:z")[1]
    assert "n/a: not defined" not in category_tables(with_na, "image_auroc", "tab:z")[1]
    in_caption = latex_tables(frame, "tab:c", per_category=False, style=Style(notes="caption"))
    assert "\\caption{Mean over categories (mvtec, 2 categories, multi-class). All rows: dataset: mvtec" in in_caption
    assert "parbox" not in in_caption
    one_seed = table_notes(frame.query("seed == 0"))
    assert not any("seeds" in n for n in one_seed) and not any("n/a" in n for n in table_notes(frame, na=False))
    assert not any("AU-PRO integrated" in n for n in table_notes(frame.assign(pro_limit=0.3)))
    assert "AU-PRO integrated up to FPR 0.05 (the papers: 0.3)." in table_notes(frame.assign(pro_limit=0.05))
    all_transductive = table_notes(frame.assign(transductive=True, normalisation="test-minmax"))
    assert any(n.startswith("All rows transductive") for n in all_transductive)
    assert "pool 1, test-minmax normalisation" in " ".join(all_transductive)
    from adbench.reporting.methods import with_variant_columns
    assert not with_variant_columns(frame.assign(transductive=True))[0]["scorer"].str.contains("†").any()


def test_short_notes_are_one_line_of_units_and_marks_and_captions_say_what_the_table_holds():
    from adbench.reporting.tables import averaged_table, category_tables, table_notes

    frame = fake_rows()
    short = latex_tables(frame, "t", per_category=False, style=Style(notes="short"))
    footnote_block = re.findall(r"\\parbox\{\\linewidth\}\{\\footnotesize (.*)\}", short)
    assert footnote_block == ["Metrics in \\%; Mean $\\pm$ std over 2 seeds; $^\\dagger$ transductive: test-set "
                              "normalisation; full notes in the comment above."]
    averaged = averaged_table(frame)
    full = table_notes(frame, averaged, na=averaged.has_na())
    assert re.findall(r"^% note: (.*)$", short, flags=re.MULTILINE) == full  # nothing lost
    assert ("\\caption{Mean over categories (mvtec, 2 categories, multi-class). All rows: dataset: mvtec; "
            "backbone: efficientnet\\_b4; noise net: dit\\_gigant; protocol: invad.}") in short
    single = frame.assign(setting="singleclass", dataset="visa").query("category == 'bottle'")
    tex = category_tables(single, "pixel_aupro", "tab:z", style=Style(notes="short"))[1]
    assert "\\caption{AU-PRO per category (visa, 1 category, single-class).}" in tex
    assert "\\caption{Mean over categories (mvtec, 2 categories).}" in latex_tables(frame.assign(setting=""), "t")


def test_fps_is_shown_once_per_method_and_ranked_only_from_a_gpu_or_fps_records():
    frame = fake_rows()
    assert "fps" not in per_category_table(frame).keys and "FPS" not in latex_tables(frame).split("Per category")[1]
    cpu = frame.assign(device="cpu (2 threads)")
    marks = rank_marks(averaged_table(cpu))
    assert (1, "image_auroc") in marks and not any(k == "fps" for _, k in marks)
    assert "FPS timed on a CPU during the run is not ranked." in footnote(cpu)
    records = [{"backbone": "efficientnet_b4", "noise_net": "dit_gigant", "scorer": s, "pipeline_images_per_s": v,
                "device": "cpu (2 threads)", "precision": "fp32", "batch_size": 64}
               for s, v in (("osd_irf_mean(t=500)", 50.0), ("invad(steps=3)", 20.0))]
    measured = rank_marks(averaged_table(with_fps_records(cpu, records)))
    assert measured[(0, "fps")] == "best" and measured[(1, "fps")] == "second"


def cvpr_tables(page: str = "cvpr") -> list[str]:
    """Every LaTeX layout of fake_rows on CVPR's page (or ``page``): methods (two seeds, one seed), categories,
    BMAD."""
    from adbench.reporting.latex import PAGES
    from adbench.reporting.tables import bmad_tables, category_tables

    frame, style = fake_rows(), Style(PAGES[page])
    bmad = frame.assign(dataset="bmad", category=frame["category"].map({"bottle": "Brain", "metal_nut": "RSNA"}))
    return [latex_tables(frame, "tab:x", style=style), latex_tables(frame.query("seed == 0"), "tab:y", style=style),
            category_tables(frame, "pixel_aupro", "tab:z", style=style)[1],
            category_tables(frame, "mad", "tab:w", style=style)[1], bmad_tables(bmad, "tab:b", style=style)[1]]


def test_no_layout_is_scaled_below_0_7_on_a_cvpr_page():
    for tex in cvpr_tables():
        for k, x in enumerate(scales(tex)):
            assert 0.7 <= x < 1, (k, x)
        assert "\\resizebox" not in tex  # scaled by a stated factor, never to a width


@pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("ADBENCH_REQUIRE_TEX"),
                    reason="no TeX engine installed")  # CI installs one and sets ADBENCH_REQUIRE_TEX: never skipped
def test_every_latex_layout_compiles_in_a_two_column_cvpr_page_without_overfull_boxes(tmp_path):
    document = ("\\documentclass[10pt,twocolumn]{article}\n"  # CVPR's text and column widths
                "\\usepackage[textwidth=6.875in,columnsep=0.3125in]{geometry}\n\\usepackage{booktabs}\n"
                "\\usepackage{graphicx}\n\\begin{document}\n" + "\n".join(cvpr_tables()) + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(document)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "t.log").read_text()
    assert "Overfull" not in log, log[log.find("Overfull"):][:300]


@pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("ADBENCH_REQUIRE_TEX"),
                    reason="no TeX engine installed")
def test_latex_widths_are_pdflatex_box_widths_and_a_table_scaled_no_less_than_0_7_takes_one_column(tmp_path):
    """Every table of every layout on every page: its stated width against the width pdflatex gives its tabular
    (kerning, which the width table leaves out, moves the Computer Modern text of these cells by well under 1 %),
    one column exactly when it fits there at 0.7 or larger, never wider than where it is put."""
    from adbench.reporting.latex import MIN_SCALE, PAGES

    found = []  # (page, environment, stated width, scale, tabular)
    for name, page in PAGES.items():
        for tex in cvpr_tables(name):
            for float_text in re.findall(r"% needs.*?\\end\{table\*?\}", tex, flags=re.S):
                width = float(re.search(r"% ([\d.]+) pt wide unscaled", float_text).group(1))
                scale = float((re.findall(r"\\scalebox\{([\d.]+)\}", float_text) or [1])[0])
                tabular = re.search(r"\\begin\{tabular\}.*?\\end\{tabular\}", float_text, flags=re.S).group(0)
                found.append((page, "table*" if "\\begin{table*}" in float_text else "table", width, scale, tabular))
    body = "\n".join(f"\\sbox0{{{t[-1]}}}\\typeout{{T {i} \\the\\wd0}}" for i, t in enumerate(found))
    (tmp_path / "w.tex").write_text("\\documentclass[10pt,twocolumn]{article}\n\\usepackage{booktabs}\n"
                                    f"\\begin{{document}}\n{body}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "w.tex"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    measured = {int(i): float(pt) for i, pt in re.findall(r"^T (\d+) ([\d.]+)pt$", (tmp_path / "w.log").read_text(),
                                                          flags=re.MULTILINE)}
    assert done.returncode == 0 and len(measured) == len(found) > 20, done.stdout[-2000:]
    environments = set()
    for i, (page, environment, width, scale, _) in enumerate(found):
        assert width == pytest.approx(measured[i], rel=0.01, abs=0.5), (page.name, i)
        one_column = MIN_SCALE * measured[i] <= page.column_pt or page.column_pt == page.text_pt
        assert environment == ("table" if one_column else "table*"), (page.name, i, measured[i])
        assert scale >= MIN_SCALE and scale * measured[i] <= (page.column_pt if one_column else page.text_pt) + 0.5
        environments.add(environment)
    assert environments == {"table", "table*"}  # both kinds met


def test_report_caption_label_and_readable_config_differences(tmp_path):
    frame = fake_rows()
    args = [json.dumps({**json.loads(c), "noise_net": {**json.loads(c)["noise_net"], "args": {"width": 128,
                                                                                          "depth": 2 + i % 2}}})
            for i, c in enumerate(frame["config"])]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame.assign(config=args).to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--format", "latex",
                                      "--caption", "Ablation of depth.", "--label", "tab:depth"])
    assert result.exit_code == 0, result.output
    text = out.with_suffix(".tex").read_text()
    assert r"\caption{Ablation of depth. Mean over categories (" in text and r"\label{tab:depth}" in text
    assert "depth=2, width=128" in text and "depth=3, width=128" in text and '"depth"' not in text


def test_metric_vs_t_panels_show_seed_bands_percent_axes_and_one_legend(monkeypatch, tmp_path):
    import matplotlib.text
    from matplotlib.collections import PolyCollection

    from adbench.reporting import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or [path])
    frame = fake_rows()
    frame = pd.concat([frame.assign(**{"scorer.t": t, "mad": frame["mad"] + 0.001 * t}) for t in (100, 500)])
    plots.plot_metrics_vs(frame, "t", tmp_path / "vs_t", "sweep")
    fig = figures[0]
    mad_axis = next(ax for ax in fig.axes if ax.get_title() == "mAD")
    lines = {line.get_label(): line.get_ydata().tolist() for line in mad_axis.get_lines()}
    for method, rows in frame.groupby("scorer"):  # the mean over categories, then over seeds
        expected = 100 * rows.groupby(["scorer.t", "seed"])["mad"].mean().groupby("scorer.t").mean()
        assert lines[method] == pytest.approx(expected.tolist())  # named as the tables name it
    style = Style(names={"osd_irf_mean": "OSD-IRF"})  # one rename reaches the legend and the table alike
    plots.plot_metrics_vs(frame, "t", tmp_path / "renamed", "sweep", name=style.name)
    legend = [t.get_text() for t in figures[-1].legends[0].get_texts()]
    assert "OSD-IRF" in legend and "osd_irf_mean" not in legend
    assert "| OSD-IRF(t=500) |" in markdown_table(fake_rows(), style=style)
    assert any(isinstance(c, PolyCollection) for c in mad_axis.collections)  # 2 seeds: a band
    assert mad_axis.get_ylabel() == "%" and len(fig.legends) == 1 and fig._suptitle.get_text().endswith("2 seeds")
    assert "mvtec, mean over 2 categories" in fig._suptitle.get_text()
    # drawn at the article's text width (469 pt as pdflatex sets it: 6.49 in), printed unscaled, every text >= 7 pt
    assert fig.get_figwidth() == pytest.approx(469 / 72.27)
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    assert texts and min(t.get_fontsize() for t in texts) >= 7
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len({ax.get_ylim() for ax in visible}) == 1  # every panel is a percent: one y range
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"invad", "osd_irf_mean"}  # as the tables name them
    assert visible[-1].get_xlabel() == "t (of T = 1000)"
    figures.clear()
    plots.plot_metrics_vs(frame, "t", tmp_path / "vs_t", width="column")
    assert figures[0].get_figwidth() == pytest.approx(229.5 / 72.27)


def test_report_takes_the_fps_column_from_fps_records(tmp_path):
    frame = fake_rows()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame.to_parquet(run_dir / "metrics.parquet")
    record = {"scorer": "invad(steps=3)", "backbone": "efficientnet_b4", "noise_net": "dit_gigant",
              "pipeline_images_per_s": 320.0, "device": "NVIDIA H200", "precision": "bf16", "batch_size": 64}
    (tmp_path / "fps.json").write_text(json.dumps({"config": {}, "records": [record]}))
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--fps", str(tmp_path / "fps.json"), "--out", str(out),
                                      "--format", "md", "--no-per-category"])
    assert result.exit_code == 0, result.output
    text = out.with_suffix(".md").read_text()
    assert "| 320.0 ± 0.0 |" in text and "| 100.0 ± 0.0 |" in text  # invad: the record; osd_irf_mean: its run
    assert "DIFFERENT devices (NVIDIA H100 80GB HBM3; NVIDIA H200): not comparable" in text
    merged = with_fps_records(frame, [record])
    assert set(merged.loc[merged["scorer"] == "invad", "fps_source"]) == {"adbench fps"}
    assert "FPS in images/s from `adbench fps`" in footnote(with_fps_records(frame[frame["scorer"] == "invad"],
                                                                             [record]))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--fps", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "is not an `adbench fps` records file" in result.output


def test_the_categories_layout_ranks_methods_within_each_category(tmp_path):
    frame = fake_rows()
    cells, marks = category_matrix(frame, "image_auroc")
    assert cells.index.tolist() == ["bottle", "metal_nut", "mean"]
    assert cells.loc["bottle"].tolist() == ["80.5", "85.5"] and cells.loc["mean"].tolist() == ["81.5", "86.5"]
    assert [marks[(i, "invad(steps=3)†")] for i in range(3)] == ["best"] * 3
    assert [marks[(i, "osd_irf_mean(t=500)")] for i in range(3)] == ["second"] * 3
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame.to_parquet(run_dir / "metrics.parquet")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--layout", "categories", "--metric", "mad",
                                      "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "| metal_nut | _82.8_ | **87.8** |" in (tmp_path / "c.md").read_text()
    tex = (tmp_path / "c.tex").read_text()
    assert r"metal\_nut & \underline{82.8} & \textbf{87.8} \\" in tex and r"\caption{mAD per category (" in tex
    bad = CliRunner().invoke(app, ["report", str(run_dir), "--layout", "categories", "--metric", "auroc"])
    assert bad.exit_code == 2 and "--metric must be one of" in bad.output


def with_knn(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with knn rows whose metrics equal osd_irf_mean's (a reference that ties with a method)."""
    osd = frame[frame["scorer_label"] == "osd_irf_mean(t=500)"]
    return pd.concat([frame, osd.assign(scorer="knn", scorer_label="knn", noise_net="none")], ignore_index=True)


def test_paper_values_and_deltas_sit_under_the_rows_that_reproduce_them():
    paper = paper_table("osd_irf/table1")
    text = markdown_table(with_knn(fake_rows(MVTEC)), per_category=False, paper=paper)
    lines = text.splitlines()
    # fake_rows: osd_irf_mean averages to 0.815 + 0.001 i on metric i (seeds 0 and 1, 15 categories), mAD 0.818;
    # the paper prints OSD-IRF on MVTec-AD as 99.0 99.6 98.4 97.7 54.3 57.4 93.5 85.7 133
    printed = [99.0, 99.6, 98.4, 97.7, 54.3, 57.4, 93.5, 85.7]
    ours = [81.5, 81.6, 81.7, 81.8, 81.9, 82.0, 82.1, 81.8]
    delta = " | ".join(f"{o - p:+.1f}" for o, p in zip(ours, printed, strict=True))
    at = next(i for i, line in enumerate(lines) if line.startswith("| osd_irf_mean(t=500) | dit_gigant |"))
    assert lines[at + 1] == "| ↳ paper: OSD-IRF (Ours) |  | " + " | ".join(map(str, printed)) + " | 133 |"
    assert lines[at + 2] == f"| ↳ Δ ours - paper |  | {delta} | - |"  # the noise net: as the row above
    assert delta.startswith("-17.5 | -18.0 | -16.7")
    at = next(i for i, line in enumerate(lines) if line.startswith("| invad(steps=3)† |"))
    assert lines[at + 1].startswith("| ↳ paper: InvAD [CVPR’26] |  | 99.0 | 99.6 | 98.5 |")
    assert lines[at + 2].startswith("| ↳ Δ ours - paper |  | -12.5 | -13.0 | -11.8 |")
    assert "- A \"-\" cell: a value the paper does not print. A blank label cell: as the row above.\n" in text
    assert "(reported)" not in text and "Rows marked (reported)" not in text
    assert "↳ paper: as printed in OSD-IRF (arXiv 2604.18393) Table 1" in text
    tex = latex_tables(with_knn(fake_rows(MVTEC)), per_category=False, paper=paper)
    assert r"$\hookrightarrow$ paper: InvAD [CVPR'26] &  & 99.0 & 99.6 & 98.5" in tex
    assert r"$\hookrightarrow$ $\Delta$ ours - paper &  & -17.5 & -18.0 & -16.7" in tex


def test_reported_rows_and_references_take_no_marks():
    """The paper's other methods score above ours and knn ties with the second: the marks stay with ours."""
    text = markdown_table(with_knn(fake_rows(MVTEC)), per_category=False, paper=paper_table("osd_irf/table1"),
                          reported=True)
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]  # the rows under the header
    ours = [line for line in lines if line.startswith(("| invad(steps=3)† |", "| osd_irf_mean"))]
    assert "| **86.5 ± 0.7** |" in ours[1] and "| _81.5 ± 0.7_ |" in ours[0]
    others = [line for line in lines if line not in ours]
    assert len(others) == 2 * 2 + 1 + 8  # paper and Δ under each of ours, knn, the 8 other methods on MVTec-AD
    for line in others:
        assert "**" not in line and " _" not in line, line
    reported = [line for line in others if "(reported) |" in line]
    assert reported[-1] == ("| OmiAD [ICML’25] (reported) | - | 98.8 | 99.7 | 98.5 | 97.7 | 52.6 | 56.7 | "
                            "93.2 | 85.3 | 39.4 |")  # its noise net: not stated in the paper
    assert reported[2].endswith("| 86.5 | 81.2 | - |")  # SimpleNet: FPS N/A in the paper
    assert "Rows marked (reported): other methods as printed in OSD-IRF (arXiv 2604.18393) Table 1" in text
    cells, marks = category_matrix(with_knn(fake_rows()), "image_auroc")
    assert "knn‡ / none" in cells.columns and cells.loc["mean", "knn‡ / none"] == "81.5"
    assert not [m for (i, method), m in marks.items() if method == "knn‡ / none" and m]
    assert [marks[(i, "osd_irf_mean(t=500) / dit_gigant")] for i in range(3)] == ["second"] * 3
    from adbench.reporting.tables import bmad_matrix

    bmad = with_knn(fake_rows()).assign(dataset="bmad")
    bmad["category"] = bmad["category"].map({"bottle": "Brain", "metal_nut": "RSNA"})
    cells, marks = bmad_matrix(bmad)  # knn ties with osd_irf_mean: the BMAD layout ranks ours only too
    knn_row = list(cells.index).index("knn‡ / none")
    assert not [m for (i, _), m in marks.items() if i == knn_row] and len(cells) == 3
    osd_row = list(cells.index).index("osd_irf_mean(t=500) / dit_gigant")
    assert {marks[(osd_row, c)] for c in cells.columns if c[1] != "FPS"} == {"second"}


def test_a_mean_over_categories_reproduces_no_per_category_cell():
    """BMAD's paper columns are per dataset (category): a row averaged over two has none; one category's has its own."""
    frame = fake_rows().assign(dataset="bmad")
    frame["category"] = frame["category"].map({"bottle": "RESC", "metal_nut": "Brain"})
    table3 = paper_table("invad/table3")
    assert "↳" not in markdown_table(frame, per_category=False, paper=table3)
    text = markdown_table(frame[frame["category"] == "RESC"], per_category=False, paper=table3)
    paper = "↳ paper: InvAD (Ours), RESC det.; InvAD (Ours), RESC loc."
    assert f"| {paper} | 93.6 | - | - | 96.5 | - |" in text
    # invad on RESC: 0.85 + 0.005 (seeds) -> I-AUROC 85.5, P-AUROC 85.8
    assert f"| ↳ Δ ours - paper | {85.5 - 93.6:+.1f} | - | - | {85.8 - 96.5:+.1f} | - |" in text


def test_the_bmad_layout_on_other_data_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fake_rows().to_parquet(run_dir / "metrics.parquet")  # MVTec categories
    result = CliRunner().invoke(app, ["report", str(run_dir), "--layout", "bmad", "--out", str(tmp_path / "t")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "the bmad layout is InvAD's table of the BMAD datasets (Brain, Liver, RESC" in output
    assert "these results hold none (categories bottle, metal_nut): use --layout methods or categories" in output
    assert not list(tmp_path.glob("t*"))


def sweep_rows(ts=(250, 500)) -> pd.DataFrame:
    """fake_rows' osd_irf_mean rows at each of ``ts`` (a t sweep), their metrics rising with t."""
    rows = []
    for t in ts:
        spec = {"name": "osd_irf_mean", "t": t}
        osd = fake_rows().query("scorer == 'osd_irf_mean'")
        configs = [json.dumps({**json.loads(c), "scoring": {**json.loads(c)["scoring"], "scorers": [spec]}})
                   for c in osd["config"]]
        rows.append(osd.assign(scorer_label=f"osd_irf_mean(t={t})", config=configs, **scorer_columns(spec),
                               image_auroc=osd["image_auroc"] + t / 10000))
    return pd.concat(rows, ignore_index=True)


def test_a_sweep_table_shows_t_in_its_own_column_and_methods_name_their_keys():
    frame = pd.concat([sweep_rows(), fake_rows().query("scorer == 'invad'")], ignore_index=True)
    text = markdown_table(frame, per_category=False)
    assert "| scorer | t | I-AUROC |" in text and "- All rows: dataset: mvtec; backbone: efficientnet_b4;" in text
    assert "| osd_irf_mean | 250 | _84.0 ± 0.7_ |" in text and "| osd_irf_mean | 500 | **86.5 ± 0.7** |" in text
    assert "| invad(steps=3)† | - | **86.5 ± 0.7** |" in text  # invad has no t
    assert "- A \"-\" cell: a setting or argument the row's method does not have.\n" in text
    from adbench.reporting.methods import with_method_column

    norms = [json.dumps({**json.loads(c), "noise_net": {**json.loads(c)["noise_net"], "feature_norm": n}})
             for c, n in zip(frame["config"], ["none", "layer"] * (len(frame) // 2), strict=True)]
    methods = set(with_method_column(frame.assign(config=norms))["method"])
    assert "osd_irf_mean / t=250 / feature_norm=none" in methods and "invad(steps=3)† / t=- / feature_norm=layer" \
        not in methods and "invad(steps=3)† / - / feature_norm=layer" in methods
    assert "feature norm" in latex_tables(frame.assign(config=norms), per_category=False)


def test_tables_name_a_folder_of_ones_own_data_by_data_args_name():
    frame = fake_rows()

    def with_data(**data):
        return frame.assign(config=[json.dumps({**json.loads(c), "data": {**json.loads(c)["data"], **data}})
                                    for c in frame["config"]])

    shown = [markdown_table(f, per_category=False) for f in (
        with_data(root="/data/parts_2026"), with_data(root="/data/parts_2026", args={"name": "Parts-26"}))]
    assert "- All rows: dataset: mvtec;" in shown[0]  # the loader's name, as a paper's rows beside it
    assert "- All rows: dataset: Parts-26;" in shown[1]


def test_report_draws_metric_vs_t_from_any_sweep_and_fits_the_page_asked(tmp_path):
    run_dir = tmp_path / "sweep"
    run_dir.mkdir()
    sweep_rows((100, 500, 900)).assign(maps_file="").to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--figures", "--page", "lncs",
                                      "--figure-width", "column", "--format", "latex"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t_metrics_vs_t.png").is_file() and (tmp_path / "t_metrics_vs_t.pdf").is_file()
    tex = out.with_suffix(".tex").read_text()
    assert "table*" not in tex and "lncs page (347.1 pt)" in tex  # LNCS has one column: scaled to its width
    assert "Part 1 of 2: split by columns to stay readable at the lncs page width." in tex
    assert all(x >= 0.7 for x in scales(tex))
    for args, message in ((["--page", "a4"], "--page must be one of article, cvpr"),
                          *((["--page", page], f"--page {page}: widths in pt, the column at least 100")
                            for page in ("1,1", "300,200", "241,inf", "nan,505")),
                          (["--figure-width", "half"], "--figure-width must be column or page"),
                          (["--notes", "margin"], "--notes must be one of below, caption")):
        bad = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_report_renames_labels_and_headers_and_shows_the_metrics_asked(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fake_rows().to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--metrics", "image_auroc,mad",
                                      "--rename", "osd_irf_mean(t=500)=OSD-IRF", "--rename", "invad(steps=3)=InvAD",
                                      "--rename", "I-AUROC=Det.", "--rename", "AUROC=AU-ROC", "--no-per-category"])
    assert result.exit_code == 0, result.output
    md = out.with_suffix(".md").read_text()
    assert "| scorer | Det. | mAD |" in md  # no other metric, no FPS
    assert "| OSD-IRF | _81.5 ± 0.7_ |" in md and "| InvAD† | **86.5 ± 0.7** |" in md
    assert "FPS" not in md  # no FPS column: no FPS note either
    tex = out.with_suffix(".tex").read_text()
    assert "scorer & AU-ROC & mAD \\\\" in tex and "InvAD$^\\dagger$ & " in tex
    with_aupimo = tmp_path / "aupimo"
    with_aupimo.mkdir()
    fake_rows().assign(pixel_aupimo=0.4321).to_parquet(with_aupimo / "metrics.parquet")
    optional = CliRunner().invoke(app, ["report", str(with_aupimo), "--out", str(tmp_path / "o"), "--metrics",
                                        "image_auroc,pixel_aupimo", "--format", "md"])
    assert optional.exit_code == 0, optional.output
    shown = (tmp_path / "o.md").read_text()
    assert "| I-AUROC | AUPIMO |" in shown and "| **43.2 ± 0.0** |" in shown
    assert "AUPIMO" not in markdown_table(fake_rows().assign(pixel_aupimo=0.4321))  # shown only when asked
    for args, message in ((["--metrics", "auroc"], "--metrics: unknown column(s) auroc; choose from image_auroc"),
                          (["--rename", "nothing"], "--rename 'nothing': give SHOWN_NOW=WANTED")):
        bad = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_report_marks_the_image_aurocs_that_differ_from_a_baseline_by_delongs_test(tmp_path):
    from adbench.metrics.significance import delong
    from adbench.reporting.significance import significant

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(20, int), np.zeros(20, int)]
    frame = fake_rows()
    good = {(c, s): labels + rng.normal(0, 0.3, 40) for c in ("bottle", "metal_nut") for s in (0, 1)}
    scores = [list(good[(r.category, r.seed)] if r.scorer == "osd_irf_mean" else rng.normal(0, 1, 40))
              for r in frame.itertuples()]
    frame = frame.assign(image_scores=scores, image_labels=[list(labels)] * len(frame))
    twin = frame[frame["scorer"] == "osd_irf_mean"].assign(scorer="osd_irf_noisy", scorer_label="osd_irf_noisy",
                                                          image_scores=lambda f: [list(2 * np.asarray(v))
                                                                                  for v in f["image_scores"]])
    frame = pd.concat([frame, twin], ignore_index=True)
    expected = {i for i, r in frame.iterrows() if r["scorer"] == "invad" and delong(
        np.asarray(r["image_scores"]), good[(r["category"], r["seed"])], labels).p < 0.05}
    assert significant(frame, "osd_irf_mean(t=500)") == {"image_auroc": expected} and len(expected) == 4  # invad
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    frame.to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--significance",
                                      "osd_irf_mean(t=500)"])
    assert result.exit_code == 0, result.output
    md = out.with_suffix(".md").read_text().split("### Per category")[1]
    marked = [line.split(" | ")[0].removeprefix("| ") for line in md.splitlines()
              if "§" in line and line.startswith("|")]
    assert sorted(marked) == ["invad(steps=3)†", "invad(steps=3)†"]  # both categories; the twin ranks alike
    assert ("§ differs from osd_irf_mean(t=500)'s on the same test images, in every seed: image AU-ROC by DeLong's "
            "paired test (p < 0.05)." in md)
    assert "\\S{}" in out.with_suffix(".tex").read_text()
    from adbench.reporting.significance import significance_note

    other = frame.copy()  # one invad row scored on other test images: it cannot be tested, and the note says so
    at = other.index[(other["scorer"] == "invad")][0]
    other.at[at, "image_labels"] = list(labels[::-1])
    assert "Not tested" not in significance_note("osd_irf_mean(t=500)", frame)
    assert significance_note("osd_irf_mean(t=500)", other).endswith(
        "Not tested: 1 row(s) with no row of that method on the same category and seed, or scored on other test "
        "images.")
    assert at not in significant(other, "osd_irf_mean(t=500)")["image_auroc"]
    bad = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--significance", "knn"])
    assert bad.exit_code == 2 and "--significance 'knn': no such method; choose from" in bad.output
    fake_rows().to_parquet(run_dir / "metrics.parquet")  # rows without per-image scores
    old = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--significance", "invad"])
    assert old.exit_code == 2 and "the image_scores column" in old.output


def test_report_marks_the_pixel_metrics_that_differ_by_a_paired_bootstrap_of_the_kept_maps(tmp_path):
    from adbench.metrics.bootstrap import Ranking, paired_bootstrap
    from adbench.reporting.significance import significant

    rng = np.random.default_rng(1)
    run_dir = tmp_path / "run"
    (run_dir / "maps").mkdir(parents=True)
    masks = np.zeros((12, 16, 16), bool)
    masks[6:, 4:9, 4:9] = True
    labels = masks.any(axis=(1, 2)).astype(int)
    frame = fake_rows()
    good = {(c, s): masks + rng.normal(0, 0.5, masks.shape) for c in ("bottle", "metal_nut") for s in (0, 1)}
    files, maps_of = [], {}
    for r in frame.itertuples():
        maps = good[(r.category, r.seed)] if r.scorer == "osd_irf_mean" else rng.normal(0, 1, masks.shape)
        maps_of[r.Index] = maps.astype(np.float32)
        files.append(f"maps/{r.Index}-all.npz")
        np.savez_compressed(run_dir / files[-1], maps=maps_of[r.Index], masks=masks, labels=labels)
    frame = frame.assign(image_scores=[list(labels + rng.normal(0, 1, 12)) for _ in range(len(frame))],
                         image_labels=[list(labels)] * len(frame), all_maps_file=files, pro_limit=0.3)
    found = significant(frame.assign(run_folder=str(run_dir)), "osd_irf_mean(t=500)")
    for key in ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro"):
        expected = set()
        for i, r in frame[frame["scorer"] == "invad"].iterrows():
            ref = frame[(frame["scorer"] == "osd_irf_mean") & (frame["category"] == r["category"])
                        & (frame["seed"] == r["seed"])].index[0]
            test = paired_bootstrap(Ranking(maps_of[i], masks), Ranking(maps_of[ref], masks))[key]
            expected |= {i} if test.significant else set()
        assert found[key] == expected and len(expected) == 4, key  # noise against a good map: every row differs
    frame.to_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "t"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--format", "md",
                                      "--significance", "osd_irf_mean(t=500)"])
    assert result.exit_code == 0, result.output
    md = out.with_suffix(".md").read_text().split("### Per category")[1]
    invad = [line for line in md.splitlines() if "| invad(steps=3)" in line]
    assert len(invad) == 2 and all(line.count("§") >= 4 for line in invad)
    assert "pixel metrics by a paired bootstrap over test images (1000 draws" in md
    (run_dir / files[1]).unlink()
    gone = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--significance",
                                    "osd_irf_mean(t=500)"])
    assert gone.exit_code == 2 and f"{run_dir / files[1]}: the maps osd_irf_mean(t=500) kept for" in gone.output


def test_the_notes_say_which_rows_report_mvtec3ds_aupro():
    from adbench.reporting.tables import table_notes

    mixed = " ".join(table_notes(fake_rows().assign(aupro_impl=["mvtec3d"] * 4 + ["exact"] * 4)))
    assert ("AU-PRO of the rows with aupro impl mvtec3d as MVTec 3D-AD's evaluation code computes it (100 thresholds "
            "at evenly spaced ranks of the normal pixels' scores, tied scores as steps), not exact." in mixed)
    assert "AU-PRO as MVTec 3D-AD's" in " ".join(table_notes(fake_rows().assign(aupro_impl="mvtec3d")))
    assert "MVTec 3D-AD" not in " ".join(table_notes(fake_rows().assign(aupro_impl="exact")))


def test_metric_vs_t_is_ticked_at_the_swept_values_keeps_the_chosen_metrics_and_embeds_no_type3_font(
        monkeypatch, tmp_path):
    from adbench.reporting import plots

    frame = fake_rows()
    frame = pd.concat([frame.assign(**{"scorer.t": t}) for t in (50, 250, 650)])
    paths = plots.plot_metrics_vs(frame, "t", tmp_path / "vs_t", metrics=("image_auroc", "mad"))
    pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
    assert b"/Type3" not in pdf and b"/FontFile2" in pdf  # TrueType (Type 42) fonts, embedded
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or [path])
    plots.plot_metrics_vs(frame, "t", tmp_path / "vs_t", metrics=("image_auroc", "mad"))
    visible = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["I-AUROC", "mAD"]
    assert [t.get_text() for t in visible[0].get_xticklabels()] == ["50", "250", "650"]


def test_a_paper_mean_over_the_full_category_set_is_not_compared_with_a_mean_over_part_of_it():
    """One MVTec category (hazelnut) against the paper's 15-category mean: no Δ, a note saying which are missing."""
    paper = paper_table("osd_irf/table1")
    one = fake_rows().query("category == 'bottle'")
    text = markdown_table(one, per_category=False, paper=paper)
    assert "↳" not in text.split("Notes:")[0]
    assert ("Not compared with OSD-IRF (arXiv 2604.18393) Table 1: osd_irf_mean(t=500), invad(steps=3)† average 1 of "
            "the 15 mvtec categories the paper's means are over (missing cable, capsule, carpet, grid, hazelnut, "
            "leather, metal_nut, pill, screw, tile, toothbrush, transistor, wood, zipper).") in text
    assert "↳ paper: OSD-IRF (Ours)" in markdown_table(fake_rows(MVTEC), per_category=False, paper=paper)


def test_means_over_other_category_sets_rank_apart_and_a_mean_missing_a_category_says_so():
    frame = fake_rows()
    one = frame[~((frame["scorer"] == "invad") & (frame["category"] == "metal_nut"))]  # invad on bottle alone
    text = markdown_table(one, per_category=False)
    lines = [line for line in text.splitlines() if line.startswith(("| osd_irf_mean", "| invad"))]
    # invad's 85.5 over bottle beat osd_irf_mean's 81.5 over both categories before: now each set ranks alone
    quality = "".join(line.rsplit("|", 2)[0] for line in lines)  # FPS (the last column): one net, ranked still
    assert lines[0].startswith("| osd_irf_mean(t=500) | 81.5 ± 0.7 |") and "**" not in quality
    assert lines[1].startswith("| invad(steps=3)† | 85.5 ± 0.7 |")
    assert "Rows averaging different category sets of a dataset are ranked apart" in text
    gap = frame.copy()
    gap.loc[(gap["scorer"] == "osd_irf_mean") & (gap["category"] == "metal_nut"), "pixel_auroc"] = float("nan")
    text = markdown_table(gap, per_category=False)
    osd = next(line for line in text.splitlines() if line.startswith("| osd_irf_mean"))
    assert "| 80.8 ± 0.7* |" in osd  # bottle's 0.803 and 0.813 alone, marked, not ranked
    assert "- * mean over the categories (and seeds) where the metric is defined" in text
    assert r"80.8{\scriptsize$\pm$0.7}*" in latex_tables(gap, per_category=False)


def test_a_bar_or_a_line_break_in_a_name_keeps_every_markdown_row_whole():
    frame = fake_rows().replace({"category": {"bottle": "left|right", "metal_nut": "two\nlines"}})
    for text in (markdown_table(frame), category_tables(frame, "image_auroc", "tab:c")[0]):
        rows = [line for line in text.splitlines() if line.startswith("|")]
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in rows}
        assert len(widths) == 1, rows  # every row has as many cells as the header
        assert "left\\|right" in text and "two lines" in text and "two\nlines" not in text
