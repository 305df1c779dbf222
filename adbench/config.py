"""The typed, validated run configuration (filled alike from YAML and CLI flags) and its hash."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from adbench.checks import check_fields
from adbench.device import PRECISIONS
from adbench.diffusion.train import TrainConfig
from adbench.errors import ConfigError
from adbench.hashing import stable_hash
from adbench.scorers.scoring import IMAGE_SCORES, NORMALISATIONS, PROTOCOLS, Scoring

if TYPE_CHECKING:
    from adbench.backbones.identity import WeightsInfo


SETTINGS = ("multiclass", "single")
FEATURE_NORMS = ("none", "standardize")


# Every field belongs to one section; the cache and model keys hash sections, never lists of field names,
# so a new field is part of every key its section is part of.
SECTIONS = ("dataset", "split", "input", "backbone", "features", "noise_net", "train", "seed", "scoring", "runtime")


def section(name: str, default: Any = dataclasses.MISSING, *, model_only: bool = False,
            choices: tuple[str, ...] | None = None, bounds: dict[str, float] | None = None, **kw: Any) -> Any:
    """A config field of section ``name``. ``model_only``: meaningful only for a scorer with a noise net
    (reset, like the noise_net and train sections, in the cells of scorers without one). ``choices`` and
    ``bounds`` (``ge``, ``gt``, ``le``, ``lt``): the values it takes, checked on load (``checks``) and
    listed in the JSON Schema."""
    if name not in SECTIONS:
        raise ValueError(f"unknown config section {name!r}; sections: {SECTIONS}")
    return field(default=default, metadata={"section": name, "model_only": model_only, "choices": choices,
                                            "bounds": bounds or {}}, **kw)


@dataclass
class RunConfig:
    name: str = section("runtime", "run")
    dataset: str = section("dataset", "synthetic")
    data_root: str | None = section("dataset", None)
    dataset_args: dict[str, Any] = section("dataset", default_factory=dict)  # e.g. elpv threshold, synthetic sizes
    categories: list[str] | None = section("scoring", None)  # None: every category of the dataset
    # multiclass (the papers' main tables): one noise net trained on the normals of train_categories
    # (None: every category of the dataset), every category scored with it; single: one per category
    setting: str = section("split", "multiclass", choices=SETTINGS)
    train_categories: list[str] | None = section("split", None)
    image_size: int = section("input", 256, bounds={"ge": 16})
    image_mean: list[float] | None = section("input", None)  # None: the statistics the backbone's weights expect
    image_std: list[float] | None = section("input", None)
    backbone: str = section("backbone", "efficientnet_b4")
    pretrained: bool = section("backbone", True)
    weights: str | None = section("backbone", None)
    backbone_precision: str = section("backbone", "fp32", choices=PRECISIONS)  # fp32 (official code); CPU: fp32
    noise_net: str = section("noise_net", "mlp")
    precision: str = section("noise_net", "bf16", choices=PRECISIONS)  # training and scoring on CUDA; CPU: fp32
    # none (the papers: raw features) or standardize (per-channel mean/std of the training normals)
    feature_norm: str = section("features", "none", choices=FEATURE_NORMS)
    noise_net_args: dict[str, Any] = section("noise_net", default_factory=dict)
    train: TrainConfig = section("train", default_factory=TrainConfig)
    # score with the EMA weights; False: the raw last weights (the official evaluation)
    use_ema: bool = section("scoring", False, model_only=True)
    scorers: list[dict[str, Any]] = section("scoring", default_factory=lambda: [
        {"name": "osd_irf_mean"}, {"name": "osd_irf_noisy"}, {"name": "invad"}])
    # scoring preset: invad (raw maps, nll+diff) or ader (sigma 4, max); the fields below override its values
    protocol: str = section("scoring", "invad", choices=tuple(PROTOCOLS))
    image_score: str | None = section("scoring", None, choices=IMAGE_SCORES)
    smoothing_sigma: float | None = section("scoring", None)
    pool_size: int | None = section("scoring", None)
    # train (held-out normals) or test-minmax (transductive)
    normalisation: str | None = section("scoring", None, choices=NORMALISATIONS)
    holdout_fraction: float = section("split", 0.1, bounds={"gt": 0, "lt": 1})
    seed: int = section("seed", 42, bounds={"ge": 0})  # the official code's
    device: str = section("runtime", "auto")
    deterministic: bool = section("scoring", False)  # torch deterministic algorithms (CUDA: cuBLAS workspace too)
    eval_batch_size: int = section("scoring", 32, bounds={"ge": 1})
    save_maps: int = section("scoring", 4, bounds={"ge": 0})  # maps of this many test images kept (anomalous first)
    fps_images: int = section("scoring", 64, bounds={"ge": 1})  # the FPS column's batch (the papers time batches of 64)

    def __post_init__(self) -> None:
        check_fields(self)
        self.scoring()  # validates the overrides
        if self.image_size % 16:
            raise ConfigError(f"image_size must be a multiple of 16, got {self.image_size}")
        for stats in (self.image_mean, self.image_std):
            if stats is not None and len(stats) != 3:
                raise ConfigError(f"image_mean/image_std need 3 values, got {stats}")
        if self.image_std is not None and min(self.image_std) <= 0:
            raise ConfigError(f"image_std needs values > 0, got {self.image_std}")
        if self.setting == "single" and self.train_categories is not None:
            raise ConfigError("train_categories applies to setting: multiclass (single trains on each category alone)")
        if self.train_categories is not None and not self.train_categories:
            raise ConfigError("train_categories needs at least one category (or null for all of the dataset's)")
        for spec in self.scorers:
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"each scorer needs a 'name', got {spec!r}")

    def scoring(self) -> Scoring:
        """The protocol's scoring with any explicitly set field overriding it."""
        fields = ("image_score", "smoothing_sigma", "pool_size", "normalisation")
        overrides = {k: getattr(self, k) for k in fields if getattr(self, k) is not None}
        return dataclasses.replace(PROTOCOLS[self.protocol], **overrides)

    def protocol_label(self) -> str:
        """The protocol name, with ``+custom`` when overrides change it."""
        return self.protocol if self.scoring() == PROTOCOLS[self.protocol] else f"{self.protocol}+custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sections(self, *names: str) -> dict[str, Any]:
        """The fields of the named sections, as plain values."""
        unknown = set(names) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; sections: {SECTIONS}")
        values = self.to_dict()
        return {f.name: values[f.name] for f in dataclasses.fields(self) if f.metadata["section"] in names}

    def hash(self) -> str:
        """Stable hash of everything that changes results: every section but the runtime (name, device),
        with the backbone weights by content (a file replaced at the same path is another config)."""
        return stable_hash({**self.sections(*(s for s in SECTIONS if s != "runtime")),
                            "features": self.feature_setup()})

    def with_train_categories(self, dataset_categories: list[str]) -> RunConfig:
        """Under ``multiclass``, this config with ``train_categories`` resolved (unset: all of the dataset's)."""
        if self.setting == "single" or self.train_categories is not None:
            return self
        return dataclasses.replace(self, train_categories=sorted(dataset_categories))

    def trained_on(self, category: str) -> list[str]:
        """The categories whose normal images train the noise net that scores ``category``."""
        if self.setting == "single":
            return [category]
        if self.train_categories is None:
            raise ValueError("multiclass train_categories unresolved: call with_train_categories first")
        return sorted(self.train_categories)

    def model_name(self, category: str) -> str:
        """The trained model's file name stem: the category, or ``multiclass``."""
        return category if self.setting == "single" else "multiclass"

    def training_key(self, category: str) -> str:
        """Hash of what determines the noise net that scores ``category``: the dataset, split, features,
        noise_net, train and seed sections, the backbone features it trains on, its training categories
        and hold-out."""
        return stable_hash({"categories": self.trained_on(category), "features": self.feature_setup(),
                            "holdout": self.holdout(),
                            **self.sections("dataset", "split", "features", "noise_net", "train", "seed")})

    def holdout(self) -> float | None:
        """The fraction of each category's normals held out for score normalisation; None under
        transductive (test-minmax) normalisation, which trains on all of them."""
        return None if self.scoring().transductive else self.holdout_fraction

    def weights_info(self) -> WeightsInfo:
        """The exact weights of the configured backbone and the input statistics they expect."""
        from adbench.backbones.identity import weights_info

        return weights_info(self.backbone, self.pretrained, self.weights)

    def input_stats(self, info: WeightsInfo | None = None) -> tuple[tuple[float, ...], tuple[float, ...], str]:
        """(mean, std, source) of the input normalisation: ``weights`` (the weights' own statistics) or
        ``set`` / ``set, differs from the weights`` when ``image_mean``/``image_std`` are given."""
        info = info or self.weights_info()
        mean = tuple(self.image_mean) if self.image_mean is not None else info.mean
        std = tuple(self.image_std) if self.image_std is not None else info.std
        if self.image_mean is None and self.image_std is None:
            return mean, std, "weights"
        same = np.allclose(mean, info.mean) and np.allclose(std, info.std)
        return mean, std, "set" if same else "set, differs from the weights"

    def feature_setup(self) -> dict[str, Any]:
        """What backbone features depend on besides the image files and the device: the input and backbone
        sections, with the weights as their exact identity (timm tag, a file's sha256, or random init
        with its seed) and the input statistics resolved."""
        info = self.weights_info()
        identity = info.identity + (f"(seed={self.seed})" if info.identity == "random-init" else "")
        mean, std, _ = self.input_stats(info)
        return {**self.sections("input", "backbone"), "weights": identity, "image_mean": list(mean),
                "image_std": list(std)}


