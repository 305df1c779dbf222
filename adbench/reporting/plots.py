"""Figures generated from stored result rows (matplotlib, PNG and PDF)."""

from __future__ import annotations

import json
import re
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adbench.atomic import atomic_write
from adbench.errors import AdbenchError
from adbench.metrics import reported
from adbench.reporting.figures import Drawer, Figure
from adbench.reporting.latex import PAGES, Page
from adbench.reporting.methods import bare_methods, dataset_names, row_file
from adbench.reporting.tables import scorer_arg

FONT_PT = 7  # the smallest text of a figure, at the width it is printed (figures are drawn at that width)
PANEL_IN = 1.6  # the narrowest a panel is drawn, in inches: a page-wide figure has 4 per row, a column's 2


WIDTHS = ("column", "page")
CHARS_PER_IN = 16  # of FONT_PT text: a title wraps at the figure's width


def figure_width(width: str, page: Page) -> float:
    """A figure's width in inches: the page template's column or text width (``WIDTHS``)."""
    if width not in WIDTHS:
        raise AdbenchError(f"--figure-width must be one of {', '.join(WIDTHS)}, got {width!r}")
    return (page.column_pt if width == "column" else page.text_pt) / 72.27


MAX_TICKS = 12  # swept values a sweep's x axis is ticked at, each (more: matplotlib's ticks)


def plot_metrics_vs(frame: pd.DataFrame, arg: str, path: Path, title: str = "", width: str = "page",
                    page: Page = PAGES["article"], metrics: tuple[str, ...] = (),
                    name: Callable[[str], str] = str) -> list[Path]:
    """One panel per metric (those of ``metrics`` when given, as ``report --metrics`` chooses): the mean over
    categories against a scorer argument, ticked at the swept values, a line per scorer (legend: its name as
    the tables show it, through ``name``, e.g. ``Style.name`` for ``--rename``); with several seeds, the mean
    over seeds with a band of +- one std. Drawn at the page's column or text width (``width``) with ``FONT_PT``
    text, so it is printed unscaled; the percent panels share one y range; one legend below the panels; the
    title says what was averaged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = frame.assign(**{arg: scorer_arg(frame, arg), "method": frame["scorer"]})  # one line per scorer name
    panels = [c for c in reported() if not metrics or c.key in metrics] or reported()  # metrics and mAD
    keys = [c.key for c in panels]
    per_seed = data.groupby(["method", arg, "seed"])[keys].mean().reset_index()  # over categories
    stats = per_seed.groupby(["method", arg])[keys].agg(["mean", "std"]).reset_index()
    seeds, categories = data["seed"].nunique(), data["category"].nunique()
    inches = figure_width(width, page)
    per_row = max(1, min(len(panels), int(inches // PANEL_IN)))
    rows = -(-len(panels) // per_row)
    percent = [c.key for c in panels if c.percent]
    low = 100 * min((stats[(k, "mean")] - stats[(k, "std")].fillna(0)).min() for k in percent)
    high = 100 * max((stats[(k, "mean")] + stats[(k, "std")].fillna(0)).max() for k in percent)
    pad = max(1.0, 0.05 * (high - low))
    shared = (low - pad if low < 0 else max(0.0, low - pad), high + pad if high > 100 else min(100.0, high + pad))
    sizes = {k: FONT_PT for k in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                  "ytick.labelsize", "legend.fontsize", "figure.titlesize")}
    with plt.rc_context(sizes):
        fig, axes = plt.subplots(rows, per_row, figsize=(inches, 1.35 * rows + 0.7), sharex=True, squeeze=False,
                                 layout="constrained")
        for ax in axes.ravel()[len(panels):]:
            ax.set_visible(False)
        for ax, column in zip(axes.ravel(), panels, strict=False):
            scale = 100 if column.percent else 1
            for method, group in stats.groupby("method", sort=False):
                group = group.sort_values(arg)
                mean, std = scale * group[(column.key, "mean")], scale * group[(column.key, "std")]
                line, = ax.plot(group[arg], mean, marker="o", markersize=3, linewidth=1,
                                label=name(method))
                if seeds > 1:
                    ax.fill_between(group[arg], mean - std, mean + std, color=line.get_color(), alpha=0.2)
            if column.percent:
                ax.set_ylim(*shared)
            ax.set_title(column.header)
            swept = sorted(stats[arg].dropna().unique())
            if len(swept) <= MAX_TICKS:
                ax.set_xticks(swept, [f"{v:g}" for v in swept])
            ax.set_ylabel("%" if column.percent else "")
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[max(0, len(panels) - per_row):len(panels)]:  # the lowest panel of each column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(axis_label(frame, arg))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), per_row))
        band = f"; mean ± std over {seeds} seeds" if seeds > 1 else "; 1 seed"
        names = ", ".join(dict.fromkeys(dataset_names(frame)))
        what = f"{names}, mean over {categories} categor{'y' if categories == 1 else 'ies'}{band}"
        fig.suptitle("\n".join(textwrap.wrap(f"{title}: {what}" if title else what, int(CHARS_PER_IN * inches))))
        return save_figure(fig, path)


def axis_label(frame: pd.DataFrame, arg: str) -> str:
    """The x label of a sweep over ``arg``: t with the schedule's length (``t of T = 1000``)."""
    if arg != "t":
        return arg
    lengths = sorted({json.loads(c).get("train", {}).get("timesteps", 1000) for c in frame["config"]})
    return f"t (of T = {'/'.join(map(str, lengths))})"


