"""Figures generated from stored result rows (matplotlib, PNG and PDF)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from adbench.report.tables import COLUMNS

PLOTTED = [k for k in COLUMNS if k != "fps"]


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
    mean = data.groupby(["method", arg])[PLOTTED].mean().reset_index()
    fig, axes = plt.subplots(2, 4, figsize=(14, 6), sharex=True)
    for ax, key in zip(axes.ravel(), PLOTTED, strict=True):
        for method, group in mean.groupby("method", sort=False):
            group = group.sort_values(arg)
            ax.plot(group[arg], 100 * group[key], marker="o", label=method)
        ax.set_title(COLUMNS[key])
        ax.set_xlabel(arg)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or f"metrics (%) against {arg}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=130)
    plt.close(fig)
    return paths
