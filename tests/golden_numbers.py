"""Pinned end-to-end numbers: result rows compared with a golden JSON file within measured tolerances.

Each number may move by its golden's tolerance for its metric (``tests/golden/tolerance.json``): ten times
the largest move measured across CPU instruction sets, thread counts and fresh processes, written beside
the goldens with the measurement (``tests/golden/README.md``; ``benchmarks/golden_spread.py`` measures it
again). A wrong number moves far more than that (``benchmarks/planted_faults.py --effects`` reports how
far each planted fault moves them).

When a change moves the numbers on purpose, regenerate with ``ADBENCH_UPDATE_GOLDEN=1 make test``,
review the diff and commit the new file with the change, saying why the numbers moved.

Environment: ``ADBENCH_GOLDEN_RECORD=DIR`` also writes the numbers a test got to ``DIR/<golden>.json``
(the spread measurement reads them); ``ADBENCH_GOLDEN_TOLERANCE=X`` compares every number within ``X``
instead (a planted fault's effect at another tolerance).
"""

import functools
import json
import math
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from adbench.metrics import reported

GOLDEN = Path(__file__).parent / "golden"
TOLERANCES = GOLDEN / "tolerance.json"


def pinned(frame: pd.DataFrame, by: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """``{"<by values joined by ' / '>": {metric: value (None for NaN)}}``, sorted."""
    out = {}
    for _, row in frame.iterrows():
        label = " / ".join(str(row[k]) for k in by)
        assert label not in out, f"two rows for {label}"
        out[label] = {k: None if math.isnan(row[k]) else float(row[k]) for k in (c.key for c in reported())}
    return dict(sorted(out.items()))


VECTOR_FLAGS = ("avx2", "avx512f", "amx_tile", "asimd", "sve")  # what tells CPU families apart numerically


def cpu_model() -> str:
    """The CPU's model name and vector extensions (``/proc/cpuinfo``; the platform's processor elsewhere)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name") or fields.get("CPU part") or platform.machine()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return f"{name} ({' '.join(f for f in VECTOR_FLAGS if f in flags) or 'no AVX2'})"


def environment() -> str:
    """Where numbers are computed: torch, the CPU and the instruction set ATen's kernels use, the threads."""
    return (f"torch {torch.__version__} on {platform.machine()}, {cpu_model()}, "
            f"ATen {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} thread(s)")


@functools.cache
def tolerance_table() -> dict[str, dict[str, float]]:
    """Golden name -> metric -> tolerance (absolute)."""
    return {name: entry["tolerance"] for name, entry in json.loads(TOLERANCES.read_text())["goldens"].items()}


def tolerance(name: str, metric: str) -> float:
    if "ADBENCH_GOLDEN_TOLERANCE" in os.environ:
        return float(os.environ["ADBENCH_GOLDEN_TOLERANCE"])
    table = tolerance_table()
    assert name in table and metric in table[name], (
        f"{TOLERANCES} has no tolerance for {name} {metric}: measure it with benchmarks/golden_spread.py")
    return table[name][metric]


def moves(got: dict, want: dict) -> list[tuple[float, str, str]]:
    """(|got - want|, row, metric) of every number of ``want`` (inf where one is NaN and the other not)."""
    out = []
    for label, metrics in want.items():
        for key, value in metrics.items():
            have = got[label][key]
            if value is None or have is None:
                out.append((0.0 if have is value else float("inf"), label, key))
            else:
                out.append((abs(have - value), label, key))
    return out


def assert_matches_golden(name: str, frame: pd.DataFrame, by: tuple[str, ...] = ("category", "scorer_label")) -> None:
    got = pinned(frame, by)
    path = GOLDEN / f"{name}.json"
    here = environment()
    if os.environ.get("ADBENCH_GOLDEN_RECORD"):
        record = Path(os.environ["ADBENCH_GOLDEN_RECORD"]) / f"{name}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"pinned with": here, **got}, indent=1) + "\n")
    if os.environ.get("ADBENCH_UPDATE_GOLDEN"):
        path.write_text(json.dumps({"pinned with": here, **got}, indent=1) + "\n")
    want = json.loads(path.read_text())
    where = f"pinned with {want.pop('pinned with')}, running {here}"
    assert sorted(got) == sorted(want), f"{path}: the rows differ"
    # every number off its pinned value, so that one failure shows how far the whole file moved
    off = [(move, f"{label} {key} is {got[label][key]}, pinned {want[label][key]} (tolerance {tol:.0e})")
           for move, label, key in moves(got, want) if move > (tol := tolerance(name, key))]
    assert not off, (f"{path}: {len(off)} numbers off, the largest by {max(off)[0]:.3g}: {max(off)[1]}; "
                     f"first {off[0][1]} ({where})")
