"""Keys that cannot go stale: every config field changes exactly the keys that depend on it.

Four keys decide what is reused: the feature-cache key (``feature_key``), the trained model's file
(``Context.model_path``: the training key), a result cell's key (the hash of its cell config) and
the shared context (dataset + loaded backbone). The table below says, field by field, which of them
must change; it is parametrised over every field of the config, so a field added later without an
entry here fails ``test_every_field_is_in_the_table``.
"""

import os
from pathlib import Path

import pytest

from adbench.config import RunConfig, config_from, sections
from adbench.data.base import Sample
from adbench.engine.build import cell_config
from adbench.engine.context import Context
from adbench.engine.keys import cell_key, context_key, feature_key, training_key

F, M, C, X = "features", "model", "cell", "context"


class Fields(dict):
    """Several fields changed together (one is valid only with the other)."""

INPUT = {F, M, C, X}  # what the images and the backbone are
TRAINING = {M, C}

# dotted key -> (a different value, the keys it must change)
CHANGES = {
    "runtime.name": ("other", set()),
    "runtime.device": ("cpu", {X}),
    "runtime.compile": (True, set()),  # the eager step's model to float rounding (test_diffusion.py)
    "runtime.metric_memory_mb": (1, set()),  # the streamed metric pass: the same values (test_streaming.py)
    "data.dataset": ("mvtec", {M, C, X}),
    "data.root": ("/data/elsewhere", {M, C, X}),
    "data.args": ({"n_train": 5}, {M, C, X}),
    "categories": (["weave", "washer"], set()),  # a cell is one category: the list is not part of it
    # one model per category (the data section keys the loaded context too: a reload is cheap)
    "data.setting": (Fields({"data.setting": "single", "data.train_categories": None}), {M, C, X}),
    "data.train_categories": (["washer"], {M, C, X}),  # the multiclass model's training set
    "data.holdout_fraction": (0.3, {M, C, X}),
    "data.held_out": ("validation", {M, C, X}),  # what the model trains on and what normalises its scores
    "backbone.image_size": (128, INPUT),
    "backbone.image_mean": ([0.5, 0.5, 0.5], INPUT),
    "backbone.image_std": ([0.5, 0.5, 0.5], INPUT),
    "backbone.name": ("efficientnet_b4", INPUT),
    "backbone.pretrained": (False, INPUT),
    "backbone.weights": ("elsewhere/weights.safetensors", INPUT),
    # applied when the backbone runs, not when it is loaded: the context need not change, but the backbone
    # section keys it, and keys hash sections (a reload is cheap; a stale key is not)
    "backbone.precision": ("bf16", INPUT),
    "noise_net.name": ("dit_tiny", TRAINING),
    "noise_net.args": ({"depth": 3}, TRAINING),
    "noise_net.precision": ("fp32", {C}),  # the noise net's autocast when scoring on CUDA: the same trained net
    "noise_net.feature_norm": ("standardize", TRAINING),
    "train.epochs": (7, TRAINING),
    "train.batch_size": (3, TRAINING),
    "train.lr": (0.5, TRAINING),
    "train.lr_start": (1e-5, TRAINING),
    "train.lr_end": (1e-5, TRAINING),
    "train.ema_warmup": (True, TRAINING),
    "train.noise_on": ("device", TRAINING),
    "train.warmup_epochs": (2, TRAINING),
    "train.weight_decay": (0.1, TRAINING),
    "train.grad_clip": (0.5, TRAINING),
    "train.timesteps": (500, TRAINING),
    "train.checkpoint_every": (7, TRAINING),
    "train.ema_decay": (0.9, TRAINING),
    "train.precision": ("bf16", TRAINING),  # the training step's autocast on CUDA
    "train.drop_last": (False, TRAINING),
    "train.strategy": (Fields({"train.strategy": "fsdp", "runtime.nproc_per_node": 1}), TRAINING),
    "train.activation_checkpointing": (True, TRAINING),
    # where a net trains: the same net up to float rounding on any number of processes (test_distributed.py)
    "runtime.nproc_per_node": (2, set()),
    "runtime.nnodes": (Fields({"runtime.nnodes": 2, "runtime.nproc_per_node": 1, "runtime.rdzv_endpoint": "h:1"}),
                       set()),
    "runtime.rdzv_endpoint": ("h:1", set()),
    "scoring.use_ema": (True, {C}),
    "scoring.scorers": ([{"name": "invad"}], {C}),
    "scoring.protocol": ("ader", {C}),
    "scoring.image_score": ("nll", {C}),
    "scoring.smoothing_sigma": (2.0, {C}),
    "scoring.pool_size": (3, {C}),
    "scoring.normalisation": ("test-minmax", {M, C}),  # transductive: nothing held out, the model trains on all
    "scoring.eval_batch_size": (5, {C}),
    "scoring.save_maps": (0, {C}),
    "scoring.keep_maps": (True, {C}),
    "scoring.aupro_impl": ("mvtec3d", {C}),  # a cell run without it has no maps for the bootstrap
    "scoring.fps_images": (3, {C}),
    "scoring.pro_limit": (0.05, {C}),
    "scoring.extra_metrics": (["pixel_aupimo"], {C}),
    "scoring.submission": (True, {C}),  # a cell run without it has not written the private test sets
    "seed": (1, TRAINING),
    "deterministic": (True, TRAINING),  # deterministic kernels change a CUDA model's rounding too
}

