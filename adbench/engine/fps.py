"""Throughput you can trust: images/s of the full pipeline and of the scorer alone.

Protocol: inputs are made once on the device (random images; speed does not depend on pixel
values or trained weights). Every measured call (each scorer's pipeline, scorer alone and
batch-1 latency) runs in ``warmup`` untimed rounds, then ``iters`` timed rounds; within a round
the calls are interleaved, so drift in machine speed (thermal, other tenants) hits all scorers
alike. ``torch.cuda.synchronize()`` runs before every clock read, never inside a call.
images/s = images / total seconds over the timed rounds. Full pipeline: image -> backbone ->
scorer -> upsampled (smoothed) maps and image-score components, all on the device. Scorer alone:
cached-feature input -> scorer -> the same post-processing.
On CUDA: the noise net in ``precision`` (bf16 autocast by default), the backbone in ``backbone_precision`` (fp32 by
default, as the official code), channels_last for CNN backbones, optional ``torch.compile``.
Efficiency: the floating-point operations of one call are counted once by torch's ``FlopCounterMode``
(matrix products, convolutions, attention; elementwise work is not counted) on the eager networks, per
image: the backbone, one noise-net pass, the scorer (all its passes) and the pipeline (backbone + scorer).
Achieved TFLOP/s = FLOPs per image x images/s; the peak they are a fraction of is a square matrix product
in the noise net's precision, timed in the same interleaved rounds on the same device.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from adbench.allocator import host_allocator
from adbench.config import RunConfig
from adbench.device import (
    autocast,
    clock,
    device_name,
    fixed_shape_timing,
    images_for,
    precision,
    prepare_backbone,
    resolve_device,
    scorer_input,
)
from adbench.diffusion.train import training_schedule
from adbench.engine.build import build_noise_net, build_scorer, scorer_label
from adbench.progress import progress_bar
from adbench.registry import BACKBONES
from adbench.scorers.base import FitsFeatures
from adbench.scorers.scoring import feature_map, postprocess_on_device

BANK_IMAGES = 200  # knn's memory bank: about one MVTec category's training images
PEAK_MATMUL_SIZE = {"cuda": 8192, "cpu": 2048}  # square matrix product that measures the device's peak
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class FpsRecord:
    scorer: str
    backbone: str
    noise_net: str
    pipeline_images_per_s: float
    scorer_images_per_s: float
    latency_ms_batch1: float
    nfe: int
    backbone_gflop: float  # per image, one pass
    noise_net_gflop: float  # per image, one pass
    scorer_gflop: float  # per image, every pass of the scorer
    pipeline_gflop: float  # backbone + scorer
    pipeline_tflop_s: float
    scorer_tflop_s: float
    peak_tflop_s: float  # a square matrix product in the noise net's precision, this run, this device
    pipeline_peak_fraction: float
    scorer_peak_fraction: float
    batch_size: int
    device: str
    precision: str  # the noise net's
    backbone_precision: str
    compiled: bool
    torch: str
    host_allocator: str
    warmup: int
    iters: int


def time_interleaved(calls: dict[Hashable, Callable[[], Any]], device: torch.device, warmup: int,
                     iters: int) -> dict[Hashable, float]:
    """Mean seconds per call of each function over ``iters`` rounds, after ``warmup`` untimed rounds.

    Each round calls every function once, in order; the clock is read (CUDA synchronised) around
    each call only.
    """
    total = dict.fromkeys(calls, 0.0)
    with progress_bar() as bar:
        task = bar.add_task("timing", total=(warmup + iters) * len(calls))
        for round_ in range(warmup + iters):
            for name, fn in calls.items():
                label = " ".join(map(str, name)) if isinstance(name, tuple) else name
                bar.update(task, description=f"{'warm-up' if round_ < warmup else 'timed'} round "
                                             f"{round_ + 1}/{warmup + iters}: {label}")
                start = clock(device)
                fn()
                if round_ >= warmup:
                    total[name] += clock(device) - start
                bar.update(task, advance=1)
    return {name: seconds / iters for name, seconds in total.items()}


class FpsBench:
    """Random-init networks of the configured sizes on the device, and the calls the protocol times."""

    def __init__(self, cfg: RunConfig, batch_size: int = 64, compile_model: bool = False) -> None:
        self.cfg, self.batch_size, self.compiled = cfg, batch_size, compile_model
        self.device = resolve_device(cfg.runtime.device)
        torch.manual_seed(cfg.seed)
        size = cfg.backbone.image_size
        backbone = prepare_backbone(BACKBONES.create(cfg.backbone.name, pretrained=False, image_size=size), self.device)
        self.images = images_for(backbone, torch.randn(batch_size, 3, size, size), self.device)
        grid = backbone.grid(size)
        self.features = torch.randn(batch_size, backbone.out_channels, grid, grid, device=self.device)
        self.backbone = backbone
        self.model = build_noise_net(cfg, backbone.out_channels, grid).to(self.device).eval()
        self.schedule = training_schedule(cfg.train)
        self.scoring = cfg.scoring.resolved()
        self.scorers = {scorer_label(spec): build_scorer(spec) for spec in cfg.scoring.scorers}
        self.generators = {label: torch.Generator().manual_seed(cfg.seed) for label in self.scorers}  # host noise
        for label, scorer in self.scorers.items():  # knn: a bank of BANK_IMAGES images' features
            if isinstance(scorer, FitsFeatures):
                bank = torch.randn(BANK_IMAGES, backbone.out_channels, grid, grid, device=self.device)
                scorer.fit(bank, self.generators[label], self.device)
        self.gflop = self.count_gflop()  # on the eager networks: a compiled one hides its operations
        if compile_model:
            self.backbone, self.model = torch.compile(self.backbone), torch.compile(self.model)
        side = PEAK_MATMUL_SIZE["cuda" if self.device.type == "cuda" else "cpu"]
        dtype = DTYPES[precision(self.device, cfg.noise_net.precision)]
        self.matrices = [torch.randn(side, side, device=self.device, dtype=dtype) for _ in range(2)]
        self.peak_tflop = 2 * side**3 / 1e12

    @torch.no_grad()
    def count_gflop(self) -> dict[str, float]:
        """GFLOP per image: backbone, noise net (one pass) and each scorer (every pass), as torch counts them."""
        t = torch.full((self.batch_size,), 500, device=self.device)
        calls = {"backbone": lambda: self.extract(self.images), "noise net": lambda: self.model(self.features, t),
                 **{label: lambda label=label: self.score(label, self.features) for label in self.scorers}}
        with autocast(self.device, self.cfg.noise_net.precision):
            return {name: counted_flops(call) / self.batch_size / 1e9 for name, call in calls.items()}

    def postprocess(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The run's post-processing on the device (upsampled, smoothed maps); returns the max scores."""
        return postprocess_on_device(feature_map, self.scoring, self.cfg.backbone.image_size)[1]

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features as a run scores them: the backbone in its precision (inside the noise net's
        autocast region), then fp32 in NCHW layout (``scorer_input``)."""
        with autocast(self.device, self.cfg.backbone.precision):
            return scorer_input(self.backbone(images))

    def score(self, label: str, features: torch.Tensor) -> torch.Tensor:
        out = self.scorers[label].score(self.model, self.schedule, features, self.generators[label])
        return self.postprocess(out.feature_map)

    def calls(self) -> dict[tuple[str, str], Callable[[], Any]]:
        """(scorer, what) -> call, for what in pipeline | scorer | latency (batch 1 pipeline)."""
        out: dict[tuple[str, str], Callable[[], Any]] = {}
        for label in self.scorers:
            out[label, "pipeline"] = lambda label=label: self.score(label, self.extract(self.images))
            out[label, "scorer"] = lambda label=label: self.score(label, self.features)
            out[label, "latency"] = lambda label=label: self.score(label, self.extract(self.images[:1]))
        out["peak", "matmul"] = lambda: torch.matmul(*self.matrices)
        return out

    def parts(self) -> dict[tuple[str, str], Callable[[], Any]]:
        """One backbone pass, one noise-net pass and the post-processing, each alone (for ideal costs)."""
        t = torch.full((self.batch_size,), 500, device=self.device)
        fmap = feature_map(self.features)
        return {("part", "backbone"): lambda: self.extract(self.images),
                ("part", "noise net"): lambda: self.model(self.features, t),
                ("part", "post-processing"): lambda: self.postprocess(fmap)}

    @torch.no_grad()
    def time(self, calls: dict[tuple[str, str], Callable[[], Any]], warmup: int, iters: int) -> dict:
        with autocast(self.device, self.cfg.noise_net.precision), fixed_shape_timing():
            return time_interleaved(calls, self.device, warmup, iters)

    def records(self, seconds: dict[tuple[str, str], float], warmup: int, iters: int) -> list[FpsRecord]:
        bs, gflop = self.batch_size, self.gflop
        peak = self.peak_tflop / seconds["peak", "matmul"]
        out = []
        for label, scorer in self.scorers.items():
            pipeline, alone = bs / seconds[label, "pipeline"], bs / seconds[label, "scorer"]
            pipeline_gflop = gflop["backbone"] + gflop[label]
            out.append(FpsRecord(
                label, self.cfg.backbone.name, self.cfg.noise_net.name, pipeline, alone,
                1000 * seconds[label, "latency"], scorer.nfe, gflop["backbone"], gflop["noise net"], gflop[label],
                pipeline_gflop, pipeline * pipeline_gflop / 1e3, alone * gflop[label] / 1e3, peak,
                pipeline * pipeline_gflop / 1e3 / peak, alone * gflop[label] / 1e3 / peak, bs,
                device_name(self.device), precision(self.device, self.cfg.noise_net.precision),
                precision(self.device, self.cfg.backbone.precision), self.compiled, torch.__version__,
                host_allocator(), warmup, iters))
        return out


def measure_fps(cfg: RunConfig, batch_size: int = 64, warmup: int = 3, iters: int = 10,
                compile_model: bool = False) -> list[FpsRecord]:
    """One record per scorer in ``cfg``, all timed in the same interleaved rounds."""
    bench = FpsBench(cfg, batch_size, compile_model)
    return bench.records(bench.time(bench.calls(), warmup, iters), warmup, iters)


def counted_flops(call: Callable[[], Any]) -> int:
    """Floating-point operations torch's ``FlopCounterMode`` counts in one ``call`` (a multiply-add is 2)."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def records_as_rows(records: list[FpsRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]