@functools.cache
def noise_net_fields() -> tuple[str, ...]:
    """The fields that mean something only for a scorer with a noise net: the noise_net and train
    sections and the fields marked ``model_only``."""
    return tuple(f.name for f in dataclasses.fields(RunConfig)
                 if f.metadata["section"] in ("noise_net", "train") or f.metadata["model_only"])


def file_fingerprint(path: str | Path) -> Any:
    """(resolved path, size, mtime) of an existing file; the path as given otherwise."""
    if not Path(path).is_file():
        return str(path)
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type annotation; build nested dataclasses."""
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        return _coerce(value, next(a for a in options if a is not type(None)), where)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    target = origin or annotation
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if target is typing.Any or isinstance(value, target) and not (target is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: expected {getattr(target, '__name__', target)}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(fields)
    if unknown:
        named = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, fields, n=1))
                 else repr(k) for k in sorted(unknown)]
        raise ConfigError(f"{where}: unknown key(s) {', '.join(named)}; valid keys: {sorted(fields)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def read_yaml(path: str | Path, what: str = "Config") -> dict[str, Any]:
    """A YAML mapping read with the safe loader; clear errors for a missing or malformed file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} not found.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    """``["seed=3", "train.epochs=5"]`` -> ``{"seed": 3, "train.epochs": 5}`` (values as YAML scalars)."""
    out = {}
    for item in sets or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item!r} must be key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "train.epochs", 5)``; ``scorer`` and ``scorer.<arg>`` address the cell's scorer."""
    if key == "scorer":
        data["scorers"] = [parse_scorer(value) if isinstance(value, str) else dict(value)]
        return
    if key.startswith("scorer."):
        arg = key.split(".", 1)[1]
        data["scorers"] = [{**spec, arg: value} for spec in data.get("scorers") or RunConfig().scorers]
        return
    *parents, last = key.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a mapping")
    node[last] = value


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping ``data`` with dotted-key ``overrides`` set (``scorer`` before its
    arguments ``scorer.<arg>``)."""
    out = copy.deepcopy(data)
    for key in sorted(overrides, key=lambda k: k != "scorer"):
        set_dotted(out, key, overrides[key])
    return out


def config_from(base: dict[str, Any], overrides: dict[str, Any] | None = None, where: str = "config") -> RunConfig:
    """The run config of mapping ``base`` with dotted-key ``overrides``: the one way grids, studies and the
    CLI turn a spec into a RunConfig (unknown keys and wrong types are refused, naming ``where``)."""
    return from_dict(RunConfig, with_overrides(base, overrides or {}), where)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (safe loader) and apply ``overrides``."""
    return from_dict(RunConfig, {**read_yaml(path), **(overrides or {})}, where=str(path))


def parse_scorer(text: str) -> dict[str, Any]:
    """``"invad:steps=5"`` -> ``{"name": "invad", "steps": 5}`` (values parsed as YAML scalars)."""
    name, _, args = text.partition(":")
    spec: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"scorer option {item!r} in {text!r} must be key=value")
        spec[key.strip()] = yaml.safe_load(value)
    return spec
