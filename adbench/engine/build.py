"""Components built from a config: the dataset, scorers and noise nets, and how a scorer is named."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adbench.config import RunConfig
from adbench.data.base import Dataset
from adbench.registry import DATASETS, NOISE_NETS, SCORERS


def scorer_label(spec: dict[str, Any]) -> str:
    """The scorer as displayed: ``name(arg=value,...)`` with the arguments the spec sets."""
    args = ",".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({args})" if args else spec["name"]


def scorer_columns(spec: dict[str, Any]) -> dict[str, Any]:
    """One result-row column per scorer argument, defaults included: ``scorer.t``, ``scorer.steps``, ..."""
    given = {k: v for k, v in spec.items() if k != "name"}
    return {f"scorer.{k}": v for k, v in SCORERS.arguments(spec["name"], **given).items()}


def build_dataset(cfg: RunConfig, cache_dir: Path | None = None) -> Dataset:
    """The configured dataset; one that is generated (synthetic) goes under ``cache_dir``."""
    root = {"root": cfg.data.root} if cfg.data.root else {}
    factory = DATASETS.get(cfg.data.dataset).factory
    cache = {"cache_dir": cache_dir} if cache_dir and "cache_dir" in inspect.signature(factory).parameters else {}
    return DATASETS.create(cfg.data.dataset, **root, **cache, **cfg.data.args)


def build_scorer(spec: dict[str, Any]) -> Any:
    """A scorer from its spec: ``{"name": ..., **arguments}``."""
    return SCORERS.create(spec["name"], **{k: v for k, v in spec.items() if k != "name"})


def build_noise_net(cfg: RunConfig, in_channels: int, grid: int | None = None) -> nn.Module:
    """The configured noise net, initialised from ``cfg.seed`` alone: the same weights whatever ran
    before in this process (cached or fresh features, earlier grid cells, a resumed grid). A net whose
    constructor takes ``grid`` (the DiT's position table) is built for the features' ``grid`` x ``grid``
    tokens, unless its arguments set it."""
    args = dict(cfg.noise_net.args)
    if grid is not None and "grid" in inspect.signature(NOISE_NETS.get(cfg.noise_net.name).factory).parameters:
        args.setdefault("grid", grid)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return NOISE_NETS.create(cfg.noise_net.name, in_channels=in_channels, **args)


def needs_model(spec: dict[str, Any]) -> bool:
    """Whether a scorer scores with a trained noise net (``knn`` does not)."""
    return not SCORERS.can(spec["name"], "no_model")


def cell_config(cfg: RunConfig, category: str, spec: dict[str, Any]) -> RunConfig:
    """The configuration of one result row: one category, one scorer. A scorer without a noise net
    gets the default noise-net fields, so its cells are the same whatever noise net a grid sweeps."""
    cell = cfg.updated({"categories": [category], "scoring.scorers": [spec]})
    return cell if needs_model(spec) else cell.without_noise_net()
