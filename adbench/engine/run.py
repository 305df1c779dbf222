"""Train and evaluate one run configuration, category by category."""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from adbench.allocator import host_allocator
from adbench.atomic import atomic_torch_save, atomic_write, atomic_write_text, load_cached, remove_stale_temporaries
from adbench.columns import make_row
from adbench.config import RunConfig
from adbench.data.base import Dataset, DefectRegion, Sample, Transform, load_batch, load_mask
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
    seed_everything,
    to_device,
)
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import train_noise_net, training_log, training_schedule
from adbench.engine.build import (
    build_dataset,
    build_noise_net,
    build_scorer,
    cell_config,
    needs_model,
    scorer_columns,
    scorer_label,
)
from adbench.engine.cache import cached_features
from adbench.engine.keys import backbone_weights, cell_key, context_key, feature_key, input_stats, training_key
from adbench.engine.launch import distributed_training
from adbench.engine.preflight import preflight
from adbench.errors import ConfigError, DataError, WeightsError
from adbench.metrics import (
    SPRO_PREFIX,
    MetricWarning,
    image_metrics,
    mad,
    metric_keys,
    pixel_metrics,
    reported,
)
from adbench.metrics.streaming import STREAMED, Spill, spill_array
from adbench.progress import make_console
from adbench.provenance import git_commit, versions
from adbench.registry import BACKBONES, DATASETS
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

console = make_console()


SHARED_CACHE_GRACE = 24 * 3600  # seconds: no live write of one cache file takes a day
MIN_HOLDOUT = 20  # held-out normals estimating the mean/std that weight the image-score components


def holdout_size(n: int, fraction: float) -> int:
    """Images held out of ``n``: ``fraction`` of them but at least ``MIN_HOLDOUT`` when the category has
    twice that; a smaller category holds out what the fraction gives (at least 2), flagged in its rows."""
    by_fraction = max(2, round(fraction * n))
    return max(MIN_HOLDOUT, by_fraction) if n >= 2 * MIN_HOLDOUT else by_fraction


