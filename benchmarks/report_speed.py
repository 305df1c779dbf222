"""How long `adbench report` takes without figures: the quick grid of `osd_irf_table1` (12 rows), and those rows
made 108 (nine training-epoch variants of each method: 36 methods in the averaged table, 108 rows per category),
each the median of ``--repeats`` fresh processes (wall clock, interpreter start included), beside the floor of
any report: a fresh interpreter that imports pandas and reads the same rows.

Run: .venv/bin/python benchmarks/report_speed.py [--grid results/grid-osd-irf-table1-quick] [--repeats 5]
(the grid is run with --quick into a temporary folder when none is given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def variants(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """``rows`` n times over, each copy with its own train.epochs (a method of its own in the tables)."""
    copies = []
    for epochs in range(1, n + 1):
        configs = [json.loads(c) for c in rows["config"]]
        for c in configs:
            c["train"]["epochs"] = epochs
        copies.append(rows.assign(config=[json.dumps(c) for c in configs],
                                  cell_key=[f"{k}-{epochs}" for k in rows["cell_key"]]))
    return pd.concat(copies, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grid = args.grid
        if grid is None:
            subprocess.run([sys.executable, "-m", "adbench", "grid", "registry/osd_irf_table1.yaml", "--quick",
                            "--results-dir", tmp], capture_output=True, check=True)
            grid = Path(tmp) / "grid-osd-irf-table1-quick"
        rows = pd.read_parquet(grid / "metrics.parquet")
        many = Path(tmp) / "many.parquet"
        variants(rows, 9).to_parquet(many)
        print("| rows | adbench report (s) | import pandas + read the rows (s) | ratio |\n|---|---|---|---|")
        for source, n in ((grid, len(rows)), (many, 9 * len(rows))):
            report = seconds([sys.executable, "-m", "adbench", "report", str(source), "--out", f"{tmp}/t"],
                             args.repeats)
            path = source / "metrics.parquet" if source.is_dir() else source
            floor = seconds([sys.executable, "-c", f"import pandas; pandas.read_parquet({str(path)!r})"],
                            args.repeats)
            print(f"| {n} | {report:.2f} | {floor:.2f} | {report / floor:.1f} |")


if __name__ == "__main__":
    main()
