"""The run configuration: frozen, validated sections, read alike from YAML and CLI flags, and the keys
derived from them. It imports no stage.

A run config::

    seed: 42                  # every random draw: splits, initialisation, noise
    deterministic: false      # torch deterministic algorithms (CUDA: cuBLAS workspace too)
    categories: null          # the categories scored (null: every category of the dataset)
    data:      {dataset, root, args, setting, train_categories, holdout_fraction}
    backbone:  {name, pretrained, weights, precision, image_size, image_mean, image_std}
    noise_net: {name, args, precision, feature_norm}
    train:     {epochs, batch_size, lr, ...}
    scoring:   {scorers, protocol, image_score, smoothing_sigma, pool_size, normalisation, use_ema, ...}
    runtime:   {name, device}

The keys of features, trained noise nets, result cells and loaded contexts hash these sections
(``adbench.engine.keys``).
Dotted keys (``train.epochs=5``) override any field; ``scorer`` and ``scorer.<arg>`` address the
scorer of a grid cell.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adbench.errors import ConfigError
from adbench.protocols import AUPRO_IMPLS, IMAGE_SCORES, NORMALISATIONS, PROTOCOLS, Scoring

__all__ = ["MAX_NAME_BYTES", "MAX_YAML_VALUES", "MODEL_SECTIONS", "MOVED", "QUICK", "SECTIONS",
           "STANDARDISED_BACKBONES", "BackboneConfig", "category_folders", "checked_name", "config_from",
           "DataConfig", "default_of", "default_scorers", "describe", "DuplicateKey", "expanded_size",
           "load_config", "model_at", "model_only_fields", "noise_net_keys",
           "NoiseNetConfig", "parse_scorer", "parse_sets", "path_component", "quick", "read_yaml",
           "RunConfig", "RuntimeConfig", "scoring_only_fields", "ScoringConfig", "Section", "sections",
           "set_dotted", "StrictLoader", "TrainConfig", "validated", "with_overrides"]

Precision = Literal["fp32", "bf16"]


def checked_name(value: Any, where: str) -> str:
    """``value`` as the name of a grid or study folder, refused (naming ``where``) unless one folder name."""
    try:
        return path_component(value if isinstance(value, str) else "", "a name")
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


MAX_NAME_BYTES = 200  # a file name holds 255 bytes; adbench adds a time stamp and a key to a run's name


def path_component(value: str, what: str = "a name") -> str:
    """``value`` if it names one file or folder (it becomes part of a path): no separator, not ``.``/``..``,
    at most ``MAX_NAME_BYTES`` bytes."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise ValueError(f"{what} must be a single file or folder name (no '/', '.' or '..'), got {value!r}")
    if len(value.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"{what} may be {MAX_NAME_BYTES} bytes long at most (a file name holds 255, and adbench "
                         f"adds a time stamp and a key), got {len(value.encode())}: {value[:40]}...")
    return value


def category_folders(names: list[str] | None) -> list[str] | None:
    """Category names as folder names inside the data root (each one path component)."""
    return None if names is None else [path_component(n, "a category") for n in names]


Categories = Annotated[list[str] | None, AfterValidator(category_folders)]


