"""Plant the faults that change a published number, one at a time, and check that a test fails.

Each fault is a one-line edit of the source (the classes of fault listed in issue 16: scoring
wiring, keys, split, seeds, post-processing, metrics, scorers). Every fault is planted in a fresh
copy of the tracked tree, never in this checkout, and the tests that check numbers (the test files
``make mutation`` uses, from ``[tool.mutmut]`` in pyproject.toml; ``-m "not slow"``, stopping at the
first failure) run against it. A fault that no test catches is a hole in the suite.

``--effects`` measures instead how far each fault moves the pinned numbers (the fast golden tests, numbers
recorded, ``benchmarks/golden_spread.py``): the largest move against the goldens' tolerances, and whether the
same golden tests fail at those tolerances as at the old 1e-6 against this machine's own unfaulted numbers.

    .venv/bin/python benchmarks/planted_faults.py [--only SUBSTRING] [--effects]
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
from golden_spread import golden_numbers, load, record

ROOT = Path(__file__).resolve().parents[1]

# (what, file, text, replacement): the text must occur exactly once in the file.
FAULTS = [
    ("nll+diff image score from the NLL alone", "adbench/scorers/scoring.py",
     'parts = image_score.split("+")', 'parts = image_score.split("+")[:1]'),
    ("held-out normals also used for training", "adbench/engine/context.py",
     "ctx.features(ctx.split(c)[0], ", "ctx.features(ctx.dataset.train(c), "),
    ("multi-class model trained on the scored category alone", "adbench/engine/context.py",
     "for c in cfg.trained_on(category)])", "for c in [category]])"),
    ("feature standardisation skipped on test features", "adbench/engine/context.py",
     'normalise(ctx.features(test, f"{category}: test features"))', 'ctx.features(test, f"{category}: test features")'),
    ("knn bank not subsampled by the coreset", "adbench/scorers/knn.py",
     "self.bank = bank if n >= len(bank) else bank[greedy_coreset(bank, n, generator)]", "self.bank = bank"),
    ("train normalisation fitted on test features", "adbench/engine/scoring.py",
     "run_scorer(scorer, model, schedule, data.held_feats,", "run_scorer(scorer, model, schedule, data.test_feats,"),
    ("test-minmax used when train was asked", "adbench/scorers/scoring.py",
     "    if scoring.transductive:\n        norm", "    if True:\n        norm"),
    ("mAD not the mean of the seven metrics", "adbench/metrics/table.py",
     "chosen = [values[m.key] for m in METRICS if m.in_mad and not m.optional]",
     "chosen = [values[m.key] for m in METRICS[:6]]"),
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
    ("split ignores the seed", "adbench/engine/context.py",
     "order = np.random.default_rng(seed).permutation(len(samples))",
     "order = np.random.default_rng(0).permutation(len(samples))"),
    ("scoring noise ignores the seed", "adbench/engine/scoring.py",
     "gen = torch.Generator().manual_seed(seed)", "gen = torch.Generator().manual_seed(0)"),
    ("masks resized bilinearly (dilated defects)", "adbench/data/base.py",
     "image.resize((size, size), Image.NEAREST)) > 0", "image.resize((size, size), Image.BILINEAR)) > 0"),
    ("AU-PRO regions 4-connected", "adbench/metrics/pro.py",
     "EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)", "EIGHT_CONNECTED = ndimage.generate_binary_structure(2, 1)"),
    ("ELPV's held-out fraction inverted", "adbench/data/elpv.py",
     "(test if held_out else train).append", "(train if held_out else test).append"),
    ("OSD-IRF timestep off by one", "adbench/scorers/osd_irf.py",
     "schedule.abar[schedule.check_timestep(self.t)]", "schedule.abar[schedule.check_timestep(self.t) - 1]"),
    ("sqrt(abar) -> abar in the mean path", "adbench/scorers/osd_irf.py", "x_t = abar**0.5 * x0", "x_t = abar * x0"),
    ("ties counted as wins in AU-ROC", "adbench/metrics/ranking.py",
     "np.sum(c.counts() * (2 * below + ties)", "np.sum(c.counts() * (2 * below + 2 * ties)"),
    ("held-out normals not standardised (feature_norm: standardize)", "adbench/engine/context.py",
     'held_feats = normalise(ctx.features(held, f"{category}: held-out features"))',
     'held_feats = (ctx.features(held, f"{category}: held-out features"))'),
    ("random-init backbone drawn from seed 0 whatever the run's seed", "adbench/engine/context.py",
     "torch.manual_seed(cfg.seed)\n            backbone = BACKBONES.create",
     "torch.manual_seed(0)\n            backbone = BACKBONES.create"),
    ("feature-cache key of a random-init backbone without the seed", "adbench/engine/keys.py",
     'identity = info.identity + (f"(seed={cfg.seed})" if info.identity == "random-init" else "")',
     "identity = info.identity"),
    ("knn coreset drawn from seed 0 whatever the run's seed", "adbench/engine/scoring.py",
     "scorer.fit(bank, torch.Generator().manual_seed(cfg.seed), ctx.device)",
     "scorer.fit(bank, torch.Generator().manual_seed(0), ctx.device)"),
    ("adbench fps's pipeline timed without the backbone", "adbench/engine/fps.py",
     'out[label, "pipeline"] = lambda label=label: self.score(label, self.extract(self.images))',
     'out[label, "pipeline"] = lambda label=label: self.score(label, self.features)'),
    ("the FPS column timed on cached features, without the backbone", "adbench/engine/scoring.py",
     "feats = ctx.backbone(images)", "feats = data.test_feats[: len(images)]"),
    ("AU-PRO limit 0.3 -> 0.25", "adbench/metrics/summary.py",
     "pixel_metrics(maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.3,",
     "pixel_metrics(maps: np.ndarray, masks: np.ndarray, pro_limit: float = 0.25,"),
]

# issue 40: the code added since issue 25 (issue 30's metrics, report, data, engine and config), one fault each
NEW_CODE_FAULTS = [
    ("AU-sPRO's FPR over the anomaly-free images only", "adbench/metrics/spro.py",
     "curve(values[order], maps[~masks])", "curve(values[order], maps[~masks.reshape(len(masks), -1).any(axis=1)])"),
    ("AU-sPRO ignores the saturation area", "adbench/metrics/spro.py",
     "np.minimum(c / r.saturation, 1) - np.minimum((c - 1) / r.saturation, 1)",
     "np.minimum(c / len(v), 1) - np.minimum((c - 1) / len(v), 1)"),
    ("AUPIMO's upper FPR bound 1e-3", "adbench/metrics/pimo.py", "FPR_BOUNDS = (1e-5, 1e-4)",
     "FPR_BOUNDS = (1e-5, 1e-3)"),
    ("SegF1 binarises at >= the threshold", "adbench/metrics/segmentation.py",
     "predicted = amap.astype(np.float64) > threshold", "predicted = amap.astype(np.float64) >= threshold"),
    ("SegF1's threshold mean + 2 std", "adbench/metrics/segmentation.py",
     "def normal_threshold(normal_maps: np.ndarray, k: float = 3.0)",
     "def normal_threshold(normal_maps: np.ndarray, k: float = 2.0)"),
    ("mIoU-max over thresholds 0.1 apart", "adbench/metrics/segmentation.py",
     "ADER_THRESHOLDS = np.arange(0.0, 1.0 + 1e-3, 0.05)", "ADER_THRESHOLDS = np.arange(0.0, 1.0 + 1e-3, 0.1)"),
    ("DeLong's variance with ddof 0", "adbench/metrics/significance.py",
     "variance = np.var(v10_a - v10_b, ddof=1) / m + np.var(v01_a - v01_b, ddof=1) / n",
     "variance = np.var(v10_a - v10_b) / m + np.var(v01_a - v01_b) / n"),
    ("bootstrap draws anomalous and normal images together", "adbench/metrics/bootstrap.py",
     "    for group in (np.flatnonzero(anomalous), np.flatnonzero(~anomalous)):",
     "    for group in (np.arange(len(anomalous)),):"),
    ("bootstrap p from one side", "adbench/metrics/bootstrap.py",
     "p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))", "p = min(1.0, np.mean(d <= 0))"),
    ("MVTec 3D-AD AU-PRO not divided by its limit", "adbench/metrics/pro.py",
     "    return integrate_to(x, y, limit) / limit", "    return integrate_to(x, y, limit)"),
    ("significance marks at p < 0.1", "adbench/reporting/significance.py", "ALPHA = 0.05", "ALPHA = 0.1"),
    ("BMAD layout ranks the knn reference", "adbench/reporting/tables.py",
     "                           if not math.isnan(v) and not is_reference(method)})",
     "                           if not math.isnan(v)})"),
    ("Δ is paper - ours", "adbench/reporting/tables.py",
     "    delta = {k: (shown(k, stats[k][0]) - v if k != FPS.key",
     "    delta = {k: (v - shown(k, stats[k][0]) if k != FPS.key"),
    ("LOCO's relative saturation taken as absolute pixels", "adbench/data/mvtec.py",
     "sat = threshold * area if relative else min(threshold * size * size / (full[0] * full[1]), area)",
     "sat = min(threshold * size * size / (full[0] * full[1]), area)"),
    ("LOCO's two kinds pooled", "adbench/data/mvtec.py",
     'self.kinds_apart = tuple(self.kinds) if anomalies == "both" else ()', "self.kinds_apart = ()"),
    ("Real-IAD normal class ignored", "adbench/data/realiad.py",
     'normal = which == "train" or entry["mask_path"] is None or entry["anomaly_class"] == normal_class',
     'normal = which == "train" or entry["mask_path"] is None'),
    ("Real-IAD drops FUIAD's anomalous training entries", "adbench/data/realiad.py",
     '        return self.split(category, "train")',
     '        return [s for s in self.split(category, "train") if "NG" not in str(s.image_path)]'),
    ("BMAD masks paired in reverse order", "adbench/data/bmad.py",
     "    return [masks[p.name] for p in images]", "    return [masks[p.name] for p in reversed(images)]"),
    ("an archive member climbing out after a harmless first part is let through", "adbench/data/fetch.py",
     'if path.is_absolute() or ".." in path.parts or', 'if path.is_absolute() or path.parts[:1] == ("..",) or'),
    ("scoring.pro_limit never reaches AU-PRO", "adbench/engine/scoring.py",
     "    return metrics | pixel_metrics(maps, data.masks, pro_limit, extra,",
     "    return metrics | pixel_metrics(maps, data.masks, 0.3, extra,"),
    ("validation normals held out and trained on", "adbench/engine/context.py",
     "            return list(self.dataset.train(category)), self.dataset.validation_normals(category)",
     "            return list(self.dataset.train(category)) + self.dataset.validation_normals(category), "
     "self.dataset.validation_normals(category)"),
    ("peak_memory_mb in KiB", "adbench/engine/rows.py",
     "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,",
     "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"),
    ("LOCO's mean over kinds weighted by image count", "adbench/engine/scoring.py",
     "metrics = {k: float(np.mean([m[k] for m in by_kind.values()])) for k in next(iter(by_kind.values()))}",
     "metrics = {k: float(np.average([m[k] for m in by_kind.values()], weights=[len(i) for i in kinds.values()])) "
     "for k in next(iter(by_kind.values()))}"),
    ("scoring.aupro_impl accepted but unchecked", "adbench/metrics/summary.py",
     "    if aupro_impl not in AUPRO_IMPLS:", "    if False:"),
    ("scoring.pro_limit accepts 0", "adbench/config.py",
     "pro_limit: float = Field(0.3, gt=0, le=1)", "pro_limit: float = Field(0.3, ge=0, le=1)"),
    ("an unknown optional metric accepted", "adbench/engine/preflight.py",
     "    unknown = [k for k in keys if k not in known]", "    unknown = []"),
]
FAULTS += NEW_CODE_FAULTS


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


def first_failure(tree: Path, tests: list[str] | None = None) -> tuple[bool, str]:
    """Run the fast tests in ``tree`` (``tests``, else the selection in pyproject.toml); (caught, the first
    failing test)."""
    selection = tests or tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["mutmut"][
        "pytest_add_cli_args_test_selection"]
    out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                          *selection], cwd=tree, capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in out.stdout.splitlines() if line.startswith("FAILED ")]
    return out.returncode != 0, (failed[0] if failed else out.stdout.strip().splitlines()[-1])


OLD_TOLERANCE = 1e-6  # every golden number's tolerance before it was measured (issue 25)


def failing(got: dict[str, dict], want: dict[str, dict], tolerance) -> list[str]:
    """The goldens whose test fails when ``got`` is compared with ``want`` within ``tolerance(golden, metric)``
    (a crashed test, or other rows, fails too)."""
    moves = golden_numbers().moves
    return [golden for golden, numbers in want.items()
            if golden not in got or sorted(got[golden]) != sorted(numbers)
            or any(move > tolerance(golden, metric) for move, _, metric in moves(got[golden], numbers))]


def largest_effect(got: dict[str, dict], unfaulted: dict[str, dict], tolerance) -> tuple | None:
    """(move / its tolerance, move, golden, row, metric) of the pinned number a fault moves most, relative to
    its tolerance, from this machine's unfaulted numbers (inf when a test crashed or its rows changed); None
    when no number moved."""
    out = None
    for golden, numbers in unfaulted.items():
        if golden not in got or sorted(got[golden]) != sorted(numbers):
            return float("inf"), float("inf"), golden, "(rows differ or the test crashed)", ""
        for move, label, metric in golden_numbers().moves(got[golden], numbers):
            if move > 0:
                effect = (move / tolerance(golden, metric), move, golden, label, metric)
                out = effect if out is None else max(out, effect)
    return out


def effects(faults: list[tuple[str, str, str, str]]) -> int:
    """Print how far each fault moves the pinned numbers; the number of faults whose golden failures change."""
    marker = "golden and not slow"
    with tempfile.TemporaryDirectory(prefix="adbench-effects-") as tmp:
        record(ROOT, Path(tmp) / "unfaulted", marker=marker)
        unfaulted = {p.stem: load(p) for p in (Path(tmp) / "unfaulted").glob("*.json")}
    pins = {name: load(golden_numbers().GOLDEN / f"{name}.json") for name in unfaulted}
    tolerance = golden_numbers().tolerance
    print(f"| fault | its largest effect on a pinned number | x that number's tolerance | goldens failing at "
          f"{OLD_TOLERANCE:.0e} (vs this machine's unfaulted numbers) | at the tolerances (vs the pins) |\n"
          "|---|---|---|---|---|")
    changed, smallest = 0, None
    for what, file, text, replacement in faults:
        with tempfile.TemporaryDirectory(prefix="adbench-fault-") as tmp:
            tree = Path(tmp) / ROOT.name
            tracked_copy(tree)
            if (ROOT.parent / "shared").is_dir():  # the shared data beside the copy, as beside this checkout
                (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
            plant(tree, file, text, replacement)
            record(tree, Path(tmp) / "numbers", marker=marker)
            got = {p.stem: load(p) for p in (Path(tmp) / "numbers").glob("*.json")}
        old, new = failing(got, unfaulted, lambda golden, metric: OLD_TOLERANCE), failing(got, pins, tolerance)
        changed += old != new
        effect = largest_effect(got, unfaulted, tolerance)
        if effect and (smallest is None or effect < smallest[1]):
            smallest = (what, effect)
        moved = f"{effect[1]:.3g} ({effect[2]}: {effect[3]} {effect[4]})" if effect else "none moves"
        print(f"| {what} | {moved} | {f'{effect[0]:.3g}' if effect else '-'} | {', '.join(old) or '-'} | "
              f"{', '.join(new) or '-'} |", flush=True)
    if smallest:
        what, (ratio, move, golden, label, metric) = smallest
        print(f"\nSmallest effect of a fault that moves a pinned number ({what}): {move:.3g} on {golden}: {label} "
              f"{metric}, {ratio:.3g} x its tolerance {tolerance(golden, metric):.0e}.")
    print(f"{len(faults) - changed} of {len(faults)} faults fail the same golden tests at the measured tolerances "
          f"as at {OLD_TOLERANCE:.0e}.")
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="plant only the faults whose description contains this")
    parser.add_argument("--effects", action="store_true",
                        help="how far each fault moves the pinned numbers, against the goldens' tolerances")
    parser.add_argument("--new-code", action="store_true", help="only the faults in the code added since issue 25")
    parser.add_argument("--tests", nargs="+", help="the test files to run (default: pyproject's selection)")
    args = parser.parse_args()
    faults = [f for f in (NEW_CODE_FAULTS if args.new_code else FAULTS) if not args.only or args.only in f[0]]
    if args.effects:
        sys.exit(1 if effects(faults) else 0)
    missed = 0
    print("| fault | caught | first failing test |\n|---|---|---|")
    for what, file, text, replacement in faults:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="adbench-fault-") as tmp:
            tree = Path(tmp)
            tracked_copy(tree)
            plant(tree, file, text, replacement)
            caught, test = first_failure(tree, args.tests)
        missed += not caught
        print(f"| {what} | {'yes' if caught else '**NO**'} | `{test}` ({time.perf_counter() - start:.0f} s) |",
              flush=True)
    print(f"\n{len(faults) - missed} of {len(faults)} planted faults make a test fail.")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