def save_figure(fig: Any, path: Path, dpi: int = 130) -> list[Path]:
    """Save ``fig`` as PNG and PDF next to each other and close it."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = list(figure_files(path))
    with plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):  # TrueType, as venues ask (no Type 3)
        for p in paths:  # each whole or not at all: a report stopped midway leaves no torn figure to keep
            atomic_write(p, lambda tmp, p=p: fig.savefig(tmp, dpi=dpi, format=p.suffix[1:]))
    plt.close(fig)
    return paths


def plot_anomaly_maps(maps_file: str | Path, path: Path, title: str = "") -> Path:
    """Rows of (image, ground-truth mask, anomaly map overlaid with the mask's contour) for the saved samples,
    each labelled normal or anomalous with its image score; one colour bar for the figure; PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    data = np.load(maps_file)
    maps, masks, images, labels = data["maps"].astype(np.float32), data["masks"], data["images"], data["labels"]
    scores = data["scores"] if "scores" in data else np.full(len(maps), np.nan)  # older files: no scores
    below = data["score_below"] if "score_below" in data else np.full(len(maps), np.nan)
    n, size = len(maps), maps.shape[-1]
    fig, axes = plt.subplots(n, 3, figsize=(8.2, 2.5 * n), squeeze=False, layout="constrained")
    lo, hi = float(maps.min()), float(maps.max())
    shown = None
    for row, (amap, mask, image) in enumerate(zip(maps, masks, images, strict=True)):
        with Image.open(str(image)) as img:
            rgb = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        axes[row, 0].imshow(rgb)
        axes[row, 1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        axes[row, 2].imshow(rgb)
        shown = axes[row, 2].imshow(amap, cmap="jet", alpha=0.5, vmin=lo, vmax=hi)
        if mask.any():
            axes[row, 2].contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
        for ax, name in zip(axes[row], ("image", "ground truth", "anomaly map"), strict=True):
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name, fontsize=9)
        kind = "anomalous" if labels[row] else "normal"
        score = score_text(scores[row], below[row])
        axes[row, 0].text(-0.05, 0.5, f"{kind}{score}", transform=axes[row, 0].transAxes, rotation=90,
                          ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    if shown is not None:
        fig.colorbar(shown, ax=axes[:, 2].tolist(), fraction=0.05, pad=0.02, label="anomaly map (the method's units)")
    return save_figure(fig, path, dpi=110)[0]


def score_text(score: float, below: float) -> str:
    """An image score as a row label: its value and its place among the category's test images (a raw score
    means nothing across methods or categories)."""
    if np.isnan(score):
        return ""
    place = "" if np.isnan(below) else f"\nhigher than {100 * below:.0f} % of test"
    return f", image score {score:.3g}{place}"


def column_scales(maps: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """One colour scale per method: the (min, max) of its maps over every row of the figure, so a normal
    image's map is as cool as it is next to an anomalous one (scores of different methods do not compare)."""
    return {method: (float(m.min()), float(m.max())) for method, m in maps.items()}


def plot_map_comparison(maps_files: dict[str, Path], path: Path, title: str = "",
                        inches: float = PAGES["article"].text_pt / 72.27) -> list[Path]:
    """Rows = the kept samples (the same images in every file), columns = image, ground truth, then each
    method's anomaly map on one scale per method (``column_scales``) with its colour bar; drawn ``inches`` wide
    with ``FONT_PT`` text, so it is printed unscaled; PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    if not same_samples(maps_files):
        raise ValueError(f"the methods {', '.join(maps_files)} kept other samples: not comparable side by side")
    data = {method: np.load(f) for method, f in maps_files.items()}
    first = next(iter(data.values()))
    images, masks, labels = first["images"], first["masks"], first["labels"]
    maps = {method: d["maps"].astype(np.float32) for method, d in data.items()}
    scales = column_scales(maps)
    n, size = len(images), first["maps"].shape[-1]
    panel = inches / (2 + len(data))
    fig, axes = plt.subplots(n, 2 + len(data), figsize=(inches, (panel + 0.1) * n + 0.9), squeeze=False,
                             layout="constrained")
    shown = {}
    for row, (image, mask) in enumerate(zip(images, masks, strict=True)):
        with Image.open(str(image)) as img:
            rgb = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        axes[row, 0].imshow(rgb)
        axes[row, 1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        for col, method in enumerate(maps, start=2):
            axes[row, col].imshow(rgb)
            lo, hi = scales[method]
            shown[method] = axes[row, col].imshow(maps[method][row], cmap="jet", alpha=0.5, vmin=lo, vmax=hi)
            if mask.any():
                axes[row, col].contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
        axes[row, 0].text(-0.05, 0.5, "anomalous" if labels[row] else "normal", transform=axes[row, 0].transAxes,
                          rotation=90, ha="right", va="center", fontsize=FONT_PT)
        for col, name in enumerate(["image", "ground truth", *data]):
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(name.replace(" / ", "\n"), fontsize=FONT_PT)
    for col, method in enumerate(maps, start=2):
        bar = fig.colorbar(shown[method], ax=axes[:, col].tolist(), location="bottom", fraction=0.04, pad=0.01)
        bar.ax.tick_params(labelsize=FONT_PT)
    fig.suptitle(title, fontsize=FONT_PT + 1)
    return save_figure(fig, path, dpi=300)


def kept_maps(path: Path) -> bool:
    """Whether ``path`` is a kept-maps file a figure can be drawn from (an ``.npz`` holding maps, masks, images
    and labels); a missing, foreign or damaged one is not (the report says how many)."""
    try:
        with np.load(path) as data:
            return {"maps", "masks", "images", "labels"} <= set(data.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # missing, not an npz, pickled, cut short
        return False


def same_samples(maps_files: dict[str, Path]) -> bool:
    """Whether every kept-maps file holds the same test images (in the same order): comparable side by side."""
    kept = [np.load(f)["images"].tolist() for f in maps_files.values()]
    return all(k == kept[0] for k in kept)


def maps_path(row: pd.Series) -> Path:
    """A row's kept-maps file (``row_file``)."""
    return row_file(row, "maps_file")


def comparison_columns(group: pd.DataFrame) -> dict[str, Path]:
    """Method -> kept-maps file for the rows of one dataset and category: a method is the scorer and whatever
    else differs between the rows' methods (backbone, noise net, a config key), so 2 backbones x 4 scorers are
    8 columns; of several seeds of one method the first is shown."""
    methods = bare_methods(group)
    columns: dict[str, Path] = {}
    for method, (_, row) in zip(methods, group.iterrows(), strict=True):
        columns.setdefault(method, maps_path(row))
    return columns


def plot_comparisons(frame: pd.DataFrame, out_dir: Path, width: str = "page", page: Page = PAGES["article"],
                     name: Callable[[str], str] = str, drawer: Drawer | None = None) -> list[Path]:
    """One side-by-side figure per dataset and category kept by several methods (``plot_map_comparison``), at
    ``page``'s column or text width (``width``), each method titled as the tables name it (through ``name``);
    drawn now, or queued on ``drawer``. Methods that kept different samples (another test set) get none."""
    written = []
    rows = frame[frame["maps_file"].astype(bool)]
    for (dataset, category), group in rows.groupby(["dataset", "category"], sort=True):
        files = {name(k): v for k, v in comparison_columns(group).items() if kept_maps(v)}
        if len(files) < 2 or not same_samples(files):
            continue
        path = Path(out_dir) / safe_name(f"compare-{dataset}-{category}.png")
        args = (files, path, f"{dataset} / {category}", figure_width(width, page))
        written += drawer.add(Figure(plot_map_comparison, args, figure_files(path), tuple(files.values()))) \
            if drawer else plot_map_comparison(*args)
    return written


def safe_name(name: str) -> str:
    """A file name made of letters, digits and ``_.=-`` only (a category or method name may hold anything)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def figure_files(path: Path) -> tuple[Path, Path]:
    """The files ``save_figure`` writes for ``path``: PNG and PDF."""
    return path.with_suffix(".png"), path.with_suffix(".pdf")


def plot_kept_maps(frame: pd.DataFrame, out_dir: Path, drawer: Drawer | None = None
                   ) -> tuple[list[Path], list[Path]]:
    """A figure of the maps each row kept (``scoring.save_maps``) in ``out_dir``, drawn now or queued on
    ``drawer``: (figures, the maps files that are missing). Titles and file names name the method by what
    differs between the rows (scorer with its arguments, backbone, ...), the seed in the title. A row's
    ``maps_file`` is relative to its ``run_folder`` (older rows: absolute)."""
    written, missing = [], []
    methods = bare_methods(frame)
    for method, (_, row) in zip(methods, frame.iterrows(), strict=True):
        if not row["maps_file"]:
            continue
        path = maps_path(row)
        if not kept_maps(path):
            missing.append(path)
            continue
        name = safe_name(f"{row['category']}-{method}-{str(row['cell_key'])[:8]}")
        args = (path, out_dir / f"{name}.png", f"{row['dataset']} / {row['category']} / {method} (seed {row['seed']})")
        written += drawer.add(Figure(plot_anomaly_maps, args, figure_files(args[1]), (path,))) if drawer \
            else [plot_anomaly_maps(*args)]
    return written, missing


MIN_TRIALS_FOR_IMPORTANCE = 5


def plot_study(study: Any, out_dir: Path, objective: str, fps_objective: bool) -> tuple[list[Path], dict[str, str]]:
    """A study's figures as PNGs in ``out_dir``: the optimisation history (``plot_history``; with an FPS
    objective, the Pareto front of metric against images/s) and Optuna's parameter importances; returns
    (written, {figure: why not})."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as vis

    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    written, skipped = [], {}
    if finished:
        written += plot_history(finished, Path(out_dir) / ("pareto_front" if fps_objective else
                                                          "optimization_history"), objective, fps_objective,
                                f"study {study.study_name}")[:1]
    else:
        skipped["optimization_history"] = "no finished trial"
    if len(finished) < MIN_TRIALS_FOR_IMPORTANCE:
        skipped["param_importances"] = (f"{len(finished)} finished trial(s): importances need at least "
                                        f"{MIN_TRIALS_FOR_IMPORTANCE} to mean anything")
        return written, skipped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # PED-ANOVA warns on any custom target that it ranks for low values: ours is negated
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            ax = vis.plot_param_importances(  # with a custom target, PED-ANOVA ranks for low values: negate
                study, target=(lambda t: -t.values[0]) if fps_objective else None,
                target_name=f"validation {objective}")
    except (ValueError, RuntimeError) as exc:  # e.g. a parameter that never varied
        skipped["param_importances"] = str(exc)
        return written, skipped
    path = Path(out_dir) / "param_importances.png"
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return [*written, path], skipped


def plot_history(trials: list[Any], path: Path, objective: str, fps_objective: bool, title: str = "study"
                 ) -> list[Path]:
    """The finished ``trials`` of a study, their objective in the tables' unit (% for a percent metric): each
    trial's value by trial number and the best so far (or, with an FPS objective, metric against images/s
    with the Pareto-optimal trials joined), titled with ``title``, the trial count and the best value; PNG and
    PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adbench.reporting.tables import columns

    column = columns().get(objective)
    scale, unit = (100, " (%)") if column is None or column.percent else (1, "")
    name = f"validation {column.header if column else objective}{unit}"
    numbers = np.array([t.number for t in trials])
    values = scale * np.array([t.values[0] for t in trials])
    with plt.rc_context({"font.size": FONT_PT + 1}):
        fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
        if fps_objective:
            speed = np.array([t.values[1] for t in trials])
            front = [i for i in range(len(trials))
                     if not any(values[j] >= values[i] and speed[j] >= speed[i] and (values[j], speed[j]) !=
                                (values[i], speed[i]) for j in range(len(trials)))]
            front.sort(key=lambda i: speed[i])
            ax.scatter(speed, values, s=14, color="tab:blue", alpha=0.6, label="trial")
            ax.plot(speed[front], values[front], marker="o", color="tab:red", label="Pareto front")
            ax.set_xlabel("images/s")
        else:
            order = np.argsort(numbers)
            ax.scatter(numbers, values, s=14, color="tab:blue", alpha=0.6, label="trial")
            ax.step(numbers[order], np.maximum.accumulate(values[order]), where="post", color="tab:red",
                    label="best so far")
            ax.set_xlabel("trial")
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {len(trials)} finished trial{'s' if len(trials) > 1 else ''}, best "
                     f"{values.max():.4g}{unit.strip(' ()')}", fontsize=FONT_PT + 1)
        ax.grid(alpha=0.3)
        ax.legend()
        return save_figure(fig, path, dpi=150)


def plot_toy_trajectories(result: Any, path: Path, n_lines: int = 300, seed: int = 0) -> list[Path]:
    """OSD-IRF Fig. 2 from a toy result (``engine.toy.run_toy``): lines from each sample x0 (left) to its
    |IRF| (right), noisy-state and mean-path input; PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=False)
    for ax, irf, title in ((axes[0], result.noisy_irf, f"(a) noisy-state input, AU-ROC {result.noisy_auroc:.3f}"),
                           (axes[1], result.mean_irf, f"(b) mean-path input, AU-ROC {result.mean_auroc:.3f}")):
        for label, colour, name in ((0, "tab:blue", "normal"), (1, "tab:red", "abnormal")):
            idx = rng.choice(np.flatnonzero(result.labels == label), n_lines, replace=False)
            for i in idx:
                ax.plot([0, 1], [result.x0[i], abs(irf[i])], color=colour, alpha=0.08, lw=0.8)
            ax.plot([], [], color=colour, label=name)
        ax.set_xticks([0, 1], ["data x0", "|IRF|"])
        ax.set_title(title, fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("One-step transition from data space to IRF space (OSD-IRF Fig. 2)")
    return save_figure(fig, path, dpi=150)