BASE = {"data": {"dataset": "synthetic", "train_categories": ["washer", "weave"]},
        "backbone": {"name": "efficientnet_lite0"}, "noise_net": {"name": "mlp_tiny"},
        "categories": ["washer"], "scoring": {"scorers": [{"name": "osd_irf_mean"}]}, "train": {"epochs": 2}}


def config_fields() -> list[str]:
    """Every field of the run config as a dotted key (``train.epochs``)."""
    return [f"{name}.{key}" if name in sections() else name
            for name in RunConfig.model_fields
            for key in (sections()[name].model_fields if name in sections() else [None])]


def base_config() -> RunConfig:
    return config_from(BASE)


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(b"not decoded: only the file's identity is keyed" * (i + 1))
    return [Sample(p, None, 0) for p in paths]


def keys(cfg: RunConfig, samples: list[Sample], run_dir: Path, precision: str = "fp32") -> dict[str, str]:
    ctx = Context(cfg, run_dir, run_dir / "cache", None, None, None, None)
    return {F: feature_key(cfg, samples, precision), M: ctx.model_path("washer").name,
            C: cell_key(cell_config(cfg, "washer", cfg.scoring.scorers[0])), X: context_key(cfg)}


def changed(field: str, value, samples, run_dir) -> set[str]:
    cfg = base_config()
    before = keys(cfg, samples, run_dir)
    after = keys(cfg.updated(value if isinstance(value, Fields) else {field: value}), samples, run_dir)
    return {k for k in before if before[k] != after[k]}


def test_every_field_is_in_the_table():
    assert sorted(config_fields()) == sorted(CHANGES), "add the new field to CHANGES with the keys it must change"


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_field_changes_exactly_the_keys_that_depend_on_it(field, images, tmp_path):
    value, expected = CHANGES[field]
    assert changed(field, value, images, tmp_path) == expected


def test_features_follow_the_image_files_and_the_precision(images, tmp_path):
    cfg = base_config()
    first = feature_key(cfg, images, "fp32")
    assert feature_key(cfg, images, "bf16") != first
    assert feature_key(cfg, images[:1], "fp32") != first
    path = images[1].image_path
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: the same image
    assert feature_key(cfg, images, "fp32") == first
    kept = path.stat()
    path.write_bytes(path.read_bytes().upper())  # another image of the same size, its time set back
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert feature_key(cfg, images, "fp32") != first  # known by its content, not its path, size and time


def test_a_replaced_weights_file_changes_features_and_models(images, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"first weights")
    cfg = base_config().updated({"backbone.weights": str(weights)})
    before = keys(cfg, images, tmp_path)
    weights.write_bytes(b"second, longer weights")  # same path, new file
    after = keys(cfg, images, tmp_path)
    assert {k for k in before if before[k] != after[k]} == {F, M, C, X}  # cells and the loaded backbone too


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "efficientnet_b4", "timm:resnet18"])
def test_the_seed_keys_a_random_init_backbones_features(backbone, images, tmp_path):
    """``pretrained: false``: the seed draws the backbone, so it changes the features and the loaded context
    too, not only the model and cells as with pretrained weights (the table above)."""
    cfg = base_config().updated({"backbone.name": backbone, "backbone.pretrained": False})
    before, after = keys(cfg, images, tmp_path), keys(cfg.updated({"seed": 1}), images, tmp_path)
    assert {k for k in before if before[k] != after[k]} == INPUT


def test_keys_ignore_mapping_order_and_path_spelling(images, tmp_path, monkeypatch):
    """The same configuration read from YAML in another key order, or with the weights file named by a
    relative instead of an absolute path, is the same cell, model and feature set."""
    a = base_config().updated({"data.args": {"n_train": 5, "n_good": 2}, "noise_net.args": {"depth": 2}})
    b = base_config().updated({"data.args": {"n_good": 2, "n_train": 5}, "noise_net.args": {"depth": 2}})
    assert keys(a, images, tmp_path) == keys(b, images, tmp_path)
    (tmp_path / "w.safetensors").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    relative = base_config().updated({"backbone.weights": "w.safetensors"})
    absolute = base_config().updated({"backbone.weights": str(tmp_path / "w.safetensors")})
    assert feature_key(relative, images, "fp32") == feature_key(absolute, images, "fp32")
    assert keys(relative, images, tmp_path)[M] == keys(absolute, images, tmp_path)[M]


def test_files_are_known_by_their_bytes_not_their_path_size_or_time(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for p, data in ((a, b"same bytes"), (b, b"same bytes"), (c, b"other byte")):  # c: the same size
        p.write_bytes(data)
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    cfg = base_config()
    key = {p: feature_key(cfg, [Sample(p, None, 0)], "fp32") for p in (a, b, c)}
    assert key[a] == key[b] != key[c]  # the same image wherever it lies: the same features


def test_keys_are_16_hex_digits_and_missing_files_stay_apart(images, tmp_path):
    cfg = base_config()
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in (feature_key(cfg, images, "fp32"), cell_key(cfg),
                                                        training_key(cfg, "washer"), context_key(cfg)))
    a, b = (cfg.updated({"backbone.weights": f"missing-{n}.safetensors"}) for n in "ab")
    assert feature_key(a, images, "fp32") != feature_key(b, images, "fp32")
