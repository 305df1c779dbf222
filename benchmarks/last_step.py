"""Where InvAD's last step (the official code's timesteps) loses the anomaly signal, measured on a trained model.

With ``subset=code`` the final latent is eps_theta(x_999, 999), the noise predicted from the inverted state
x_999. A net that had learned eps = x_t near t = T would return x_999 itself, whose size separates anomalous
images. The papers' noise nets end in an AdaLN final layer: a LayerNorm (the DiT's without learned scale, the
MLP's with a per-channel gain and bias, the same for every token), then a shift and scale that depend on t
only, then a linear map. The LayerNorm gives every token's hidden vector the same RMS before its gain, so the
output depends on the hidden vector's direction only: its size cannot pass through. This script
measures the image AU-ROC of a size score along that path (the mean over tokens of each token's squared
RMS): the inverted state x_999, the hidden vector before the final LayerNorm, and the predicted noise; and
how far any token's RMS lies from 1 after the LayerNorm's normalisation, before its gain and bias (only its
eps keeps it from exactly 1).

Run: .venv/bin/python benchmarks/last_step.py results/<run folder>   (a run or grid cell folder with its models,
     e.g. of `adbench demo`; categories and model as the run's config says)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from adbench.cli import cache_dir_default
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import training_schedule
from adbench.engine.build import build_scorer
from adbench.engine.context import Context, eval_set
from adbench.engine.training import train_category
from adbench.results import read_run_config
from adbench.scorers.base import Scorer

STAGES = ("x_999 (inverted state)", "hidden, before the final LayerNorm", "after the LayerNorm",
          "predicted noise (the final latent)")


def token_rms(x: torch.Tensor) -> torch.Tensor:
    """Each token's RMS over its channels; ``x`` is B x tokens x channels."""
    return x.pow(2).mean(dim=2).sqrt()


@torch.no_grad()
def stages(model: torch.nn.Module, scorer: Scorer, schedule: Schedule, x0: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's token RMS (B x tokens) along the scorer's own inversion of the features ``x0`` (B x C x h x w):
    the last call's input to the net and to its final layer (each call overwrites the one before) and the latent."""
    inputs = {}

    def keep(name: str) -> Callable:
        return lambda _module, args: inputs.__setitem__(name, args[0].float())  # returns None: args unchanged

    hooks = [model.register_forward_pre_hook(keep("state")), model.final.register_forward_pre_hook(keep("hidden"))]
    latent = scorer.latent(model, schedule, x0)
    for hook in hooks:
        hook.remove()
    state, hidden = inputs["state"], inputs["hidden"]
    normalised = torch.nn.functional.layer_norm(hidden, hidden.shape[-1:], eps=model.final.norm.eps)  # before gain
    return [token_rms(state.flatten(2).transpose(1, 2)), token_rms(hidden), token_rms(normalised),
            token_rms(latent.flatten(2).transpose(1, 2))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (config.yaml and models/)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    cfg = read_run_config(args.run)
    ctx = Context.create(cfg, args.run, args.cache_dir or cache_dir_default())
    scorer = build_scorer({"name": "invad", "steps": 3, "subset": "code"})
    schedule = training_schedule(cfg.train)
    print(f"run {args.run}: {cfg.noise_net.name} {cfg.noise_net.args}, {cfg.train.epochs} epochs at lr "
          f"{cfg.train.lr:g}, batch {cfg.train.batch_size}, {cfg.backbone.name}; InvAD steps=3, subset=code\n")
    print("| category | " + " | ".join(STAGES) + " |")
    print("|---|" + "---|" * len(STAGES))
    for category in ctx.categories():
        model = train_category(ctx, category)
        data = eval_set(ctx, category)
        rms = [r.cpu().double().numpy() for r in stages(model, scorer, schedule, data.test_feats.to(ctx.device))]
        cells = []
        for stage, r in zip(STAGES, rms, strict=True):
            if stage == STAGES[2]:
                cells.append(f"every token 1 ± {np.abs(r - 1).max():.0e}")
                continue
            power = (r**2).mean(axis=1)
            normal, anomalous = (np.sqrt(power[data.labels == k].mean()) for k in (0, 1))
            cells.append(f"{100 * roc_auc_score(data.labels, power):.1f} (RMS {normal:.2f} / {anomalous:.2f})")
        print(f"| {category} | " + " | ".join(cells) + " |")
    print("\nimage AU-ROC of the token power (mean squared token RMS) at each stage, RMS of normal / anomalous "
          "images; after the LayerNorm: the largest distance of a token's RMS from 1")


if __name__ == "__main__":
    main()