class Section(BaseModel):
    """A frozen config section: unknown keys and wrong types are refused (no string-to-number coercion)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataConfig(Section):
    """What is trained on and scored: the dataset, and how its normals are split."""

    dataset: str = "synthetic"
    root: str | None = None  # a local dataset folder
    args: dict[str, Any] = Field(default_factory=dict)  # the dataset's own options, e.g. elpv threshold
    # multiclass (the papers' main tables): one noise net trained on the normals of train_categories
    # (None: every category of the dataset), every category scored with it; single: one per category
    setting: Literal["multiclass", "single"] = "multiclass"
    train_categories: Categories = Field(None, min_length=1)
    holdout_fraction: float = Field(0.1, gt=0, lt=1)  # normals held out for score normalisation
    # train: holdout_fraction of the training normals are held out; validation: the dataset's own normal
    # validation images (MVTec AD 2's and LOCO's validation/good), training on every training normal
    held_out: Literal["train", "validation"] = "train"

    @model_validator(mode="after")
    def _single_trains_alone(self) -> DataConfig:
        if self.setting == "single" and self.train_categories is not None:
            raise ValueError("train_categories applies to setting: multiclass (single trains on each "
                             "category alone)")
        return self


class BackboneConfig(Section):
    """The frozen feature extractor and its input."""

    name: str = "efficientnet_b4"
    pretrained: bool = True
    weights: str | None = None  # a local weights file (offline)
    precision: Precision = "fp32"  # on CUDA (fp32: the official code); CPU runs fp32
    image_size: int = Field(256, ge=16, multiple_of=16)
    # None: the statistics the backbone's weights expect
    image_mean: list[float] | None = Field(None, min_length=3, max_length=3)
    image_std: list[Annotated[float, Field(gt=0)]] | None = Field(None, min_length=3, max_length=3)

    @model_validator(mode="after")
    def _weights_are_pretrained(self) -> BackboneConfig:
        if self.weights is not None and not self.pretrained:
            raise ValueError("backbone.weights is a pretrained weights file but backbone.pretrained is false "
                             "(--no-pretrained): drop one of them")
        return self


class NoiseNetConfig(Section):
    """The noise net and the features it sees."""

    name: str = "mlp"
    args: dict[str, Any] = Field(default_factory=dict)  # its constructor's options, e.g. width, depth
    # scoring on CUDA (bf16 autocast: the official evaluate.py); training has its own, train.precision. Part of
    # no trained model's key: the same weights are scored at either precision
    precision: Precision = Field("bf16", json_schema_extra={"scoring_only": True})
    # none (the papers: raw features) or standardize (per-channel mean/std of the training normals)
    feature_norm: Literal["none", "standardize"] = "none"


class TrainConfig(Section):
    """The official InvAD recipe (see ``adbench.diffusion.train``)."""

    epochs: int = Field(300, ge=1)
    batch_size: int = Field(64, ge=1)  # InvAD's global batch (8 GPUs x 8); OSD-IRF uses 32
    lr: float = Field(5e-5, gt=0)  # the peak
    lr_start: float = Field(1e-6, ge=0)  # at the first step of the warm-up
    lr_end: float = Field(1e-6, ge=0)  # at the end of the cosine decay
    warmup_epochs: int = Field(40, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    timesteps: int = Field(1000, ge=2)
    checkpoint_every: int = Field(500, ge=1)
    ema_decay: float = Field(0.999, ge=0, le=1)
    ema_warmup: bool = False
    # the training step on CUDA: fp32 (the official train.py and train_distributed.py: no autocast) or bf16
    # autocast; CPU runs fp32
    precision: Precision = "fp32"
    # drop an epoch's last, incomplete batch (the official loaders' drop_last=True) or train on it too
    drop_last: bool = True
    # one noise net on several processes (runtime.nproc_per_node): ddp replicates it on each and averages the
    # gradients; fsdp shards its weights, gradients and optimizer state across them (torch FSDP2)
    strategy: Literal["ddp", "fsdp"] = "ddp"
    # recompute each block's activations in the backward pass instead of keeping them (torch.utils.checkpoint):
    # less memory, about one more forward pass of compute
    activation_checkpointing: bool = False
    # where timesteps and noise are drawn: host (one CPU stream: a GPU run trains the CPU run's model, up to
    # float rounding) or device (a CUDA generator: no per-step host work, but a different stream, so GPU and
    # CPU models differ as with another seed)
    noise_on: Literal["host", "device"] = "host"


def default_scorers() -> list[dict[str, Any]]:
    return [{"name": "osd_irf_mean"}, {"name": "osd_irf_noisy"}, {"name": "invad"}]


class ScoringConfig(Section):
    """The scorers and how their output becomes maps and image scores."""

    scorers: list[dict[str, Any]] = Field(default_factory=default_scorers, min_length=1)
    # a preset: invad (raw maps, nll+diff) or ader (sigma 4, max); the four fields below override its values
    protocol: Literal[tuple(PROTOCOLS)] = "invad"  # type: ignore[valid-type]
    image_score: Literal[IMAGE_SCORES] | None = None  # type: ignore[valid-type]
    smoothing_sigma: float | None = Field(None, ge=0)
    pool_size: int | None = Field(None, ge=1)
    normalisation: Literal[NORMALISATIONS] | None = None  # type: ignore[valid-type]  # train or test-minmax
    # score with the EMA weights; False: the raw last weights (the official evaluation)
    use_ema: bool = Field(False, json_schema_extra={"model_only": True})
    eval_batch_size: int = Field(32, ge=1)
    save_maps: int = Field(4, ge=0)  # maps of this many test images kept (half anomalous, half normal)
    # every test image's map and mask kept (float32, maps/<cell key>-all.npz): report --significance then tests
    # the pixel metrics too, by a paired bootstrap over test images (adbench.metrics.bootstrap)
    keep_maps: bool = False
    fps_images: int = Field(64, ge=1)  # the FPS column's batch (the papers time batches of 64)
    pro_limit: float = Field(0.3, gt=0, le=1)  # AU-PRO integrates the PRO curve up to this FPR (the papers' 0.3)
    # exact (every threshold; MVTec AD's evaluation) or mvtec3d (MVTec 3D-AD's 100 thresholds, ties as steps)
    aupro_impl: Literal[AUPRO_IMPLS] = "exact"  # type: ignore[valid-type]
    # metrics computed only when asked, never in mAD (adbench.metrics: optional_metrics), e.g. [pixel_aupimo]
    extra_metrics: list[str] = Field(default_factory=list)
    # MVTec AD 2: also score test_private and test_private_mixed (no labels) and write them as its evaluation
    # server takes them, thresholded at the SegF1 threshold (adbench.engine.submission)
    submission: bool = False

    @field_validator("scorers")
    @classmethod
    def _named(cls, scorers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for spec in scorers:
            if not isinstance(spec.get("name"), str):
                raise ValueError(f"each scorer needs a 'name', got {spec!r}")
        return scorers

    def resolved(self) -> Scoring:
        """The protocol's scoring with the fields set here overriding it."""
        overrides = {k: v for k in ("image_score", "smoothing_sigma", "pool_size", "normalisation")
                     if (v := getattr(self, k)) is not None}
        return dataclasses.replace(PROTOCOLS[self.protocol], **overrides)

    def protocol_label(self) -> str:
        """The protocol's name, then each override that changes it (``invad+test-minmax``, ``ader+sigma2``)."""
        preset, resolved = PROTOCOLS[self.protocol], self.resolved()
        names = {"image_score": "{}", "smoothing_sigma": "sigma{:g}", "pool_size": "pool{}", "normalisation": "{}"}
        return "+".join([self.protocol, *(form.format(getattr(resolved, k)) for k, form in names.items()
                                          if getattr(resolved, k) != getattr(preset, k))])


