"""Pinned end-to-end numbers: result rows compared with a golden JSON file to 1e-6.

When a change moves the numbers on purpose, regenerate with ``ADBENCH_UPDATE_GOLDEN=1 make test``,
review the diff and commit the new file with the change, saying why the numbers moved. The numbers
are CPU numbers of the pinned torch (the Makefile's); another torch release or CPU family may round
differently, and the failure message then says which environment pinned them.
"""

import json
import math
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from adbench.metrics import reported

GOLDEN = Path(__file__).parent / "golden"


def pinned(frame: pd.DataFrame, by: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """``{"<by values joined by ' / '>": {metric: value (None for NaN)}}``, sorted."""
    out = {}
    for _, row in frame.iterrows():
        label = " / ".join(str(row[k]) for k in by)
        assert label not in out, f"two rows for {label}"
        out[label] = {k: None if math.isnan(row[k]) else float(row[k]) for k in (c.key for c in reported())}
    return dict(sorted(out.items()))


def assert_matches_golden(name: str, frame: pd.DataFrame, by: tuple[str, ...] = ("category", "scorer_label")) -> None:
    got = pinned(frame, by)
    path = GOLDEN / f"{name}.json"
    here = f"torch {torch.__version__} on {platform.machine()}"
    if os.environ.get("ADBENCH_UPDATE_GOLDEN"):
        path.write_text(json.dumps({"pinned with": here, **got}, indent=1) + "\n")
    want = json.loads(path.read_text())
    where = f"pinned with {want.pop('pinned with')}, running {here}"
    assert sorted(got) == sorted(want), f"{path}: the rows differ"
    off = []  # every number off its pinned value, so that one failure shows how far the whole file moved
    for label, metrics in want.items():
        for key, value in metrics.items():
            have = got[label][key]
            ok = have is None if value is None else have is not None and abs(have - value) <= 1e-6
            if not ok:
                off.append((abs(have - value) if None not in (have, value) else float("inf"),
                            f"{label} {key} is {have}, pinned {value}"))
    assert not off, (f"{path}: {len(off)} numbers off, the largest by {max(off)[0]:.3g}: {max(off)[1]}; "
                     f"first {off[0][1]} ({where})")
