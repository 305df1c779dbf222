"""How long a refused command takes: bad configs against `adbench list`, each the median of ``--repeats``
fresh processes (wall clock, interpreter start included). A typo should cost what `adbench list` costs.

Run: .venv/bin/python benchmarks/refusal_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAD_CONFIGS = {
    "key given twice": "train: {epochs: 2}\ntrain: {epochs: 3}\n",
    "unknown config key": "train: {epoch: 2}\n",
    "value out of range": "train: {epochs: 0}\n",
    "four unknown component names": "data: {dataset: mvtecc}\nbackbone: {name: effnet}\nnoise_net: {name: ditt}\n"
                                    "scoring: {scorers: [{name: osd_irfmean}]}\n",
    "alias bomb (10^9 values)": "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
        + "categories: *i\n",
}


def seconds(args: list[str], repeats: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "adbench", *args], capture_output=True).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {"adbench list (reference)": ["list"], "scorer argument of the wrong type (-s invad:steps=abc)":
                ["run", "-s", "invad:steps=abc", "--results-dir", tmp]}
        for name, text in BAD_CONFIGS.items():
            path = Path(tmp) / f"{len(rows)}.yaml"
            path.write_text(text)
            rows[name] = ["run", str(path), "--results-dir", tmp]
        reference = None
        print(f"{'command':58s} {'exit':>4s} {'median s':>9s} {'/ list':>7s}")
        for name, argv in rows.items():
            median, code = seconds(argv, args.repeats)
            reference = reference or median
            print(f"{name:58s} {code:4d} {median:9.2f} {median / reference:7.1f}")


if __name__ == "__main__":
    main()
