"""How far the pinned numbers move across what a user's machine can differ in, and the tolerances that follow.

The golden tests (``pytest -m golden``) run in fresh processes under each environment below: the
instruction sets that ATen's kernels (``ATEN_CPU_CAPABILITY``), MKL's BLAS (``MKL_ENABLE_INSTRUCTIONS``)
and oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``) use, alone and together as on an older or another
vendor's CPU, one and two threads, and the same environment twice. Each environment's numbers are
recorded (``ADBENCH_GOLDEN_RECORD``), a probe says which instruction set each library really used, and
every number's move from its pinned value (pinned on another machine) is measured.

A golden's tolerance for a metric is the next power of ten above ``MARGIN`` times the largest move of
that metric in that golden (``FLOOR`` when nothing moved). ``--write`` stores the tolerances and the
measurement in ``tests/golden/tolerance.json`` and ``tests/golden/README.md``.

    .venv/bin/python benchmarks/golden_spread.py [--jobs 2] [--write] [--only NAME] [--keep FOLDER]
    .venv/bin/python benchmarks/golden_spread.py --recorded FOLDER [FOLDER ...] [--write]

``--keep`` leaves each environment's numbers and ``environment.json`` in a folder; ``--recorded`` analyses
such folders, from this machine or others, together (a measurement on another CPU family widens the
tolerances it needs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
MARGIN = 10  # tolerance >= MARGIN x the largest move measured
FLOOR = 1e-9  # tolerance of a number that never moved (float64 arithmetic on the same ranks)

AVX2_MACHINE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SSE_MACHINE = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}
AVX512_MACHINE = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                  "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}  # AVX-512 without AMX or VNNI (Skylake-X, Zen 4)
# name -> environment variables; ADBENCH_PINNED_THREADS sets the torch threads of the pinned runs
ENVIRONMENTS = {
    "best, 1 thread": {},
    "best, 1 thread, again": {},  # a fresh process: bit-identical or not
    "best, 2 threads": {"ADBENCH_PINNED_THREADS": "2"},
    "ATen avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
    "AVX-512 without AMX": AVX512_MACHINE,
    "AVX2 machine": AVX2_MACHINE,
    "AVX2 machine, 2 threads": {**AVX2_MACHINE, "ADBENCH_PINNED_THREADS": "2"},
    "SSE4 machine": SSE_MACHINE,
    "SSE4 machine, 2 threads": {**SSE_MACHINE, "ADBENCH_PINNED_THREADS": "2"},
}

PROBE = """
import torch
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    torch.nn.Conv2d(32, 32, 3)(torch.randn(2, 32, 32, 32))
x = torch.randn(256, 256)
x @ x
print("ATEN", torch.backends.cpu.get_cpu_capability())
"""


def probe(env: dict[str, str]) -> dict[str, str]:
    """The instruction sets ATen, MKL and oneDNN use under ``env`` (their own words)."""
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env, "MKL_VERBOSE": "1"},
                         capture_output=True, text=True, check=True).stdout
    found = {"aten": re.search(r"^ATEN (\S+)", out, re.M), "onednn": re.search(r"cpu,isa:([^\n]+)", out),
             "mkl": re.search(r"architecture (.+?)(?: enabled processors)?, Lnx", out)}
    return {k: m.group(1).strip() if m else "?" for k, m in found.items()}


def record(tree: Path, out: Path, env: dict[str, str] | None = None, marker: str = "golden") -> tuple[float, str]:
    """Run the golden tests of ``tree`` (``marker``) under ``env`` in a fresh process, never failing on their
    numbers, which are recorded in ``out``; (seconds taken, "" or the end of pytest's report if a test failed)."""
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", marker, "-p", "no:cacheprovider"], cwd=tree,
                         env={**os.environ, **(env or {}), "ADBENCH_GOLDEN_RECORD": str(out),
                              "ADBENCH_GOLDEN_TOLERANCE": "inf"}, capture_output=True, text=True)
    return time.perf_counter() - start, run.stdout[-3000:] if run.returncode else ""


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("pinned with", None)
    return data


def largest_moves(pinned: dict, runs: dict[str, dict]) -> dict[str, dict]:
    """metric -> the largest |value - pinned| over rows and environments, with where it happened."""
    out: dict[str, dict] = {}
    for env, rows in runs.items():
        for move, label, metric in golden_numbers().moves(rows, pinned):
            if math.isinf(move):
                raise SystemExit(f"{label} {metric}: NaN in {env} or in the pinned value, not in both")
            entry = out.setdefault(metric, {"by": 0.0, "row": None, "environment": None})
            if move > entry["by"]:
                entry.update(by=move, row=label, environment=env)
    return out


def tolerance(move: float) -> float:
    """The next power of ten at or above MARGIN x ``move`` (FLOOR when it did not move)."""
    if move == 0:
        return FLOOR
    power = math.floor(math.log10(MARGIN * move))
    power += 10.0**power < MARGIN * move  # log10 may round either way at a power of ten
    return max(FLOOR, 10.0**power)


