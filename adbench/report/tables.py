"""Markdown tables of the seven metrics, mAD and FPS, keyed by metric name (columns cannot shift)."""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = {  # metric key -> header
    "image_auroc": "I-AUROC", "image_ap": "I-AP", "image_f1max": "I-F1max",
    "pixel_auroc": "P-AUROC", "pixel_ap": "P-AP", "pixel_f1max": "P-F1max", "pixel_aupro": "AU-PRO",
    "mad": "mAD", "fps": "FPS",
}
PERCENT = set(COLUMNS) - {"fps"}
GROUP = ["dataset", "scorer", "backbone", "noise_net"]


def _cell(key: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}" if key in PERCENT else f"{value:.1f}"


def averaged(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over categories of every metric column, per method (scorer, backbone, noise net)."""
    return frame.groupby(GROUP, sort=False)[list(COLUMNS)].mean().reset_index()


def markdown_table(frame: pd.DataFrame, per_category: bool = True) -> str:
    """Averaged table (and per-category rows) in Markdown; metrics in %, FPS in images/s."""
    lines = []
    blocks = [("Mean over categories", averaged(frame).assign(category="mean"))]
    if per_category:
        blocks.append(("Per category", frame))
    for title, block in blocks:
        header = ["Dataset", "Category", "Scorer", "Backbone", "Noise net", *COLUMNS.values()]
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in block.iterrows():
            cells = [row["dataset"], row["category"], row["scorer"], row["backbone"], row["noise_net"]]
            cells += [_cell(k, row[k]) for k in COLUMNS]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append("")
    devices = sorted(frame["device"].unique()) if "device" in frame else []
    lines.append(f"Metrics in %, FPS in images/s (backbone + scorer, batch {int(frame['fps_batch_size'].iloc[0])}) "
                 f"on {', '.join(devices)}. Image scores normalised with held-out normal training images. "
                 "n/a: not defined for this data (e.g. no pixel masks).")
    return "\n".join(lines) + "\n"
