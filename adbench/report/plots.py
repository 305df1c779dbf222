"""Figures generated from stored result rows (matplotlib, PNG and PDF)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from adbench.metrics import reported

PANELS_PER_ROW = 4


def scorer_arg(frame: pd.DataFrame, arg: str) -> pd.Series:
    """The value of a scorer argument (e.g. ``t``) of every row, from its stored config."""
    return pd.Series([json.loads(c)["scorers"][0].get(arg) for c in frame["config"]], index=frame.index)


def plot_metrics_vs(frame: pd.DataFrame, arg: str, path: Path, title: str = "") -> list[Path]:
    """One panel per metric: mean over categories (and seeds) against a scorer argument, a line per scorer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = frame.assign(**{arg: scorer_arg(frame, arg), "method": frame["scorer"].str.replace(r"\(.*\)", "",
                                                                                                regex=True)})
    panels = reported()  # one per metric of the metric table, and mAD
    mean = data.groupby(["method", arg])[[c.key for c in panels]].mean().reset_index()
    rows = -(-len(panels) // PANELS_PER_ROW)
    fig, axes = plt.subplots(rows, PANELS_PER_ROW, figsize=(14, 3 * rows), sharex=True, squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, column in zip(axes.ravel(), panels, strict=False):
        for method, group in mean.groupby("method", sort=False):
            group = group.sort_values(arg)
            ax.plot(group[arg], (100 if column.percent else 1) * group[column.key], marker="o", label=method)
        ax.set_title(column.header)
        ax.set_xlabel(arg)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or f"metrics (%) against {arg}")
    return save_figure(fig, path)


def save_figure(fig: Any, path: Path, dpi: int = 130) -> list[Path]:
    """Save ``fig`` as PNG and PDF next to each other and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=dpi)
    plt.close(fig)
    return paths


def plot_anomaly_maps(maps_file: str | Path, path: Path, title: str = "") -> Path:
    """Rows of (image, ground-truth mask, anomaly map overlaid on the image) for the saved samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    data = np.load(maps_file)
    maps, masks, images = data["maps"].astype(np.float32), data["masks"], data["images"]
    n, size = len(maps), maps.shape[-1]
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    lo, hi = float(maps.min()), float(maps.max())
    for row, (amap, mask, image) in enumerate(zip(maps, masks, images, strict=True)):
        with Image.open(str(image)) as img:
            rgb = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        axes[row, 0].imshow(rgb)
        axes[row, 1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        axes[row, 2].imshow(rgb)
        axes[row, 2].imshow(amap, cmap="jet", alpha=0.5, vmin=lo, vmax=hi)
        for ax, name in zip(axes[row], ("image", "mask", "anomaly map"), strict=True):
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
