"""A non-diffusion reference on the same features: PatchCore-style nearest-neighbour distance.

The memory bank holds every feature vector (one per position) of the training normals the noise
net would train on (``trained_on``: the category, or every training category under multiclass),
optionally subsampled by PatchCore's greedy k-center coreset (``coreset`` = kept fraction, 0.1 by
default; 1 keeps the whole bank). Map = Euclidean distance of each test feature vector to its
nearest bank vector, exact (fp32, batched on the device); image score = max of the pixel map.
No noise net and no training: grids compute it once per (backbone, category).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from adbench.diffusion.schedule import Schedule
from adbench.errors import ConfigError
from adbench.scorers.scoring import Scored

PROJECTION_DIM = 128  # coreset selection runs on a random projection, as PatchCore
ACTIVE_ROWS = 4096  # rows searched per coreset pick
ROW_CHUNK, PICK_CHUNK = 1024, 8192  # a block of the coreset's distance updates: 32 MiB in fp32


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off: distances in fp32 even inside the noise nets' bf16 region."""
    return torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else contextlib.nullcontext()


def vectors(features: torch.Tensor) -> torch.Tensor:
    """N x C x h x w -> (N h w) x C feature vectors, fp32."""
    return features.float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row. The nearest row is found with one
    matrix product per chunk (||q||^2 - 2 q.b + ||b||^2), its distance then computed directly, so
    small distances keep full precision; chunks bound the memory."""
    bank_sq = bank.pow(2).sum(dim=1)
    out = []
    for q in queries.split(chunk):
        nearest = (bank_sq - 2 * q @ bank.T).argmin(dim=1)  # ||q||^2 is the same for every bank row
        out.append((q - bank[nearest]).norm(dim=1))
    return torch.cat(out)


def greedy_coreset(bank: torch.Tensor, n: int, generator: torch.Generator | None = None,
                   active_rows: int = ACTIVE_ROWS) -> torch.Tensor:
    """Indices of ``n`` bank rows picked by greedy k-center selection (PatchCore): start from a seeded
    random row, then repeatedly add the row farthest from those picked, distances measured on a seeded
    Gaussian random projection to ``PROJECTION_DIM`` dimensions (the full space when smaller). The random
    draws come from ``generator`` on the host, so every device picks the same rows.

    Lazily, so that a pick costs ``active_rows`` distances, not one per bank row: each row keeps an upper
    bound on its distance to the picks (exact for the picks it has seen). The farthest row is searched
    among the active rows, the ``active_rows`` with the largest exact distances, which are kept exact pick
    by pick; every other row's bound is at most a threshold, so while the farthest active row is at or
    above it, it is the farthest of all. When it falls below, the rows with the largest bounds are brought
    up to date (in matrix products) until the active rows are known again. Rows at equal distance may be
    picked in another order than a scan of all rows would.
    """
    x = bank
    if bank.shape[1] > PROJECTION_DIM:
        proj = torch.randn(bank.shape[1], PROJECTION_DIM, generator=generator).to(bank.device)
        x = bank @ proj / PROJECTION_DIM**0.5
    sq = x.pow(2).sum(dim=1)
    picked = [int(torch.randint(len(x), (1,), generator=generator))]
    bound = torch.full_like(sq, float("inf"))  # squared distance of each row to its nearest seen pick
    seen = torch.zeros(len(x), dtype=torch.long, device=x.device)  # a row has seen picks [0, seen)
    active = None
    while len(picked) < n:
        if active is None:
            threshold, active = farthest_rows(x, sq, bound, seen, picked, min(active_rows, len(x)))
            xa, sqa, na = x[active], sq[active], bound[active]
        i = int(na.argmax())
        if float(na[i]) < threshold:  # a row outside may be farther now: choose the active rows again
            bound[active], seen[active], active = na, len(picked), None
            continue
        picked.append(int(active[i]))
        torch.minimum(na, torch.addmv(sqa, xa, xa[i], alpha=-2).add_(sqa[i]), out=na)
    return torch.tensor(picked, device=bank.device)


def farthest_rows(x: torch.Tensor, sq: torch.Tensor, bound: torch.Tensor, seen: torch.Tensor, picked: list[int],
                  size: int) -> tuple[float, torch.Tensor]:
    """(threshold, rows): the ``size`` rows farthest from ``picked`` (and any at the same distance), brought up
    to date in ``bound`` and ``seen``, and a threshold at or above every other row's bound. Candidates are the
    rows with the largest bounds, twice as many as needed, doubled until their exact distances settle it."""
    picks = torch.tensor(picked, device=x.device)
    wanted = 2 * size
    while True:
        stale = bound.topk(min(wanted, len(x)))
        candidates = stale.indices
        for rows in candidates[seen[candidates].argsort()].split(ROW_CHUNK):  # rows that saw alike, together
            unseen = picks[int(seen[rows].min()):]
            for new in unseen.split(PICK_CHUNK) if len(unseen) else ():
                d2 = sq[rows, None] - 2 * x[rows] @ x[new].T + sq[new]
                bound[rows] = torch.minimum(bound[rows], d2.amin(dim=1))
            seen[rows] = len(picked)
        threshold = float(bound[candidates].topk(size).values[-1])
        if wanted >= len(x) or threshold >= float(stale.values[-1]):  # no row outside can reach it
            return threshold, (bound >= threshold).nonzero().squeeze(1)
        wanted *= 2

class KNN:
    name = "knn"
    nfe = 0
    image_scores = ("max",)
    applicable = True

    def __init__(self, coreset: float = 0.1) -> None:
        if not 0 < coreset <= 1:
            raise ConfigError(f"knn coreset must be a fraction in (0, 1], got {coreset}")
        self.coreset = float(coreset)
        self.bank: torch.Tensor | None = None

    def fit(self, features: torch.Tensor, generator: torch.Generator | None = None,
            device: torch.device | None = None) -> None:
        """Build the memory bank from training features N x C x h x w on ``device`` (default: the features');
        ``generator`` (host) seeds the coreset."""
        device = device or features.device
        with full_precision(device):
            bank = vectors(features.to(device))
            n = max(1, round(self.coreset * len(bank)))
            self.bank = bank if n >= len(bank) else bank[greedy_coreset(bank, n, generator)]

    def score(self, model: nn.Module | None, schedule: Schedule, x0: torch.Tensor,
              generator: torch.Generator | None = None) -> Scored:
        if self.bank is None:
            raise RuntimeError("knn: fit the memory bank on training features before scoring")
        n, _, h, w = x0.shape
        with full_precision(x0.device):
            distances = nearest_distance(vectors(x0), self.bank.to(x0.device))
        return Scored(distances.reshape(n, h, w), {})
