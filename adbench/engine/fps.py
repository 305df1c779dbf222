"""Throughput you can trust: images/s of the full pipeline and of the scorer alone.

Protocol: inputs are made once on the device (random images; speed does not depend on pixel
values or trained weights), ``warmup`` untimed iterations, then ``iters`` timed ones with
``torch.cuda.synchronize()`` before each clock read (no host sync inside the loop).
images/s = images / total seconds. Full pipeline: image -> backbone -> scorer -> upsampled
(smoothed) maps and image-score components, all on the device. Scorer alone: cached-feature
input -> scorer -> the same post-processing. Batch-1 latency is measured the same way.
On CUDA: bf16 autocast, channels_last for CNN backbones, optional ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from adbench.config import RunConfig
from adbench.device import autocast, clock, device_name, images_for, precision, prepare_backbone, resolve_device
from adbench.diffusion.schedule import Schedule
from adbench.engine.run import build_noise_net, build_scorer, scorer_label
from adbench.registry import BACKBONES
from adbench.scorers.scoring import Scoring, max_score_on_device, pixel_maps_on_device


@dataclass
class FpsRecord:
    scorer: str
    backbone: str
    noise_net: str
    pipeline_images_per_s: float
    scorer_images_per_s: float
    latency_ms_batch1: float
    nfe: int
    batch_size: int
    device: str
    precision: str
    compiled: bool
    torch: str
    warmup: int
    iters: int


def time_per_call(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call after ``warmup`` untimed calls (CUDA synchronised around the timed loop)."""
    for _ in range(warmup):
        fn()
    start = clock(device)
    for _ in range(iters):
        fn()
    return (clock(device) - start) / iters


@torch.no_grad()
def measure_fps(cfg: RunConfig, batch_size: int = 64, warmup: int = 3, iters: int = 10,
                compile_model: bool = False) -> list[FpsRecord]:
    """One record per scorer in ``cfg`` (random-init networks of the configured sizes)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    backbone = prepare_backbone(BACKBONES.create(cfg.backbone, pretrained=False, image_size=cfg.image_size), device)
    size = cfg.image_size
    images = images_for(backbone, torch.randn(batch_size, 3, size, size), device)
    grid = backbone.grid(size)
    model = build_noise_net(cfg, backbone.out_channels).to(device).eval()
    if compile_model:
        backbone, model = torch.compile(backbone), torch.compile(model)
    schedule = Schedule.linear(cfg.train.timesteps)
    scoring: Scoring = cfg.scoring()
    feats = torch.randn(batch_size, backbone.out_channels, grid, grid, device=device)
    records = []
    for spec in cfg.scorers:
        scorer = build_scorer(spec)
        gen = torch.Generator(device).manual_seed(cfg.seed)

        def score(x0: torch.Tensor, scorer: Any = scorer, gen: torch.Generator = gen) -> None:
            out = scorer.score(model, schedule, x0, gen)
            maps = pixel_maps_on_device(out.feature_map, size, scoring.smoothing_sigma)
            max_score_on_device(maps, scoring.pool_size)

        def pipeline(batch: torch.Tensor, score: Callable = score) -> None:
            score(backbone(batch))

        with autocast(device):
            t_pipe = time_per_call(lambda: pipeline(images), device, warmup, iters)
            t_scorer = time_per_call(lambda: score(feats), device, warmup, iters)
            t_one = time_per_call(lambda: pipeline(images[:1]), device, warmup, iters)
        records.append(FpsRecord(
            scorer_label(spec), cfg.backbone, cfg.noise_net, batch_size / t_pipe, batch_size / t_scorer,
            1000 * t_one, scorer.nfe, batch_size, device_name(device),
            precision(device), compile_model, torch.__version__, warmup, iters))
    return records


def records_as_rows(records: list[FpsRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]