class RuntimeConfig(Section):
    """Where and under what name a run goes: part of no key."""

    name: str = "run"  # the run folder's name prefix
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    # torch.compile the noise net's training step (forward and backward; one compile per batch shape, paid
    # once per training): the eager step's losses within float rounding (tests/test_diffusion.py)
    compile: bool = False
    # the most memory a category's pixel metrics may take: a category whose test maps need more is scored
    # through temporary files under the cache folder, in about this much memory, to the same values
    metric_memory_mb: int = Field(2048, ge=1)
    # train each noise net on this many processes of this machine, one per GPU (torch.distributed; CPU: gloo);
    # None trains in this process. train.batch_size stays the global batch, split evenly across all processes
    nproc_per_node: int | None = Field(None, ge=1)
    # a noise net trained across machines (adbench train only): the number of machines, each running the same
    # command, and the rendezvous every one of them reaches (host:port of one of them)
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: str | None = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        return path_component(name, "a run name")

    @model_validator(mode="after")
    def _machines_meet(self) -> RuntimeConfig:
        if self.nnodes > 1 and (self.nproc_per_node is None or not self.rdzv_endpoint):
            raise ValueError(f"runtime.nnodes {self.nnodes} trains across machines: set runtime.nproc_per_node "
                             "(--nproc-per-node) and runtime.rdzv_endpoint (--rdzv-endpoint HOST:PORT) too")
        return self

    @property
    def world_size(self) -> int:
        """The processes one noise net trains on (1: this process alone)."""
        return (self.nproc_per_node or 1) * self.nnodes