def identical(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def golden_numbers():
    """``tests/golden_numbers.py``: how the golden tests compare numbers."""
    sys.path.insert(0, str(ROOT))
    import tests.golden_numbers

    return tests.golden_numbers


def short_isa(words: str) -> str:
    """MKL's long description as its short names (``AVX-512, AMX``); other descriptions as they are."""
    return ", ".join(re.findall(r"\(Intel\(R\) ([A-Za-z0-9.\-]+)\)", words)) or words


def markdown(result: dict) -> str:
    lines = [
        "# Golden tolerances, measured",
        "",
        "Written by `benchmarks/golden_spread.py --write`; `tests/golden_numbers.py` reads `tolerance.json`.",
        f"Measured {result['measured']}, torch {result['torch']}: the golden tests (`pytest -m golden`) in a "
        "fresh process per environment, each number compared with its pinned value (pinned with: "
        + "; ".join(sorted(set(result["pinned_with"].values()))) + ").",
        f"Tolerance = the next power of ten at or above {MARGIN} x the largest move of a metric in a golden "
        f"({FLOOR:.0e} where it never moved).",
        "",
        "The environments are what a user's machine can differ in: the instruction sets of the kernels "
        "(ATen's own, MKL's matrix products, oneDNN's convolutions), alone and together as on a CPU with "
        "AVX-512 but no AMX, with AVX2 only, or with no AVX at all; one or two threads; a second fresh process. "
        "The pinned values come from the machine that pinned them, so every move below includes that machine's "
        "difference from the one measured. Image metrics are exact given the ranking of the image scores: "
        "they move only when two scores of opposite labels swap, by a whole step, which no tolerance absorbs.",
        "",
        "| environment | machine | variables | ATen | MKL | oneDNN | seconds (environments at once) |",
        "|---|---|---|---|---|---|---|",
    ]
    for env in result["environments"]:
        variables = " ".join(f"`{k}={v}`" for k, v in env["variables"].items()) or "(none)"
        isa = env["isa"]
        lines.append(f"| {env['name']} | {env['machine']} | {variables} | {isa['aten']} | {short_isa(isa['mkl'])} | "
                     f"{isa['onednn']} | {env['seconds']:.0f} ({env['at_once']}) |")
    lines += ["", f"Fresh processes: {result['fresh_processes']}.", "",
              "| golden | metric | largest move | row | environment | tolerance |", "|---|---|---|---|---|---|"]
    for golden, entry in result["goldens"].items():
        for metric, move in entry["largest_move"].items():
            where = (move["row"], move["environment"]) if move["by"] else ("", "")
            lines.append(f"| {golden} | {metric} | {move['by']:.3g} | {where[0]} | {where[1]} | "
                         f"{entry['tolerance'][metric]:.0e} |")
    return "\n".join(lines) + "\n"


def measure(name: str, env: dict[str, str], out: Path, jobs: int) -> None:
    """Record the golden numbers under ``env`` in ``out``, with ``environment.json``: what ran where (``jobs``:
    how many environments ran at once)."""
    seconds, failed = record(ROOT, out, env)
    if failed:
        raise SystemExit(f"{name}: a golden test failed to run:\n{failed}")
    (out / "environment.json").write_text(json.dumps({
        "name": name, "machine": golden_numbers().cpu_model(), "variables": env, "isa": probe(env),
        "seconds": round(seconds, 1), "at_once": jobs}, indent=1) + "\n")


def analyse(recorded: list[Path]) -> dict:
    """The largest moves and tolerances over the recorded environments (folders with environment.json)."""
    import torch

    envs = {json.loads((d / "environment.json").read_text())["name"]: d for d in recorded}
    order = list(ENVIRONMENTS)
    envs = dict(sorted(envs.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))
    names = sorted(p.stem for p in recorded[0].glob("*.json") if p.stem != "environment")
    runs = {golden: {env: load(d / f"{golden}.json") for env, d in envs.items()} for golden in names}
    pinned = {golden: json.loads((GOLDEN / f"{golden}.json").read_text()) for golden in names}
    pinned_with = {golden: data.pop("pinned with") for golden, data in pinned.items()}
    fresh = [env for env in envs if env.endswith(", again") and env.removesuffix(", again") in envs]
    same = all(identical(runs[g][env], runs[g][env.removesuffix(", again")]) for g in names for env in fresh)
    result = {
        "measured": datetime.date.today().isoformat(), "torch": torch.__version__, "margin": MARGIN, "floor": FLOOR,
        "pinned_with": pinned_with,
        "fresh_processes": ("bit-identical numbers in two fresh processes" if same
                            else "numbers differ between two fresh processes") if fresh else "not measured",
        "environments": [json.loads((d / "environment.json").read_text()) for d in envs.values()],
        "goldens": {},
    }
    for golden in names:
        largest = largest_moves(pinned[golden], runs[golden])
        result["goldens"][golden] = {"tolerance": {m: tolerance(v["by"]) for m, v in largest.items()},
                                     "largest_move": largest}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="environments run at once (each on its own threads)")
    parser.add_argument("--write", action="store_true", help="write tests/golden/tolerance.json and README.md")
    parser.add_argument("--only", help="only the environments whose name contains this")
    parser.add_argument("--keep", type=Path, help="keep each environment's recorded numbers in this folder")
    parser.add_argument("--recorded", type=Path, nargs="+", metavar="FOLDER",
                        help="analyse the environments recorded in these folders (--keep; from any machine) "
                             "instead of measuring")
    args = parser.parse_args()
    import torch

    if args.recorded:
        dirs = sorted(d for folder in args.recorded for d in folder.iterdir() if (d / "environment.json").is_file())
        result = analyse(dirs)
    else:
        envs = {k: v for k, v in ENVIRONMENTS.items() if not args.only or args.only in k}
        if "avx512" not in torch.backends.cpu.get_cpu_capability().lower():
            envs = {k: v for k, v in envs.items() if v.get("ATEN_CPU_CAPABILITY") != "avx512"}  # not this CPU
        with tempfile.TemporaryDirectory(prefix="adbench-spread-") as tmp:
            out = args.keep or Path(tmp)
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(lambda kv: measure(*kv, out / kv[0], args.jobs), envs.items()))
            result = analyse([out / env for env in envs])
    text = markdown(result)
    print(text)
    if args.write:
        (GOLDEN / "tolerance.json").write_text(json.dumps(result, indent=1) + "\n")
        (GOLDEN / "README.md").write_text(text)


if __name__ == "__main__":
    main()
