"""Plant the faults that change a published number, one at a time, and check that a test fails.

Each fault is a one-line edit of the source (the classes of fault listed in issue 16: scoring
wiring, keys, split, seeds, post-processing, metrics, scorers). Every fault is planted in a fresh
copy of the tracked tree, never in this checkout, and the tests that check numbers (the test files
``make mutation`` uses, from ``[tool.mutmut]`` in pyproject.toml; ``-m "not slow"``, stopping at the
first failure) run against it. A fault that no test catches is a hole in the suite.

    .venv/bin/python benchmarks/planted_faults.py [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

# (what, file, text, replacement): the text must occur exactly once in the file.
FAULTS = [
    ("nll+diff image score from the NLL alone", "adbench/scorers/scoring.py",
     'parts = image_score.split("+")', 'parts = image_score.split("+")[:1]'),
    ("held-out normals also used for training", "adbench/engine/run.py",
     "ctx.features(ctx.split(c)[0], ", "ctx.features(ctx.dataset.train(c), "),
    ("multi-class model trained on the scored category alone", "adbench/engine/run.py",
     "for c in cfg.trained_on(category)])", "for c in [category]])"),
    ("feature standardisation skipped on test features", "adbench/engine/run.py",
     'normalise(ctx.features(test, f"{category}: test features"))', 'ctx.features(test, f"{category}: test features")'),
    ("knn bank not subsampled by the coreset", "adbench/scorers/knn.py",
     "self.bank = bank if n >= len(bank) else bank[greedy_coreset(bank, n, generator)]", "self.bank = bank"),
    ("train normalisation fitted on test features", "adbench/engine/run.py",
     "run_scorer(scorer, model, schedule, data.held_feats,", "run_scorer(scorer, model, schedule, data.test_feats,"),
    ("test-minmax used when train was asked", "adbench/scorers/scoring.py",
     "    if scoring.transductive:\n        norm", "    if True:\n        norm"),
    ("mAD not the mean of the seven metrics", "adbench/metrics/table.py",
     "chosen = [values[m.key] for m in METRICS if m.in_mad]", "chosen = [values[m.key] for m in METRICS[:6]]"),
    ("smoothing sigma ignored", "adbench/scorers/scoring.py",
     "pixel_maps_on_device(fmap, image_size, scoring.smoothing_sigma, scoring.align_corners)",
     "pixel_maps_on_device(fmap, image_size, 0.0, scoring.align_corners)"),
    ("max-pool size ignored", "adbench/scorers/scoring.py",
     "max_score_on_device(maps, scoring.pool_size)", "max_score_on_device(maps, 1)"),
    ("upsampling align_corners flipped", "adbench/protocols.py",
     '"invad": Scoring("nll+diff", 0.0, 1, "train", False, "nearest")',
     '"invad": Scoring("nll+diff", 0.0, 1, "train", True, "nearest")'),
    ("InvAD feeds the clean features at every step", "adbench/scorers/invad.py",
     "ddim_step(x, model(x, timesteps_like(x, t_eval))", "ddim_step(x, model(x0, timesteps_like(x, t_eval))"),
    ("InvAD steps=0 inverts anyway", "adbench/scorers/invad.py",
     "        if self.steps == 0:\n            return []", "        if self.steps == 0:\n            self.steps = 1"),
    ("InvAD single step to abar[999] instead of the code's abar = 0", "adbench/scorers/invad.py",
     "abar_to = [float(abar[t]) for t in evals[1:]] + [0.0]",
     "abar_to = [float(abar[t]) for t in evals[1:]] + [float(abar[-1])] * (len(evals) < 2) + [0.0] * (len(evals) > 1)"),
    ("pixels: rows and columns of a patch swapped", "adbench/backbones/pixels.py",
     "return F.pixel_unshuffle(images, self.patch)", "return F.pixel_unshuffle(images.transpose(-1, -2), self.patch)"),
    ("pixels: not standardised unless asked", "adbench/config.py",
     'STANDARDISED_BACKBONES = {"pixels": "standardize"}', 'STANDARDISED_BACKBONES = {"pixels": "none"}'),
    ("reconstruction feeds the clean features at every step", "adbench/scorers/reconstruction.py",
     "ddim_step(x, model(x, timesteps_like(x, t))", "ddim_step(x, model(x0, timesteps_like(x, t))"),
    ("training key without the seed", "adbench/engine/keys.py",
     '{"data", "noise_net", "train", "seed", "deterministic"}', '{"data", "noise_net", "train", "deterministic"}'),
    ("cell key without the scoring section", "adbench/engine/keys.py",
     'cfg.model_dump(exclude={"runtime"})', 'cfg.model_dump(exclude={"runtime", "scoring"})'),
    ("feature-cache key without the image transform", "adbench/engine/keys.py",
     '{**cfg.backbone.model_dump(), "weights": identity, "image_mean": list(mean), "image_std": list(std)}',
     '{**cfg.backbone.model_dump(exclude={"image_size", "image_mean", "image_std"}), "weights": identity}'),
    ("feature-cache key without the weights file", "adbench/engine/keys.py",
     '"weights": identity, ', ""),
    ("split ignores the seed", "adbench/engine/run.py",
     "order = np.random.default_rng(seed).permutation(len(samples))",
     "order = np.random.default_rng(0).permutation(len(samples))"),
    ("scoring noise ignores the seed", "adbench/engine/run.py",
     "gen = torch.Generator().manual_seed(seed)", "gen = torch.Generator().manual_seed(0)"),
    ("masks resized bilinearly (dilated defects)", "adbench/data/base.py",
     "binary.resize((size, size), Image.NEAREST)) > 0", "binary.resize((size, size), Image.BILINEAR)) > 0"),
    ("AU-PRO regions 4-connected", "adbench/metrics/pro.py",
     "EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)", "EIGHT_CONNECTED = ndimage.generate_binary_structure(2, 1)"),
    ("ELPV's held-out fraction inverted", "adbench/data/elpv.py",
     "(test if held_out else train).append", "(train if held_out else test).append"),
    ("OSD-IRF timestep off by one", "adbench/scorers/osd_irf.py",
     "schedule.abar[schedule.check_timestep(self.t)]", "schedule.abar[schedule.check_timestep(self.t) - 1]"),
    ("sqrt(abar) -> abar in the mean path", "adbench/scorers/osd_irf.py", "x_t = abar**0.5 * x0", "x_t = abar * x0"),
    ("ties counted as wins in AU-ROC", "adbench/metrics/ranking.py",
     "u2 = np.sum(count * (2 * below + ties)", "u2 = np.sum(count * (2 * below + 2 * ties)"),
    ("AU-PRO limit 0.3 -> 0.25", "adbench/metrics/summary.py",
     "pixel_metrics(maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.3)",
     "pixel_metrics(maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.25)"),
]


def tracked_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def plant(tree: Path, file: str, text: str, replacement: str) -> None:
    path = tree / file
    source = path.read_text()
    if source.count(text) != 1:
        raise SystemExit(f"{file}: the fault's text occurs {source.count(text)} times (expected once): {text!r}")
    path.write_text(source.replace(text, replacement))


def first_failure(tree: Path) -> tuple[bool, str]:
    """Run the fast tests in ``tree``; (caught, the first failing test)."""
    selection = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["mutmut"]
    out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                          *selection["pytest_add_cli_args_test_selection"]], cwd=tree, capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in out.stdout.splitlines() if line.startswith("FAILED ")]
    return out.returncode != 0, (failed[0] if failed else out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="plant only the faults whose description contains this")
    args = parser.parse_args()
    faults = [f for f in FAULTS if not args.only or args.only in f[0]]
    missed = 0
    print("| fault | caught | first failing test |\n|---|---|---|")
    for what, file, text, replacement in faults:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="adbench-fault-") as tmp:
            tree = Path(tmp)
            tracked_copy(tree)
            plant(tree, file, text, replacement)
            caught, test = first_failure(tree)
        missed += not caught
        print(f"| {what} | {'yes' if caught else '**NO**'} | `{test}` ({time.perf_counter() - start:.0f} s) |",
              flush=True)
    print(f"\n{len(faults) - missed} of {len(faults)} planted faults make a test fail.")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