# backbone -> the noise_net.feature_norm a config gets when it names none
STANDARDISED_BACKBONES = {"pixels": "standardize"}
SECTIONS = ("data", "backbone", "noise_net", "train", "scoring", "runtime")
# meaningful only for a scorer with a noise net: reset in the cells of scorers without one (knn)
MODEL_SECTIONS = ("noise_net", "train")


class RunConfig(Section):
    seed: int = Field(42, ge=0)  # the official code's
    deterministic: bool = False
    categories: Categories = Field(None, min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    noise_net: NoiseNetConfig = Field(default_factory=NoiseNetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="before")
    @classmethod
    def _backbone_feature_norm(cls, data: Any) -> Any:
        """A backbone's own feature normalisation where the config names none: ``pixels`` standardises (its
        raw values mean nothing to the prior); any other backbone keeps the papers' ``none``."""
        if not isinstance(data, dict) or not isinstance(data.get("backbone"), dict):
            return data
        norm = STANDARDISED_BACKBONES.get(data["backbone"].get("name"))
        noise_net = data.get("noise_net", {})
        if norm is None or not isinstance(noise_net, dict) or "feature_norm" in noise_net:
            return data
        return {**data, "noise_net": {**noise_net, "feature_norm": norm}}

    @model_validator(mode="after")
    def _batch_splits(self) -> RunConfig:
        world = self.runtime.world_size
        if self.train.batch_size % world:
            raise ValueError(f"train.batch_size {self.train.batch_size} is the global batch; it must split evenly "
                             f"across the {world} training processes (runtime.nproc_per_node x runtime.nnodes)")
        if self.train.strategy == "fsdp" and self.runtime.nproc_per_node is None:
            raise ValueError("train.strategy fsdp shards the noise net across training processes: set "
                             "runtime.nproc_per_node (--nproc-per-node N; 1 for one device)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def updated(self, overrides: dict[str, Any]) -> RunConfig:
        """This config with dotted-key ``overrides`` set, validated."""
        return config_from(self.to_dict(), overrides)

    def with_train_categories(self, dataset_categories: list[str]) -> RunConfig:
        """Under ``multiclass``, this config with ``data.train_categories`` resolved (unset: all of the dataset's)."""
        if self.data.setting == "single" or self.data.train_categories is not None:
            return self
        return self.updated({"data.train_categories": sorted(dataset_categories)})

    def without_noise_net(self) -> RunConfig:
        """This config with the noise net's sections and fields at their defaults: a scorer without one
        (knn) gets the same cell whatever noise net a grid sweeps."""
        default = config_from({"backbone": {"name": self.backbone.name}})  # pixels keeps its standardisation
        return self.updated({**{s: getattr(default, s).model_dump() for s in MODEL_SECTIONS},
                             **{key: default_of(key) for key in model_only_fields()}})

    def trained_on(self, category: str) -> list[str]:
        """The categories whose normal images train the noise net that scores ``category``."""
        if self.data.setting == "single":
            return [category]
        if self.data.train_categories is None:
            raise ValueError("multiclass train_categories unresolved: call with_train_categories first")
        return sorted(self.data.train_categories)

    def model_name(self, category: str) -> str:
        """The trained model's file name stem: the category, or ``multiclass``."""
        return category if self.data.setting == "single" else "multiclass"

    def holdout(self) -> float | None:
        """The fraction of each category's normals held out for score normalisation; None under
        transductive (test-minmax) normalisation, which trains on all of them."""
        return None if self.scoring.resolved().transductive else self.data.holdout_fraction


def sections() -> dict[str, type[Section]]:
    """Section name -> its model."""
    return {name: RunConfig.model_fields[name].annotation for name in SECTIONS}


@functools.cache
def model_only_fields() -> tuple[str, ...]:
    """Dotted keys outside the noise net's sections that mean something only for a scorer with a noise net."""
    return tuple(f"{name}.{key}" for name, model in sections().items() for key, f in model.model_fields.items()
                 if (f.json_schema_extra or {}).get("model_only"))


@functools.cache
def scoring_only_fields() -> tuple[str, ...]:
    """Dotted keys of the noise net's sections that decide how a trained net is scored, not how it is trained."""
    return tuple(f"{name}.{key}" for name in MODEL_SECTIONS for key, f in sections()[name].model_fields.items()
                 if (f.json_schema_extra or {}).get("scoring_only"))


@functools.cache
def noise_net_keys() -> tuple[str, ...]:
    """Dotted keys (and section prefixes) meaningful only for a scorer with a noise net."""
    return (*(f"{s}." for s in MODEL_SECTIONS), *model_only_fields())


def default_of(key: str) -> Any:
    """The default value of the dotted key ``key``."""
    node: Any = RunConfig()
    for part in key.split("."):
        node = getattr(node, part)
    return node.model_dump() if isinstance(node, BaseModel) else copy.deepcopy(node)


# the flat keys of adbench before config sections, for the error that names their new place
MOVED = {"dataset": "data.dataset", "data_root": "data.root", "dataset_args": "data.args",
         "setting": "data.setting", "train_categories": "data.train_categories",
         "holdout_fraction": "data.holdout_fraction", "pretrained": "backbone.pretrained",
         "weights": "backbone.weights", "backbone_precision": "backbone.precision",
         "image_size": "backbone.image_size", "image_mean": "backbone.image_mean", "image_std": "backbone.image_std",
         "noise_net_args": "noise_net.args", "precision": "noise_net.precision",
         "feature_norm": "noise_net.feature_norm", "scorers": "scoring.scorers", "protocol": "scoring.protocol",
         "image_score": "scoring.image_score", "smoothing_sigma": "scoring.smoothing_sigma",
         "pool_size": "scoring.pool_size", "normalisation": "scoring.normalisation", "use_ema": "scoring.use_ema",
         "eval_batch_size": "scoring.eval_batch_size", "save_maps": "scoring.save_maps",
         "fps_images": "scoring.fps_images", "name": "runtime.name", "device": "runtime.device"}


def model_at(loc: tuple) -> type[BaseModel] | None:
    """The section model that holds the field at ``loc`` (None below a field)."""
    model: Any = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def describe(error: dict[str, Any], where: str) -> str:
    """One validation error as a sentence: the dotted key, what is wrong, the value given."""
    key = ".".join(map(str, error["loc"]))
    if error["type"] == "extra_forbidden":
        model = model_at(error["loc"])
        valid = sorted(model.model_fields) if model else []
        name = str(error["loc"][-1])
        if len(error["loc"]) == 1 and name in MOVED:
            return f"{where}: {name!r} is now {MOVED[name]!r} (config keys are grouped in sections: {SECTIONS})"
        close = difflib.get_close_matches(name, valid, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown key {key!r}{guess}; valid keys here: {valid}"
    if error["type"] == "model_type" and len(error["loc"]) == 1 and error["loc"][0] in SECTIONS:
        section = error["loc"][0]
        fields = sorted(sections()[section].model_fields)
        hint = f" (a name goes in {section}.name)" if "name" in fields else ""
        return f"{where}: {section} is a section, a mapping of {fields}; got {error['input']!r}{hint}"
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    shown = f", got {error['input']!r}" if error["type"] != "value_error" else ""
    return f"{where}: {key}: {message}{shown}" if key else f"{where}: {message}"


def validated(data: Any, where: str = "config") -> RunConfig:
    """The run config of mapping ``data``; every invalid key or value is named (dotted key, value given)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {data!r}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(describe(e, where) for e in exc.errors())) from None


MAX_YAML_VALUES = 100_000  # values a YAML file may hold once its aliases are expanded


class DuplicateKey(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKey(f"key {key!r} is given twice, lines {seen[key]} and {line}: keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def expanded_size(data: Any, limit: int) -> int:
    """How many values ``data`` holds with every shared (aliased) part counted each time it appears, counted
    without expanding it; stops counting past ``limit``."""
    sizes: dict[int, int] = {}

    def size(obj: Any) -> int:
        if id(obj) in sizes:
            return sizes[id(obj)]
        children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
        total = 1
        for child in children:
            total = min(limit + 1, total + size(child))
        sizes[id(obj)] = total
        return total

    return size(data)


def read_yaml(path: str | Path, what: str = "Config") -> dict[str, Any]:
    """A YAML mapping read with the safe loader; one clear line for a missing, unreadable or malformed file, a
    key given twice, or aliases that expand past ``MAX_YAML_VALUES`` values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} not found.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} file {path} is a folder; give the YAML file in it.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text (UTF-8) file: byte {exc.start} cannot be read; give a YAML "
                          f"{what.lower()} file.") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {path} cannot be read: {exc.strerror}.") from None
    try:
        data = yaml.load(text, Loader=StrictLoader) or {}  # StrictLoader is a SafeLoader
    except DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if expanded_size(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise ConfigError(f"{path}: its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values; write "
                          "the values out, or use fewer nested aliases.")
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
    """``set_dotted(d, "train.epochs", 5)``; a mapping given for a section merges into it; ``scorer`` and
    ``scorer.<arg>`` address the cell's scorer (``scoring.scorers``)."""
    if key == "scorer":
        set_dotted(data, "scoring.scorers", [parse_scorer(value) if isinstance(value, str) else dict(value)])
        return
    if key.startswith("scorer."):
        arg = key.split(".", 1)[1]
        specs = (data.get("scoring") or {}).get("scorers") or default_scorers()
        set_dotted(data, "scoring.scorers", [{**spec, arg: value} for spec in specs])
        return
    *parents, last = key.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a mapping")
    if not parents and last in SECTIONS and isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}
    else:
        node[last] = value


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping ``data`` with dotted-key ``overrides`` set (``scorer`` before its
    arguments ``scorer.<arg>``)."""
    out = copy.deepcopy(data)
    for key in sorted(overrides, key=lambda k: k != "scorer"):
        set_dotted(out, key, copy.deepcopy(overrides[key]))
    return out


def config_from(base: dict[str, Any], overrides: dict[str, Any] | None = None, where: str = "config") -> RunConfig:
    """The run config of mapping ``base`` with dotted-key ``overrides``: the one way grids, studies and the
    CLI turn a spec into a RunConfig (unknown keys and wrong types are refused, naming ``where``)."""
    return validated(with_overrides(base, overrides or {}), where)


QUICK = {"train.epochs": 20, "train.warmup_epochs": 2}  # --quick on every command that trains: a smoke run


def quick(cfg: RunConfig) -> RunConfig:
    """``cfg`` as ``--quick`` runs it (``QUICK``: 20 epochs, 2 of warm-up), in a folder named ``<name>-quick``
    so it never resumes or passes for the full run."""
    name = cfg.runtime.name if cfg.runtime.name.endswith("-quick") else f"{cfg.runtime.name}-quick"
    return cfg.updated({**QUICK, "train.warmup_epochs": min(QUICK["train.warmup_epochs"], cfg.train.warmup_epochs),
                        "runtime.name": name})


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (safe loader) and apply dotted-key ``overrides``."""
    return config_from(read_yaml(path), overrides, str(path))


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
