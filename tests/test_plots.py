"""Figures: the side-by-side map comparison's columns, shared scales and titles."""

import json
import os
from pathlib import Path

import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adbench.config import RunConfig, parse_scorer
from adbench.reporting import plots
from adbench.reporting.latex import PAGES
from adbench.results import upgraded

SCORERS = ["osd_irf_mean:t=500", "osd_irf_noisy:t=500", "invad:steps=3", "knn"]
BACKBONES = ["efficientnet_b4", "vit_base"]


def kept_maps_rows(tmp_path):
    """Rows of 2 backbones x 4 scorers on one category, each with a kept-maps file of the same 3 images (one
    normal, two anomalous); method i's maps lie in [i, i + 1 + row]."""
    images = []
    for i in range(3):
        images.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(images[-1])
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[1:, 2:5, 2:5] = True
    rows = []
    for b, backbone in enumerate(BACKBONES):
        for s, scorer in enumerate(SCORERS):
            i = 4 * b + s
            maps = np.stack([i + (1 + r) * np.linspace(0, 1, 64).reshape(8, 8) for r in range(3)])
            path = tmp_path / f"maps-{i}.npz"
            np.savez(path, maps=maps.astype(np.float16), masks=masks, labels=np.array([0, 1, 1]),
                     images=np.array([str(p) for p in images]))
            spec = parse_scorer(scorer)
            cfg = RunConfig(backbone={"name": backbone}, categories=["bottle"], scoring={"scorers": [spec]})
            label = scorer.replace(":", "(") + ")" if ":" in scorer else scorer
            rows.append({"dataset": "mvtec", "category": "bottle", "scorer": spec["name"], "scorer_label": label,
                         "backbone": backbone, "noise_net": "dit_gigant", "protocol": "invad",
                         "transductive": spec["name"] == "invad", "seed": 0, "maps_file": str(path),
                         "run_folder": "", "config": json.dumps(cfg.to_dict(), sort_keys=True)})
    return upgraded(pd.DataFrame(rows))


def test_two_backbones_by_four_scorers_are_eight_columns_each_on_its_own_shared_scale(tmp_path, monkeypatch):
    frame = kept_maps_rows(tmp_path)
    columns = plots.comparison_columns(frame)
    assert len(columns) == 8 and all(any(b in name for b in BACKBONES) for name in columns)
    assert "invad(steps=3) / vit_base" in columns and not any("†" in name or "‡" in name for name in columns)
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=130: figures.append(fig) or [path])
    (written,) = plots.plot_comparisons(frame, tmp_path / "out", "column", PAGES["cvpr"])
    assert written.name == "compare-mvtec-bottle.png"
    (fig,) = figures
    assert fig.get_figwidth() == pytest.approx(237.1 / 72.27)  # drawn at the column it is printed in
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 7  # 7 pt print, unscaled
    grid = [ax for ax in fig.axes if ax.get_images()]  # the 3 x (2 + 8) panels; the colour bars have no images
    assert len(grid) == 3 * 10
    titles = [ax.get_title() for ax in grid[:10]]
    assert titles[:2] == ["image", "ground truth"] and len(set(titles)) == 10
    for col in range(8):  # every row of a method's column on its scale: [i, i + 3] over its 3 rows
        overlays = [grid[10 * row + 2 + col].get_images()[-1] for row in range(3)]
        assert {o.get_clim() for o in overlays} == {(col, col + 3)}
    assert len(fig.axes) - len(grid) == 8  # one colour bar per method


def test_each_methods_map_figure_has_its_own_title_and_file_name(tmp_path, monkeypatch):
    frame = kept_maps_rows(tmp_path).assign(cell_key=[f"{i:016x}" for i in range(8)])
    titles = []
    monkeypatch.setattr(plots, "plot_anomaly_maps", lambda maps, path, title: titles.append(title) or path)
    written, missing = plots.plot_kept_maps(frame, tmp_path / "out")
    assert not missing and len(set(titles)) == len(set(written)) == 8
    assert "mvtec / bottle / invad(steps=3) / vit_base (seed 0)" in titles
    assert tmp_path / "out" / "bottle-osd_irf_mean_t=500_efficientnet_b4-00000000.png" in written


