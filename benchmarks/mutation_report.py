"""Mutation score per package from the last ``make mutation`` run (mutmut 3's ``mutants/`` folder).

Score = (killed + timeout) / checked mutants. Survivors listed in ``benchmarks/equivalent_mutants.yaml``
(name -> one line why) are equivalent: they are shown with their reason and left out of the adjusted
score. Every other survivor is printed with its diff: kill it with a test or explain it there.

    .venv/bin/python benchmarks/mutation_report.py [--diffs]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = Path(__file__).with_name("equivalent_mutants.yaml")
KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"


def status(exit_code: int | None) -> str:
    """mutmut 3's meaning of a mutant's exit code (``mutmut.stats.status_by_exit_code``)."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def package(mutant: str) -> str:
    """``adbench.metrics.ranking.x_auroc__mutmut_3`` -> ``metrics``; config keys count as the engine's."""
    part = mutant.split(".")[1]
    return "engine" if part == "config" else part


def results() -> dict[str, str]:
    out = {}
    for meta in sorted((ROOT / "mutants" / "adbench").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is not None:  # None: not selected by this run's name patterns
                out[name] = status(code)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffs", action="store_true", help="print the diff of every unexplained survivor")
    args = parser.parse_args()
    found = results()
    if not found:
        raise SystemExit("No mutmut results under mutants/: run `make mutation` first.")
    equivalent = yaml.safe_load(EQUIVALENT.read_text()) or {} if EQUIVALENT.is_file() else {}
    counts: dict[str, Counter] = defaultdict(Counter)
    for name, st in found.items():
        counts[package(name)][st] += 1
        if st == SURVIVED and name in equivalent:
            counts[package(name)]["equivalent"] += 1
    print("| package | mutants | killed | timeout | survived | equivalent | other | score | score w/o equivalent |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pkg, c in sorted(counts.items()):
        total = sum(v for k, v in c.items() if k != "equivalent")
        caught = c[KILLED] + c[TIMEOUT]
        other = total - caught - c[SURVIVED]
        print(f"| {pkg} | {total} | {c[KILLED]} | {c[TIMEOUT]} | {c[SURVIVED]} | {c['equivalent']} | {other} | "
              f"{100 * caught / total:.1f}% | {100 * caught / (total - c['equivalent']):.1f}% |")
    survivors = sorted(n for n, st in found.items() if st == SURVIVED)
    print("\nEquivalent survivors:")
    for name in survivors:
        if name in equivalent:
            print(f"- `{name}`: {equivalent[name]}")
    unexplained = [n for n in survivors if n not in equivalent]
    print(f"\nUnexplained survivors: {len(unexplained)}")
    for name in unexplained:
        print(f"- `{name}`")
        if args.diffs:
            diff = subprocess.run([str(ROOT / ".venv" / "bin" / "mutmut"), "show", name], cwd=ROOT,
                                  capture_output=True, text=True).stdout
            print("\n".join("    " + line for line in diff.splitlines()))
    stale = sorted(n for n in equivalent if found.get(n) != SURVIVED)
    if stale:
        print(f"\nListed as equivalent but not surviving in this run (remove them): {', '.join(stale)}")
    odd = sorted(n for n, st in found.items() if st not in (KILLED, SURVIVED, TIMEOUT))
    if odd:
        print(f"\nOther outcomes ({len(odd)}): " + ", ".join(f"`{n}` {found[n]}" for n in odd))


if __name__ == "__main__":
    main()
