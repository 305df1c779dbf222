"""The measured effect of each setting that deviates from the papers', one change at a time.

A base run in the papers' setting (multi-class, the official code's InvAD subset, raw features,
raw weights scored, test-set min-max normalisation, InvAD maps) at a CPU-sized scale (EfficientNet-
Lite0, a small MLP, short training) is compared with runs that change one key each. Every run is an
ordinary grid (features and trained models are shared through the cache, so a scoring-only change
costs one scoring pass). Prints a Markdown table of the mean metrics and their change against the
base, measured in this run; ``docs/reproduction.md`` quotes it.

Run: .venv/bin/python benchmarks/deviations.py [--data-root ../shared/data] [--category hazelnut_toy]
     .venv/bin/python benchmarks/deviations.py --dataset synthetic   # the embedded dataset, 3 categories
     .venv/bin/python benchmarks/deviations.py --base-only --noise-net unet --net-args '{base: 64}' \
         --scorers osd_irf_mean invad   # one row, another net: to compare two versions of the code
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from adbench.config import parse_scorer, with_overrides
from adbench.engine.grid import GridRunner, GridSpec
from adbench.metrics import metric_keys

SHOWN = {"image_auroc": "I-AUROC", "pixel_auroc": "P-AUROC", "pixel_aupro": "AU-PRO", "mad": "mAD"}

# (what changes, key = value): one deviation from the base each
VARIANTS = [
    ("papers' setting (base)", {}),
    ("InvAD timesteps of a third-party reading of the paper", {"scorer.subset": "even"}),
    ("normalisation by held-out normals instead of the test set", {"scoring.normalisation": "train"}),
    ("EMA weights scored instead of the raw ones", {"scoring.use_ema": True}),
    ("per-channel feature standardisation", {"noise_net.feature_norm": "standardize"}),
    ("ADer's protocol (sigma 4, pooled max, align_corners, bilinear masks)", {"scoring.protocol": "ader"}),
    ("one noise net per category (single-class)", {"data.setting": "single"}),
    ("backbone in bf16 (CUDA only; CPU runs fp32 whatever is asked)", {"backbone.precision": "bf16"}),
    ("noise net trained in bf16 (CUDA only; CPU runs fp32 whatever is asked)", {"train.precision": "bf16"}),
    ("an epoch's incomplete last batch trained too", {"train.drop_last": False}),
]


def base_config(args: argparse.Namespace) -> dict:
    data = {"runtime": {"name": "deviations"}, "data": {"dataset": args.dataset},
            "backbone": {"name": "efficientnet_lite0", "image_size": args.image_size},
            "noise_net": {"name": args.noise_net, "args": yaml.safe_load(args.net_args)},
            "train": {"epochs": args.epochs, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 2},
            "scoring": {"scorers": [parse_scorer(s) for s in args.scorers], "normalisation": "test-minmax"},
            "seed": args.seed}
    if args.dataset == "synthetic":
        return with_overrides(data, {"data.args": {"n_train": 40, "n_good": 8, "n_per_defect": 4}})
    return with_overrides(data, {"data.root": args.data_root, "categories": [args.category]})


def run_variant(index: int, name: str, changes: dict, base: dict, results: Path, cache: Path) -> pd.DataFrame:
    runner = GridRunner(GridSpec(name=f"deviation-{index}", base=with_overrides(base, changes)), results, cache)
    frame = runner.run(runner.cells())
    if len(frame) != len(runner.cells()):
        raise SystemExit(f"{name}: {len(runner.cells()) - len(frame)} cells failed; see {runner.grid_dir}")
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mvtec")
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--category", default="hazelnut_toy")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--noise-net", default="mlp")
    ap.add_argument("--net-args", default="{width: 256, depth: 4}", help="The noise net's arguments (YAML).")
    ap.add_argument("--scorers", nargs="+", default=["invad:steps=3"], help="Scorers, averaged in the table.")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--base-only", action="store_true", help="Only the base row.")
    args = ap.parse_args()
    base = base_config(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, changes) in enumerate(VARIANTS[:1] if args.base_only else VARIANTS):
            frame = run_variant(index, name, changes, base, Path(tmp) / "results", Path(tmp) / "cache")
            rows.append({"change": name, "key": ", ".join(f"`{k}: {v}`" for k, v in changes.items()) or "-",
                         **frame[list(metric_keys()) + ["mad"]].mean().to_dict()})
    table = pd.DataFrame(rows)
    where = f"{args.dataset}" + ("" if args.dataset == "synthetic" else f" / {args.category}")
    print(f"{where}, {args.image_size} px, EfficientNet-Lite0, {args.noise_net} {args.net_args}, {args.epochs} "
          f"epochs, {' '.join(args.scorers)}, seed {args.seed}; metrics in %, mean over categories and scorers; "
          "change in mAD against the base\n")
    print("| change | key | " + " | ".join(SHOWN.values()) + " | change in mAD |")
    print("|---|---|" + "---|" * (len(SHOWN) + 1))
    base_mad = table["mad"].iloc[0]
    for _, r in table.iterrows():
        cells = " | ".join(f"{100 * r[k]:.1f}" for k in SHOWN)
        print(f"| {r['change']} | {r['key']} | {cells} | {100 * (r['mad'] - base_mad):+.1f} |")


if __name__ == "__main__":
    main()
