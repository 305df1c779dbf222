"""The 1-D toy study of OSD-IRF section 3.3 (Eq. 12, Fig. 2).

A DDPM is trained on 10,000 samples of N(2.5, 0.35^2); 6,000 normal samples and 6,000 samples of
0.5 N(1.5, 0.2^2) + 0.5 N(3.5, 0.22^2) are mapped in one step to their IRF at t = 250, under
mean-path input (Eq. 7) and noisy-state input (Eq. 6). |IRF| is the anomaly score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adbench.config import TrainConfig
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import train_noise_net
from adbench.errors import ConfigError
from adbench.metrics import image_metrics
from adbench.noise_nets.mlp import MLPNoiseNet
from adbench.scorers.osd_irf import OSDIRF


@dataclass
class ToyResult:
    mean_auroc: float
    noisy_auroc: float
    x0: np.ndarray  # test samples
    labels: np.ndarray  # 1 = abnormal
    mean_irf: np.ndarray
    noisy_irf: np.ndarray


def sample_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(2.5, 0.35, n)


def sample_abnormal(rng: np.random.Generator, n: int) -> np.ndarray:
    left = rng.random(n) < 0.5
    return np.where(left, rng.normal(1.5, 0.2, n), rng.normal(3.5, 0.22, n))


def as_features(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32).view(-1, 1, 1, 1)


def run_toy(t: int = 250, seed: int = 0, n_train: int = 10_000, n_test: int = 6_000, epochs: int = 60,
            width: int = 128, depth: int = 3) -> ToyResult:
    schedule = Schedule.linear()
    if not 0 <= t < schedule.T:  # before training, not after
        raise ConfigError(f"--t {t} is outside the toy's schedule [0, {schedule.T - 1}]")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = MLPNoiseNet(in_channels=1, width=width, depth=depth)
    # a short training (2,340 steps): the EMA warms up, else its 0.999 decay keeps much of the start's weights
    cfg = TrainConfig(epochs=epochs, batch_size=256, lr=2e-3, warmup_epochs=2, checkpoint_every=10**9,
                      ema_warmup=True)
    _, ema = train_noise_net(model, as_features(sample_normal(rng, n_train)), cfg, seed, description="toy DDPM")
    model.load_state_dict(ema)
    x0 = np.concatenate([sample_normal(rng, n_test), sample_abnormal(rng, n_test)])
    labels = np.repeat([0, 1], n_test)
    with torch.no_grad():
        mean_irf = OSDIRF(t, noisy=False).latent(model, schedule, as_features(x0)).flatten().numpy()
        noisy_irf = OSDIRF(t, noisy=True).latent(model, schedule, as_features(x0),
                                                 torch.Generator().manual_seed(seed)).flatten().numpy()
    return ToyResult(image_metrics(np.abs(mean_irf), labels)["image_auroc"],
                     image_metrics(np.abs(noisy_irf), labels)["image_auroc"], x0, labels, mean_irf, noisy_irf)
