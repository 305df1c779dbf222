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
GROUP = ["dataset", "scorer", "backbone", "noise_net", "protocol", "transductive"]
TRANSDUCTIVE_MARK = "†"


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
        header = ["Dataset", "Category", "Scorer", "Backbone", "Noise net", "Protocol", *COLUMNS.values()]
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in block.iterrows():
            scorer = row["scorer"] + (TRANSDUCTIVE_MARK if row["transductive"] else "")
            cells = [row["dataset"], row["category"], scorer, row["backbone"], row["noise_net"], row["protocol"]]
            cells += [_cell(k, row[k]) for k in COLUMNS]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append("")
    lines.append(footnote(frame))
    return "\n".join(lines) + "\n"


def footnote(frame: pd.DataFrame) -> str:
    """What the numbers mean: units, devices, protocols and the transductive flag."""
    devices = sorted(frame["device"].unique())
    fps = (f"FPS in images/s (backbone + scorer, batch {int(frame['fps_batch_size'].iloc[0])}) on "
           + (devices[0] if len(devices) == 1 else f"DIFFERENT devices ({'; '.join(devices)}): not comparable"))
    protocols = []
    for name, group in frame.groupby("protocol", sort=True):
        row = group.iloc[0]
        scores = "/".join(sorted(group["image_score"].unique()))
        protocols.append(f"{name} = image score {scores}, smoothing sigma {row['smoothing_sigma']:g}, "
                         f"pool {int(row['pool_size'])}")
    text = (f"Metrics in %; {fps}. Protocols: {'; '.join(protocols)}. "
            "n/a: not defined for this data (e.g. no pixel masks).")
    if frame["transductive"].any():
        text += (f" {TRANSDUCTIVE_MARK} transductive: image-score components min-max normalised over the test set "
                 "(as the official InvAD code); others use held-out normal training images.")
    return text