def test_a_study_history_is_drawn_in_percent_with_the_best_so_far_and_the_pareto_front(monkeypatch, tmp_path):
    import optuna

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=0: figures.append(fig) or [path])
    values = [0.62, 0.71, 0.65, 0.80, 0.78]
    trials = [optuna.trial.create_trial(values=[v], params={}, distributions={}) for v in values]
    for number, trial in enumerate(trials):
        trial.number = number
    plots.plot_history(trials, tmp_path / "h", "image_auroc", fps_objective=False, title="study t-lr")
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == "validation I-AUROC (%)"
    assert ax.get_title() == "study t-lr: 5 finished trials, best 80%"
    dots = ax.collections[0].get_offsets()
    assert dots[:, 1].tolist() == [62.0, 71.0, 65.0, 80.0, 78.0]
    best = ax.get_lines()[0].get_ydata().tolist()
    assert best == [62.0, 71.0, 71.0, 80.0, 80.0]
    figures.clear()
    speeds = [50.0, 40.0, 90.0, 30.0, 45.0]  # (metric, images/s): 0.62@50, 0.71@40, 0.65@90, 0.80@30, 0.78@45
    fast = [optuna.trial.create_trial(values=[v, s], params={}, distributions={}) for v, s in zip(values, speeds,
                                                                                                    strict=True)]
    plots.plot_history(fast, tmp_path / "p", "image_auroc", fps_objective=True)
    front = figures[0].axes[0].get_lines()[0]
    # not dominated (no other trial at least as good in both): 0.80@30, 0.78@45, 0.65@90; 0.71@40 is beaten by
    # 0.78@45 and 0.62@50 by 0.65@90
    assert list(zip(front.get_xdata(), front.get_ydata(), strict=True)) == [(30.0, 80.0), (45.0, 78.0),
                                                                            (90.0, 65.0)]


def test_an_image_score_is_labelled_with_its_place_among_the_test_images():
    assert plots.score_text(1.05, 0.92) == ", image score 1.05\nhigher than 92 % of test"
    assert plots.score_text(0.378, float("nan")) == ", image score 0.378"  # maps kept before the share was
    assert plots.score_text(float("nan"), float("nan")) == ""


def draw_stamp(path: Path, text: str) -> list[Path]:
    """A figure's stand-in for ``Drawer``: writes its two files and logs the call (a process of its own may run it)."""
    for file in plots.figure_files(path):
        file.write_text(text)
    with open(path.parent / "calls.log", "a") as log:
        log.write(f"{text}\n")
    return list(plots.figure_files(path))


def test_a_figure_is_drawn_again_only_when_its_input_its_arguments_or_its_files_change(tmp_path):
    from adbench.reporting.figures import Drawer, Figure

    inputs = [tmp_path / f"maps-{i}.npz" for i in range(3)]
    for i, path in enumerate(inputs):
        path.write_bytes(bytes([i]) * 64)
    out = tmp_path / "figures"
    out.mkdir()

    def report(texts):
        drawer = Drawer(workers=2)  # more than one due: drawn in 2 processes
        for i, text in enumerate(texts):
            drawer.add(Figure(draw_stamp, (out / f"f{i}.png", text), plots.figure_files(out / f"f{i}.png"),
                              (inputs[i],)))
        written = drawer.finish()
        calls = (out / "calls.log").read_text().split()
        (out / "calls.log").unlink()
        return written, calls

    written, calls = report(["a", "b", "c"])
    assert sorted(calls) == ["a", "b", "c"] and written == [out / f"f{i}.{s}" for i in range(3) for s in ("png", "pdf")]
    (out / "calls.log").write_text("")
    assert report(["a", "b", "c"])[1] == []  # nothing changed: nothing drawn
    stat = inputs[1].stat()
    inputs[1].write_bytes(bytes([9]) * 64)  # other bytes, same size and time: its figure again
    os.utime(inputs[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (out / "f2.pdf").unlink()  # a file gone: its figure again
    assert sorted(report(["z", "b", "c"])[1]) == ["b", "c", "z"]  # and f0's arguments changed
    assert (out / "f0.png").read_text() == "z"


def test_a_comparison_of_a_category_named_like_a_path_stays_in_its_folder(tmp_path, monkeypatch):
    frame = kept_maps_rows(tmp_path).assign(category="../../outside/pwn")
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=130: [path])
    (written,) = plots.plot_comparisons(frame, tmp_path / "out")
    assert written.parent == tmp_path / "out" and written.name == "compare-mvtec-.._.._outside_pwn.png"