def split_train(samples: list[Sample], fraction: float | None, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(fit, held-out) split of the normal training images, seeded; ``fraction`` None holds out
    nothing (transductive normalisation needs no held-out images: train on all normals, as the papers)."""
    if fraction is None:
        return list(samples), []
    n_hold = holdout_size(len(samples), fraction)
    if len(samples) - n_hold < 1:
        raise DataError(f"{len(samples)} training images (e.g. {samples[0].image_path.parent}) are too few: "
                        f"{n_hold} are held out for score normalisation and at least 1 must remain to train.")
    order = np.random.default_rng(seed).permutation(len(samples))
    held = set(order[:n_hold].tolist())
    return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])


@dataclass
class Context:
    """Everything a run shares across categories."""

    cfg: RunConfig
    run_dir: Path
    cache_dir: Path
    device: torch.device
    dataset: Dataset
    backbone: nn.Module
    transform: Transform

    @classmethod
    def create(cls, cfg: RunConfig, run_dir: Path, cache_dir: Path) -> Context:
        preflight(cfg)  # cheap checks first: names, arguments and data before loading weights
        device = resolve_device(cfg.runtime.device)
        dataset = build_dataset(cfg, cache_dir)
        cfg = cfg.with_train_categories(dataset.categories())
        for key, named in (("data.train_categories", cfg.data.train_categories), ("categories", cfg.categories)):
            unknown = sorted(set(named or []) - set(dataset.categories()))
            if unknown:
                raise DataError(f"{key}: {unknown} are not categories of {cfg.data.dataset} "
                                f"(it has {', '.join(dataset.categories())}).")
        with torch.random.fork_rng(devices=[]):  # a random-init backbone is the seed's, whatever ran before
            torch.manual_seed(cfg.seed)
            backbone = BACKBONES.create(cfg.backbone.name, pretrained=cfg.backbone.pretrained,
                                        weights=cfg.backbone.weights, image_size=cfg.backbone.image_size)
        mean, std, source = input_stats(cfg)
        if source == "set, differs from the weights":
            info = backbone_weights(cfg)
            console.print(f"[yellow]warning:[/] input statistics mean {list(mean)} std {list(std)} differ from "
                          f"those of {info.identity} (mean {list(info.mean)} std {list(info.std)}); "
                          "recorded in every row (input_stats)")
        return cls(cfg, Path(run_dir), Path(cache_dir), device, dataset, prepare_backbone(backbone, device),
                   Transform(cfg.backbone.image_size, mean, std))

    def categories(self) -> list[str]:
        return self.cfg.categories or self.dataset.categories()

    def split(self, category: str) -> tuple[list[Sample], list[Sample]]:
        """The (fit, held-out) normals of ``category`` under this config, the one split training and score
        normalisation both use: a seeded share of the training images held out, or (``data.held_out:
        validation``) all of them to fit and the dataset's own validation normals held out."""
        if self.cfg.data.held_out == "validation" and self.cfg.holdout() is not None:
            return list(self.dataset.train(category)), self.dataset.validation_normals(category)
        return split_train(self.dataset.train(category), self.cfg.holdout(), self.cfg.seed)

    def features(self, samples: list[Sample], what: str) -> torch.Tensor:
        key = feature_key(self.cfg, samples, f"{self.device.type}:{self.backbone_precision}")
        return cached_features(self.cache_dir, key, self.backbone, samples, self.transform, self.device,
                               self.cfg.scoring.eval_batch_size, what, self.backbone_precision)

    @property
    def backbone_precision(self) -> str:
        return precision(self.device, self.cfg.backbone.precision)

    def model_path(self, category: str) -> Path:
        return self.run_dir / "models" / f"{self.cfg.model_name(category)}-{training_key(self.cfg, category)}.pt"


class ContextCache:
    """One Context per dataset/backbone setup, shared by the many configs of a grid or study."""

    def __init__(self, run_dir: Path, cache_dir: Path) -> None:
        self.run_dir, self.cache_dir = Path(run_dir), Path(cache_dir)
        self._contexts: dict[str, Context] = {}
        remove_stale_temporaries(self.cache_dir, older_than=SHARED_CACHE_GRACE)  # other processes share it

    def add(self, ctx: Context) -> None:
        """Share a Context made already (its backbone loaded) with the configs of its key."""
        self._contexts[context_key(ctx.cfg)] = ctx

    def get(self, cfg: RunConfig) -> Context:
        key = context_key(cfg)
        if key not in self._contexts:
            self._contexts[key] = Context.create(cfg, self.run_dir, self.cache_dir)
        ctx = self._contexts[key]
        return dataclasses.replace(ctx, cfg=cfg.with_train_categories(ctx.dataset.categories()))


def training_features(ctx: Context, category: str) -> torch.Tensor:
    """Features of the fit split of the normal images of ``cfg.trained_on(category)``, concatenated
    in category-name order (each category's features cached on their own)."""
    cfg = ctx.cfg
    return torch.cat([ctx.features(ctx.split(c)[0], f"{c}: train features") for c in cfg.trained_on(category)])


def unchanged(feats: torch.Tensor) -> torch.Tensor:
    return feats


def feature_normaliser(ctx: Context, category: str,
                       train: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``feature_norm: standardize``: (f - mean) / std per channel, the statistics over every position of
    the training features of ``category``'s model (``train``, loaded when not given); ``none``: the
    features as they are (the papers)."""
    if ctx.cfg.noise_net.feature_norm == "none":
        return unchanged
    train = training_features(ctx, category) if train is None else train
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)  # a dead channel stays finite
    return lambda feats: (feats - mean) / std


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


FPS_PASSES = 5  # timed passes of the FPS column, after one warm-up; their median is reported


@torch.no_grad()
def pipeline_seconds(ctx: Context, data: EvalSet, model: nn.Module | None, scorer: Any) -> tuple[float, float, float]:
    """(backbone, scorer + post-processing) seconds per image on one batch of ``fps_images`` test images,
    each the median of ``FPS_PASSES`` passes timed after one warm-up pass, CUDA synchronised, and the spread
    of the passes' images/s (interquartile range): decoded images -> backbone -> scorer -> upsampled,
    smoothed maps and the max image score, all on the device (``adbench fps`` is the protocol for
    reported speed)."""
    cfg, scoring = ctx.cfg, ctx.cfg.scoring.resolved()
    images = images_for(ctx.backbone, load_batch(data.samples[: cfg.scoring.fps_images], ctx.transform), ctx.device)
    schedule = training_schedule(cfg.train)
    passes = []
    with fixed_shape_timing():
        for _ in range(1 + FPS_PASSES):  # warm-up (cuDNN autotuning too, unless deterministic), then timed
            gen = torch.Generator().manual_seed(cfg.seed)
            start = clock(ctx.device)
            with autocast(ctx.device, ctx.backbone_precision):
                feats = ctx.backbone(images)
            middle = clock(ctx.device)
            with autocast(ctx.device, ctx.cfg.noise_net.precision):
                out = scorer.score(model, schedule, data.normalise(scorer_input(feats)), gen)
            postprocess_on_device(out.feature_map, scoring, cfg.backbone.image_size)
            passes.append((middle - start, clock(ctx.device) - middle))
    timed = np.array(passes[1:]) / len(images)
    per_second = 1.0 / timed.sum(axis=1)
    spread = float(np.subtract(*np.percentile(per_second, [75, 25])))
    return float(np.median(timed[:, 0])), float(np.median(timed[:, 1])), spread


@dataclass
class EvalSet:
    """What scoring one category needs, shared by every scorer."""

    category: str
    held_feats: torch.Tensor
    test_feats: torch.Tensor
    labels: np.ndarray
    masks: np.ndarray | None
    samples: list[Sample]
    normalise: Callable[[torch.Tensor], torch.Tensor] = unchanged  # the features' normaliser (feature_norm)
    regions: list[DefectRegion] | None = None  # annotated defects with saturation areas, when AU-sPRO is asked
    spill: Spill | None = None  # a category too large for memory: its maps and masks on disk, its metrics streamed
    kinds_apart: tuple[str, ...] = ()  # anomaly kinds each scored beside the normal images, metrics averaged (LOCO)

    def kind_subsets(self) -> dict[str, np.ndarray]:
        """kind -> the indices of the normal test images and that kind's (empty: the test set is one curve)."""
        defects = np.array([s.defect for s in self.samples])
        return {kind: np.flatnonzero((self.labels == 0) | (defects == kind)) for kind in self.kinds_apart}

    def subset(self, index: np.ndarray) -> EvalSet:
        """The test images at ``index`` (in that order), their regions renumbered; a spilled set keeps its masks
        on disk (``Spill.pixel_metrics`` reads them at ``index``)."""
        at = {int(i): j for j, i in enumerate(index)}
        regions = None if self.regions is None else [dataclasses.replace(r, image=at[r.image])
                                                     for r in self.regions if r.image in at]
        masks = self.masks if self.masks is None or self.spill else self.masks[index]
        return dataclasses.replace(self, test_feats=self.test_feats[torch.as_tensor(index)], labels=self.labels[index],
                                   masks=masks, samples=[self.samples[i] for i in index], regions=regions,
                                   kinds_apart=())

    def image_level(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, label) of each scored unit: each image, or for views of one object (``Sample.group``) the
        object, its score and label the maximum over its views (as ADer scores Real-IAD)."""
        groups = [s.group for s in self.samples]
        if not any(groups) or not len(scores):
            return scores, self.labels
        order = list(dict.fromkeys(groups))
        index = np.array([order.index(g) for g in groups])
        best = np.full(len(order), -np.inf)
        np.maximum.at(best, index, scores)
        labels = np.zeros(len(order), dtype=self.labels.dtype)
        np.maximum.at(labels, index, self.labels)
        return best, labels

    def empty_masks(self) -> int:
        """Anomalous test images whose mask has no anomalous pixel (after resizing)."""
        return 0 if self.masks is None else int(((self.labels == 1) & ~self.masks.any(axis=(1, 2))).sum())


def eval_set(ctx: Context, category: str) -> EvalSet:
    cfg = ctx.cfg
    _, held = ctx.split(category)
    if held and len(held) < MIN_HOLDOUT:
        console.print(f"[yellow]warning:[/] {category}: only {len(held)} held-out normal images estimate the "
                      f"score normalisation (at least {MIN_HOLDOUT} wanted; the category is small); "
                      "flagged in its rows (holdout_below_min)")
    test = ctx.dataset.test(category)
    labels = np.array([s.label for s in test])
    size, mask_resize = cfg.backbone.image_size, cfg.scoring.resolved().mask_resize
    spill = spill_for(ctx, category, len(test))
    masks = None
    if ctx.dataset.has_masks and any(s.mask_path is not None for s in test if s.label):  # else image-level only
        shape = (len(test), size, size)
        masks = spill_array(spill.directory, shape, bool) if spill else np.empty(shape, bool)
        for i, s in enumerate(test):
            masks[i] = load_mask(s, size, mask_resize)
        empty = [s.image_path for i, s in enumerate(test) if s.label and not masks[i].any()]
        if empty:  # an anomaly too small for the resized mask, or a defect without annotation
            console.print(f"[yellow]warning:[/] {category}: {len(empty)} anomalous test image(s) have an empty "
                          f"mask at {size} px, e.g. {empty[0]}; counted in n_empty_masks")
    regions = None
    if masks is not None and any(k.startswith(SPRO_PREFIX) for k in cfg.scoring.extra_metrics):
        regions = ctx.dataset.defect_regions(category, test, size, mask_resize)
    normalise = feature_normaliser(ctx, category)
    held_feats = normalise(ctx.features(held, f"{category}: held-out features")) if held else torch.empty(0)
    return EvalSet(category, held_feats, normalise(ctx.features(test, f"{category}: test features")), labels,
                   masks, test, normalise, regions, spill, getattr(ctx.dataset, "kinds_apart", ()))


def spill_for(ctx: Context, category: str, n_test: int) -> Spill | None:
    """Where ``category``'s maps and masks go when its metric pass would take more than
    ``runtime.metric_memory_mb`` in memory (None: it fits); an optional metric that needs the maps in memory
    is refused then, before anything is scored."""
    cfg = ctx.cfg
    spill = Spill.needed(n_test * cfg.backbone.image_size**2, cfg.runtime.metric_memory_mb, ctx.cache_dir / "spill")
    in_memory = [k for k in metric_keys("pixel", tuple(cfg.scoring.extra_metrics)) if k not in STREAMED]
    in_memory += [f"scoring.aupro_impl {cfg.scoring.aupro_impl}"] if cfg.scoring.aupro_impl != "exact" else []
    if spill and in_memory:
        raise ConfigError(f"{category}: {n_test} test images at {cfg.backbone.image_size} px take more than "
                          f"runtime.metric_memory_mb ({cfg.runtime.metric_memory_mb} MB) for the in-memory metric "
                          f"pass, so its pixel metrics are streamed; {', '.join(in_memory)} need the maps in "
                          "memory: raise runtime.metric_memory_mb, or leave them out (scoring.extra_metrics, "
                          "scoring.aupro_impl: exact).")
    return spill


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


def peak_memory(device: torch.device) -> dict[str, Any]:
    """The most memory the cell held: CUDA memory allocated by torch since the cell began, or on the CPU the
    process's peak resident set (a high-water mark of the whole process, not of the cell alone)."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "peak_memory_of": "cuda allocated"}
    import resource

    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
            "peak_memory_of": "process peak RSS"}


def training_cost(ctx: Context, category: str, has_model: bool = True) -> dict[str, Any]:
    """The training time of the noise net that scores ``category`` (its ``.train.json``, written when it was
    trained, in this run or the one it was copied from) and its loss log relative to the run folder; NaN and
    empty when it has none (knn) or was trained before these were kept."""
    path = ctx.model_path(category)
    if not has_model:
        return {"train_seconds": float("nan"), "train_log": "", "train_world_size": 0, "train_batch_per_process": 0,
                "train_precision": ""}
    try:
        record = json.loads(path.with_suffix(".train.json").read_text())
        seconds = float(record["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        record, seconds = {}, float("nan")
    log = path.with_suffix(".train_log.csv")
    # the processes it trained on and each one's share of the global batch (train.batch_size); 0: not recorded
    world = int(record.get("world_size", 0))
    return {"train_seconds": seconds, "train_log": str(log.relative_to(ctx.run_dir)) if log.is_file() else "",
            "train_world_size": world, "train_batch_per_process": int(record.get("batch_per_process", 0)),
            "train_precision": str(record.get("precision", ""))}


MASK_THRESHOLDS = {"nearest": 0.0, "bilinear": 0.5}  # load_mask's binarisation after each resize


def image_rows(scores: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """Each scored unit's score and label (``EvalSet.image_level``): what paired tests between methods read."""
    return {"image_scores": [float(v) for v in scores], "image_labels": [int(v) for v in labels] if len(scores)
            else []}


def result_row(ctx: Context, data: EvalSet, spec: dict[str, Any], scorer: Any, out: ImageScores,
               metrics: dict[str, float], seconds: tuple[float, float, float], cost: dict[str, Any],
               submission: str = "") -> dict[str, Any]:
    """A cell's metrics with its speed and ``cost``, scoring settings, full config and provenance, as the
    result-row catalogue declares them (``adbench.columns``; the maps of a few images are saved alongside when
    ``save_maps`` asks for them; ``submission``: the folder its private test sets were written to)."""
    cfg = ctx.cfg
    scoring = cfg.scoring.resolved()
    cell = cell_config(cfg, data.category, spec)
    key = cell_key(cell)
    mean, std, stats_source = input_stats(cfg)
    maps_file = save_maps(ctx, data, out.maps, out.scores, key) if cfg.scoring.save_maps > 0 and len(out.maps) else ""
    kept = cfg.scoring.keep_maps and data.masks is not None and len(out.maps)
    all_maps = keep_maps(ctx, data, out.maps, key) if kept else ""
    console.print(f"  {data.category:>12} {scorer_label(spec):<28} image AU-ROC {metrics['image_auroc']:.3f}  "
                  f"pixel AU-ROC {metrics['pixel_auroc']:.3f}")
    return make_row({
        "dataset": cfg.data.dataset, "category": data.category, "scorer": spec["name"],
        "scorer_label": scorer_label(spec), **scorer_columns(spec), "setting": cfg.data.setting,
        "trained_on": ",".join(cfg.trained_on(data.category)),
        "backbone": cfg.backbone.name, "backbone_weights": backbone_weights(cfg).identity,
        "input_mean": list(mean), "input_std": list(std), "input_stats": stats_source,
        "noise_net": cfg.noise_net.name if needs_model(spec) else "none",
        "feature_norm": cfg.noise_net.feature_norm, **metrics,
        "fps": 1.0 / (seconds[0] + seconds[1]), "scorer_fps": 1.0 / seconds[1], "fps_iqr": seconds[2],
        "fps_passes": FPS_PASSES,
        "nfe": scorer.nfe, "n_test": len(data.labels), "n_anomalous": int(data.labels.sum()),
        # each test image's score and label, in test order: paired tests between methods (report --significance)
        **image_rows(*data.image_level(out.scores)),
        "n_holdout": len(data.held_feats), "holdout_below_min": 0 < len(data.held_feats) < MIN_HOLDOUT,
        "n_empty_masks": data.empty_masks(),
        "pixel_metrics": data.masks is not None, "protocol": cfg.scoring.protocol_label(),
        # the metric pass: over the maps in memory, or streamed from disk (runtime.metric_memory_mb): same values
        "metric_pass": "streamed" if data.spill else "in memory",
        "image_score": out.image_score,
        # the held-out normals' pixel mean + 3 std: SegF1's and the submission's binarisation (NaN: none held out)
        "segf1_threshold": out.seg_threshold, "held_out": cfg.data.held_out,
        "smoothing_sigma": scoring.smoothing_sigma, "pool_size": scoring.pool_size,
        "align_corners": scoring.align_corners, "mask_resize": scoring.mask_resize, "pro_limit": cfg.scoring.pro_limit,
        "aupro_impl": cfg.scoring.aupro_impl,
        # a mask pixel is anomalous when > 0 in the file; resized bilinearly (ADer), when > this share of 255 after
        "mask_threshold": MASK_THRESHOLDS[scoring.mask_resize],
        "normalisation": scoring.normalisation, "transductive": scoring.transductive,
        "weights_scored": ("ema" if cfg.scoring.use_ema else "raw") if needs_model(spec) else "none",
        "seed": cfg.seed, "cell_key": key, "config_hash": cell_key(cfg),
        "config": json.dumps(cell.to_dict(), sort_keys=True), "versions": json.dumps(versions()),
        "git_commit": git_commit(), "device": device_name(ctx.device),
        "fps_batch_size": min(cfg.scoring.fps_images, len(data.samples)),
        "precision": precision(ctx.device, ctx.cfg.noise_net.precision), "backbone_precision": ctx.backbone_precision,
        "host_allocator": host_allocator(), "maps_file": maps_file, "all_maps_file": all_maps,
        "submission_dir": submission,
        **training_cost(ctx, data.category, needs_model(spec)),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda_deterministic": ctx.device.type == "cuda" and torch.are_deterministic_algorithms_enabled(), **cost,
    })


def kept_samples(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` test images whose maps are kept: anomalous and normal alike (half each, the
    anomalous first, in test order; one kind short, the other fills in)."""
    anomalous, normal = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    n_anomalous = min(len(anomalous), max(n - len(normal), -(-n // 2)))
    return np.concatenate([anomalous[:n_anomalous], normal[: n - n_anomalous]]).astype(int)


def save_maps(ctx: Context, data: EvalSet, maps: np.ndarray, scores: np.ndarray, key: str) -> str:
    """Keep the maps of a few test images (anomalous first) for figures, with their image scores and the share
    of the category's test images scored lower (a score's place on the method's own scale); returns the
    file's path relative to the run folder (the folder may be moved, or reported on from anywhere)."""
    order = kept_samples(data.labels, ctx.cfg.scoring.save_maps)
    masks = data.masks[order] if data.masks is not None else np.zeros((len(order), *maps.shape[1:]), bool)
    return write_npz(ctx, f"{key}.npz", maps=maps[order].astype(np.float16), masks=masks, labels=data.labels[order],
                     scores=scores[order], images=np.array([str(data.samples[i].image_path) for i in order]),
                     score_below=(scores[None, :] < scores[order, None]).mean(axis=1))


def keep_maps(ctx: Context, data: EvalSet, maps: np.ndarray, key: str) -> str:
    """Every test image's map (float32, as scored) and mask (``scoring.keep_maps``), for paired bootstraps of the
    pixel metrics between methods (``report --significance``); the file's path relative to the run folder."""
    return write_npz(ctx, f"{key}-all.npz", maps=maps, masks=data.masks, labels=data.labels)


def write_npz(ctx: Context, name: str, **arrays: np.ndarray) -> str:
    """``arrays`` compressed into the run folder's ``maps/<name>``, atomically; the path relative to the run
    folder (the folder may be moved, or reported on from anywhere)."""
    path = ctx.run_dir / "maps" / name

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: savez would append .npz to a path
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write)
    return str(path.relative_to(ctx.run_dir))
