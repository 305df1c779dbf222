"""What a run shares across categories (``Context``: config, dataset, backbone, cached features) and what
scoring one category reads (``EvalSet``: the held-out and test features, labels, masks, defect regions)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adbench.atomic import remove_stale_temporaries
from adbench.config import RunConfig
from adbench.data.base import Dataset, DefectRegion, Sample, Transform, load_mask
from adbench.device import (
    precision,
    prepare_backbone,
    resolve_device,
)
from adbench.engine.build import (
    build_dataset,
)
from adbench.engine.cache import cached_features
from adbench.engine.keys import backbone_weights, context_key, feature_key, input_stats, training_key
from adbench.engine.preflight import preflight
from adbench.errors import ConfigError, DataError
from adbench.metrics import (
    SPRO_PREFIX,
    metric_keys,
)
from adbench.metrics.streaming import STREAMED, Spill, spill_array
from adbench.progress import make_console
from adbench.registry import BACKBONES

__all__ = ["MIN_HOLDOUT", "SHARED_CACHE_GRACE", "Context", "ContextCache", "eval_set", "EvalSet", "feature_normaliser",
           "holdout_size", "spill_for", "split_train", "training_features", "unchanged"]

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
    said: set[str] = field(default_factory=set)  # the warnings given: shared by its copies (``ContextCache.get``)
    timed_backbone: dict = field(default_factory=dict)  # the FPS batch's backbone passes (``backbone_passes``)

    def warn(self, message: str) -> None:
        """Print a warning once however many cells meet it (each noise net's cells score each category)."""
        if message not in self.said:
            self.said.add(message)
            console.print(f"[yellow]warning:[/] {message}")

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
        ctx.warn(f"{category}: only {len(held)} held-out normal images estimate the score normalisation (at least "
                 f"{MIN_HOLDOUT} wanted; the category is small); flagged in its rows (holdout_below_min)")
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
            ctx.warn(f"{category}: {len(empty)} anomalous test image(s) have an empty mask at {size} px, e.g. "
                     f"{empty[0]}; counted in n_empty_masks")
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

