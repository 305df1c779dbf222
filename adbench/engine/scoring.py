"""One cell: a scorer over a category's test set and held-out normals, the scoring stage, its metrics (in memory
or streamed) and its timed pipeline, into a result row."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from adbench.data.base import load_batch
from adbench.device import (
    autocast,
    clock,
    fixed_shape_timing,
    images_for,
    scorer_input,
    to_device,
)
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import training_schedule
from adbench.engine.build import (
    build_scorer,
    scorer_label,
)
from adbench.engine.context import Context, EvalSet, training_features
from adbench.engine.rows import FPS_PASSES, peak_memory, result_row
from adbench.metrics import (
    MetricWarning,
    image_metrics,
    mad,
    metric_keys,
    pixel_metrics,
    reported,
)
from adbench.metrics.streaming import spill_array
from adbench.progress import make_console
from adbench.registry import DATASETS
from adbench.scorers.base import FitsFeatures
from adbench.scorers.scoring import (
    ImageScores,
    Normaliser,
    ScorerOutput,
    components_and_maps,
    image_score_for,
    postprocess_on_device,
    score_images,
)

__all__ = ["backbone_passes", "cell_metrics", "cell_scores", "pipeline_seconds", "run_scorer", "score_cell",
           "test_set_metrics"]

console = make_console()


@torch.no_grad()
def run_scorer(scorer: Any, model: nn.Module, schedule: Schedule, feats: torch.Tensor, ctx: Context,
               seed: int) -> ScorerOutput:
    """Score ``feats`` batch by batch; noise comes from one seeded host generator (the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    bs = ctx.cfg.scoring.eval_batch_size
    with autocast(ctx.device, ctx.cfg.noise_net.precision):
        out = [scorer.score(model, schedule, to_device(feats[i : i + bs], ctx.device), gen)
               for i in range(0, len(feats), bs)]
    keys = out[0].components
    return ScorerOutput(torch.cat([o.feature_map.float().cpu() for o in out]),
                        {k: torch.cat([o.components[k].float().cpu() for o in out]).numpy() for k in keys})


@torch.no_grad()
def backbone_passes(ctx: Context, data: EvalSet) -> tuple[Any, list[float], int]:
    """(the backbone's features of the FPS batch, the seconds of its ``FPS_PASSES`` timed passes after a warm-up,
    the batch's size), timed once for ``data``'s category while the context scores it (the last one kept)."""
    batch = data.samples[: ctx.cfg.scoring.fps_images]
    key = (data.category, tuple(str(s.image_path) for s in batch))
    held = ctx.timed_backbone
    if held.get("key") != key:
        held.clear()  # one category's batch of features at a time
        images = images_for(ctx.backbone, load_batch(batch, ctx.transform), ctx.device)
        seconds = []
        with fixed_shape_timing():
            for _ in range(1 + FPS_PASSES):
                start = clock(ctx.device)
                with autocast(ctx.device, ctx.backbone_precision):
                    feats = ctx.backbone(images)
                seconds.append(clock(ctx.device) - start)
        held.update(key=key, feats=feats, seconds=seconds[1:], n=len(images))
    return held["feats"], held["seconds"], held["n"]


@torch.no_grad()
def pipeline_seconds(ctx: Context, data: EvalSet, model: nn.Module | None, scorer: Any) -> tuple[float, float, float]:
    """(backbone, scorer + post-processing) seconds per image on one batch of ``fps_images`` test images,
    each the median of ``FPS_PASSES`` passes timed after one warm-up pass, CUDA synchronised, and the spread
    of the passes' images/s (interquartile range, pass i of the backbone with pass i of the scorer): decoded
    images -> backbone -> scorer -> upsampled, smoothed maps and the max image score, all on the device
    (``adbench fps`` is the protocol for reported speed). The backbone's passes are timed once per category
    and context (``backbone_passes``): every scorer of the category starts from its features."""
    cfg, scoring = ctx.cfg, ctx.cfg.scoring.resolved()
    feats, backbone, n = backbone_passes(ctx, data)
    schedule = training_schedule(cfg.train)
    passes = []
    with fixed_shape_timing():
        for _ in range(1 + FPS_PASSES):  # warm-up (cuDNN autotuning too, unless deterministic), then timed
            gen = torch.Generator().manual_seed(cfg.seed)
            start = clock(ctx.device)
            with autocast(ctx.device, ctx.cfg.noise_net.precision):
                out = scorer.score(model, schedule, data.normalise(scorer_input(feats)), gen)
            postprocess_on_device(out.feature_map, scoring, cfg.backbone.image_size)
            passes.append(clock(ctx.device) - start)
    timed = np.column_stack([backbone, passes[1:]]) / n
    per_second = 1.0 / timed.sum(axis=1)
    spread = float(np.subtract(*np.percentile(per_second, [75, 25])))
    return float(np.median(timed[:, 0])), float(np.median(timed[:, 1])), spread


def cell_scores(ctx: Context, data: EvalSet, model: nn.Module, scorer: Any, label: str) -> ImageScores:
    """Run ``scorer`` on the test set and (unless normalisation is transductive) on the held-out normals,
    then the scoring stage (``score_images``). Held-out noise is seeded with ``seed + 1``."""
    cfg = ctx.cfg
    scoring = cfg.scoring.resolved()
    schedule = training_schedule(cfg.train)
    if isinstance(scorer, FitsFeatures):  # a memory bank of the training features (knn)
        bank = data.normalise(training_features(ctx, data.category))  # standardised by its own statistics
        scorer.fit(bank, torch.Generator().manual_seed(cfg.seed), ctx.device)
    test = run_scorer(scorer, model, schedule, data.test_feats, ctx, cfg.seed)
    held_out = None if scoring.transductive else run_scorer(scorer, model, schedule, data.held_feats, ctx,
                                                            cfg.seed + 1)
    size = cfg.backbone.image_size
    maps = spill_array(data.spill.directory, (len(data.samples), size, size), np.float32) if data.spill else None
    return score_images(test, held_out, scoring, size, scorer.image_scores, label,
                        [str(s.image_path) for s in data.samples], maps)


def cell_metrics(data: EvalSet, out: ImageScores, mad_over_available: bool = False,
                 pro_limit: float = 0.3, extra: tuple[str, ...] = (), aupro_impl: str = "exact") -> dict[str, Any]:
    """The metric table's metrics and their mean (mAD) of a cell's scores (pixel metrics NaN without masks;
    ``mad_over_available``: mAD over the metrics that exist, the dataset's convention; AU-PRO up to the FPR
    ``pro_limit`` by ``aupro_impl``; optional metrics in ``extra``; AU-sPRO over ``data.regions``; SegF1 at the
    threshold the held-out normals gave; streamed from disk for a category with ``data.spill``). With
    ``data.kinds_apart`` (MVTec LOCO), each metric is computed for each kind beside the normal images and the
    row reports their mean, as MVTec's ``evaluate_experiment.py`` does, each kind's in ``metrics_by_kind``."""
    options = pro_limit, extra, aupro_impl
    kinds = data.kind_subsets()
    if not kinds:
        metrics: dict[str, Any] = test_set_metrics(data, out, None, *options)
    else:
        by_kind = {kind: test_set_metrics(data.subset(index), out, index, *options) for kind, index in kinds.items()}
        metrics = {k: float(np.mean([m[k] for m in by_kind.values()])) for k in next(iter(by_kind.values()))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        metrics["mad"] = mad(metrics, mad_over_available)
    return metrics | ({"metrics_by_kind": json.dumps(by_kind, sort_keys=True)} if kinds else {})


def test_set_metrics(data: EvalSet, out: ImageScores, index: np.ndarray | None, pro_limit: float,
                     extra: tuple[str, ...], aupro_impl: str) -> dict[str, float]:
    """``cell_metrics``' metrics of ``data``, whose scores and maps are ``out``'s at ``index`` (None: all)."""
    scores = out.scores if index is None else out.scores[index]
    metrics = image_metrics(*data.image_level(scores), extra)
    if data.masks is None:
        return metrics | dict.fromkeys(metric_keys("pixel", extra), float("nan"))
    if data.spill:
        return metrics | data.spill.pixel_metrics(out.maps, data.masks, pro_limit, index)
    maps = out.maps if index is None else out.maps[index]
    return metrics | pixel_metrics(maps, data.masks, pro_limit, extra, data.regions, out.seg_threshold, aupro_impl)


def score_cell(ctx: Context, data: EvalSet, model: nn.Module, spec: dict[str, Any]) -> dict[str, Any]:
    """Score one category with one scorer: the self-describing result row (all metrics NaN, shown
    n/a, for a setting the scorer does not apply to, e.g. reconstruction with ratio x steps < 1)."""
    scorer = build_scorer(spec)
    if not scorer.applicable:
        out = ImageScores(image_score_for(ctx.cfg.scoring.resolved(), scorer.image_scores), np.empty(0),
                          np.empty((0, 0, 0)), Normaliser({}, {}))
        nan = float("nan")
        return result_row(ctx, data, spec, scorer, out, dict.fromkeys([c.key for c in reported()], nan),
                          (nan, nan, nan), {"score_seconds": nan, "peak_memory_mb": nan, "peak_memory_of": ""})
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    start = time.perf_counter()
    out = cell_scores(ctx, data, model, scorer, f"{data.category} / {scorer_label(spec)}")
    scoring = ctx.cfg.scoring
    metrics = cell_metrics(data, out, DATASETS.can(ctx.cfg.data.dataset, "mad_over_available"), scoring.pro_limit,
                           tuple(scoring.extra_metrics), scoring.aupro_impl)
    cost = {"score_seconds": time.perf_counter() - start, **peak_memory(ctx.device)}
    submission = ""
    if scoring.submission:  # MVTec AD 2's private test sets, written for its evaluation server
        from adbench.engine.submission import export_private

        def maps_of(feats: torch.Tensor) -> np.ndarray:
            scored = run_scorer(scorer, model, training_schedule(ctx.cfg.train), feats, ctx, ctx.cfg.seed)
            return components_and_maps(scored, ctx.cfg.scoring.resolved(), ctx.cfg.backbone.image_size)[1]

        submission = export_private(ctx, data, spec, out.seg_threshold, maps_of)
    return result_row(ctx, data, spec, scorer, out, metrics, pipeline_seconds(ctx, data, model, scorer), cost,
                      submission)

