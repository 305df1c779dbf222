"""A category's noise net: trained (resumably, in this process or in ``runtime.nproc_per_node`` processes) or
loaded when it was trained already."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from adbench.atomic import atomic_torch_save, atomic_write, atomic_write_text, load_cached
from adbench.device import (
    device_name,
    precision,
    seed_everything,
)
from adbench.diffusion.train import train_noise_net, training_log
from adbench.engine.build import (
    build_noise_net,
)
from adbench.engine.context import Context, feature_normaliser, training_features
from adbench.engine.keys import training_key
from adbench.engine.launch import distributed_training
from adbench.errors import WeightsError
from adbench.progress import make_console

__all__ = ["train_category"]

console = make_console()


def train_category(ctx: Context, category: str) -> nn.Module | None:
    """Train (or load the finished) noise net that scores ``category``; resumes from its checkpoint.

    It trains on the fit split of the normal images of ``cfg.trained_on(category)``: the category
    itself (single) or every training category (multiclass: one model, trained once, shared), in this
    process or in ``runtime.nproc_per_node`` processes (``adbench.engine.launch``). The model file holds the
    raw and the EMA weights; ``use_ema`` picks the ones scored. None on a machine of a training across
    machines that does not hold rank 0 (that machine writes the model).
    """
    cfg = ctx.cfg
    path, name = ctx.model_path(category), cfg.model_name(category)
    seed_everything(cfg.seed, cfg.deterministic)
    grid = ctx.backbone.grid(cfg.backbone.image_size)
    model = build_noise_net(cfg, ctx.backbone.out_channels, grid)
    weights = load_cached(path, "model file")  # a damaged one is trained again
    if weights is None:
        train = training_features(ctx, category)
        feats = feature_normaliser(ctx, category, train)(train)
        ckpt = path.with_suffix(".ckpt")
        start = time.perf_counter()
        if cfg.runtime.nproc_per_node is None:
            losses, ema = train_noise_net(model, feats, cfg.train, cfg.seed, ckpt, ctx.device, f"{name}: train",
                                         cfg.runtime.compile)
            raw = model.state_dict()
        else:
            if not distributed_training(cfg, feats, ctx.backbone.out_channels, grid, ckpt, ctx.device,
                                        f"{name}: train", training_key(cfg, category)):
                return None
            final = torch.load(ckpt, weights_only=True)
            raw, ema, losses = final["model"], final["ema"], final["losses"]
        seconds = time.perf_counter() - start
        weights = {"raw": raw, "ema": ema}
        atomic_torch_save(weights, path)
        log = pd.DataFrame(training_log(cfg.train, losses, len(feats)))
        atomic_write(path.with_suffix(".train_log.csv"), lambda p: log.to_csv(p, index=False))
        world = cfg.runtime.world_size
        atomic_write_text(path.with_suffix(".train.json"), json.dumps(
            {"seconds": seconds, "steps": len(losses), "images": len(feats), "device": device_name(ctx.device),
             "world_size": world, "batch_per_process": cfg.train.batch_size // world,
             "precision": precision(ctx.device, cfg.train.precision)}))
        ckpt.unlink(missing_ok=True)
        on = f" on {world} processes ({cfg.train.strategy})" if cfg.runtime.nproc_per_node is not None else ""
        console.print(f"[green]{name}[/]: trained {len(losses)} steps on {len(feats)} images in {seconds:.0f} s "
                      f"({cfg.noise_net.name}, batch {cfg.train.batch_size}{on}), final loss "
                      f"{np.mean(losses[-20:]):.4f}")
    try:
        model.load_state_dict(weights["ema" if cfg.scoring.use_ema else "raw"])
    except (KeyError, TypeError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise WeightsError(f"model file {path} does not fit the configured noise net {cfg.noise_net.name} "
                           f"({reason}); delete it to train the model again.") from None
    return model.to(ctx.device).eval()

