"""The keys that decide what is reused, each the hash of the config sections it depends on (never a
list of fields, so a field added to a section is part of every key of that section):

* features (``feature_key``): the backbone section with its weights by content (a timm tag, a file's
  sha256, or random init with its seed) and the input statistics resolved, the image files by content, the device
  type and precision;
* a trained noise net (``training_key``): the data, noise_net and train sections (their ``scoring_only``
  fields aside), the seeds, the features and the categories it trains on and the hold-out;
* a result cell (``cell_key``): every section but runtime, the weights by content;
* a loaded context (``context_key``): the data section, the features' setup and the device.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from adbench.backbones.identity import WeightsInfo, weights_info
from adbench.config import RunConfig, scoring_only_fields
from adbench.data.base import Sample
from adbench.hashing import file_sha256, stable_hash


def backbone_weights(cfg: RunConfig) -> WeightsInfo:
    """The exact weights of the configured backbone and the input statistics they expect."""
    return weights_info(cfg.backbone.name, cfg.backbone.pretrained, cfg.backbone.weights)


def input_stats(cfg: RunConfig, info: WeightsInfo | None = None) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """(mean, std, source) of the input normalisation: ``weights`` (the weights' own statistics) or
    ``set`` / ``set, differs from the weights`` when ``backbone.image_mean``/``image_std`` are given."""
    info = info or backbone_weights(cfg)
    b = cfg.backbone
    mean = tuple(b.image_mean) if b.image_mean is not None else info.mean
    std = tuple(b.image_std) if b.image_std is not None else info.std
    if b.image_mean is None and b.image_std is None:
        return mean, std, "weights"
    same = np.allclose(mean, info.mean) and np.allclose(std, info.std)
    return mean, std, "set" if same else "set, differs from the weights"


def feature_setup(cfg: RunConfig) -> dict[str, Any]:
    """What backbone features depend on besides the image files and the device: the backbone section,
    with the weights as their exact identity and the input statistics resolved."""
    info = backbone_weights(cfg)
    identity = info.identity + (f"(seed={cfg.seed})" if info.identity == "random-init" else "")
    mean, std, _ = input_stats(cfg, info)
    return {**cfg.backbone.model_dump(), "weights": identity, "image_mean": list(mean), "image_std": list(std)}


def feature_key(cfg: RunConfig, samples: list[Sample], precision: str) -> str:
    """The cache key of the features of ``samples``: the image files by content (``image_digest``), the feature
    setup and where they ran (``precision``: device type and effective precision, e.g. ``cuda:bf16``)."""
    return stable_hash({"setup": feature_setup(cfg), "precision": precision,
                        "files": [image_digest(s.image_path) for s in samples]})


def image_digest(path: str | Path) -> str:
    """The SHA-256 of an image file's bytes (its path as given when there is none): an image replaced by
    another of the same size and time is another image. Hashed once per process and file version (its
    change time too, which no one sets back)."""
    if not Path(path).is_file():
        return str(path)
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=200_000)
def _digest(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:  # a file written again: hashed again
    return file_sha256(path)


def training_key(cfg: RunConfig, category: str) -> str:
    """The key of the noise net that scores ``category``: the data, noise_net and train sections (but the
    fields that only say how it is scored, ``scoring_only``), the seeds, the features it trains on, its
    training categories and hold-out."""
    scoring_only: dict[str, set[str]] = {}
    for key in scoring_only_fields():
        section, field = key.split(".")
        scoring_only.setdefault(section, set()).add(field)
    return stable_hash({"categories": cfg.trained_on(category), "backbone": feature_setup(cfg),
                        "holdout": cfg.holdout(),
                        **cfg.model_dump(include={"data", "noise_net", "train", "seed", "deterministic"},
                                         exclude=scoring_only)})


def cell_key(cfg: RunConfig) -> str:
    """The key of everything that changes results: every section but runtime, the weights by content (a
    file replaced at the same path is another config)."""
    return stable_hash({**cfg.model_dump(exclude={"runtime"}), "backbone": feature_setup(cfg)})


def context_key(cfg: RunConfig) -> str:
    """What a loaded context (dataset + backbone) depends on: the data section, the features' setup and
    the device."""
    return stable_hash({"data": cfg.data.model_dump(), "backbone": feature_setup(cfg), "device": cfg.runtime.device})
