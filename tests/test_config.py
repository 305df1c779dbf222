import re

import pytest

from adbench.config import RunConfig, from_dict, load_config, parse_scorer
from adbench.errors import ConfigError
from adbench.scorers.scoring import Scoring


def test_yaml_config_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: mvtec\ndata_root: /data\ntrain:\n  epochs: 3\n  lr: 1\nscorers:\n  - name: invad\n")
    cfg = load_config(path, {"seed": 4})
    assert cfg.dataset == "mvtec" and cfg.train.epochs == 3 and cfg.train.lr == 1.0 and cfg.seed == 4
    assert cfg.scorers == [{"name": "invad"}]


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'epoch' \(did you mean 'epochs'\?\); valid keys: \["):
        from_dict(RunConfig, {"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'zzz'; valid keys"):  # nothing close: no guess
        from_dict(RunConfig, {"zzz": 3})
    with pytest.raises(ConfigError, match=r"config.image_size: expected int, got 'big'"):
        from_dict(RunConfig, {"image_size": "big"})
    with pytest.raises(ConfigError, match="expected bool"):
        from_dict(RunConfig, {"pretrained": "yes"})
    with pytest.raises(ConfigError, match=r"config.categories\[1\]: expected str, got 3"):
        from_dict(RunConfig, {"categories": ["a", 3]})
    with pytest.raises(ConfigError, match="image_std need 3 values"):
        from_dict(RunConfig, {"image_std": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="image_score"):
        from_dict(RunConfig, {"image_score": "mean"})
    with pytest.raises(ConfigError, match="protocol must be one of"):
        from_dict(RunConfig, {"protocol": "mvtec"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_hash_is_stable_and_ignores_name_and_device():
    a, b = RunConfig(), RunConfig(name="other", device="cpu")
    assert a.hash() == b.hash()
    assert a.hash() != RunConfig(seed=1).hash()
    single = RunConfig(setting="single")
    assert single.training_key("x") == RunConfig(setting="single", scorers=[{"name": "invad"}]).training_key("x")
    assert single.training_key("x") != single.training_key("y")


def test_multiclass_trains_one_model_on_the_category_set():
    cfg = RunConfig().with_train_categories(["b", "a"])
    assert cfg.setting == "multiclass" and cfg.trained_on("a") == cfg.trained_on("b") == ["a", "b"]
    assert cfg.training_key("a") == cfg.training_key("b") and cfg.model_name("a") == "multiclass"
    assert cfg.training_key("a") != RunConfig().with_train_categories(["a"]).training_key("a")
    assert RunConfig(train_categories=["a"]).with_train_categories(["a", "b"]).train_categories == ["a"]
    single = RunConfig(setting="single").with_train_categories(["a", "b"])
    assert single.train_categories is None and single.trained_on("a") == ["a"] and single.model_name("a") == "a"
    with pytest.raises(ValueError, match="unresolved"):
        RunConfig().training_key("a")
    with pytest.raises(ConfigError, match="applies to setting: multiclass"):
        RunConfig(setting="single", train_categories=["a"])
    with pytest.raises(ConfigError, match="setting must be one of"):
        RunConfig(setting="unified")


def test_parse_scorer():
    assert parse_scorer("invad") == {"name": "invad"}
    assert parse_scorer("osd_irf_mean:t=250") == {"name": "osd_irf_mean", "t": 250}
    with pytest.raises(ConfigError, match="key=value"):
        parse_scorer("invad:steps")


def test_protocols_and_overrides():
    assert RunConfig().scoring() == Scoring("nll+diff", 0.0, 1, "train") and RunConfig().protocol_label() == "invad"
    ader = RunConfig(protocol="ader")
    assert ader.scoring() == Scoring("max", 4.0, 16, "train", True, "bilinear") and ader.protocol_label() == "ader"
    custom = RunConfig(normalisation="test-minmax")
    assert custom.scoring().transductive and custom.protocol_label() == "invad+custom"
    assert RunConfig(image_score="nll+diff").protocol_label() == "invad"  # same as the preset


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"epochs": 0}}, "train.epochs must be >= 1, got 0"),
    ({"train": {"lr": 0.0}}, "train.lr must be > 0, got 0.0"),
    ({"train": {"ema_decay": 1.5}}, "train.ema_decay must be <= 1, got 1.5"),
    ({"holdout_fraction": 1.0}, "holdout_fraction must be < 1, got 1.0"),
    ({"holdout_fraction": 0.0}, "holdout_fraction must be > 0, got 0.0"),
    ({"eval_batch_size": 0}, "eval_batch_size must be >= 1, got 0"),
    ({"seed": -1}, "seed must be >= 0, got -1"),
    ({"image_size": 0}, "image_size must be >= 16, got 0"),
    ({"precision": "fp16"}, "precision must be one of ('fp32', 'bf16'), got 'fp16'"),
])
def test_values_outside_a_fields_limits_are_refused_by_name(data, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        from_dict(RunConfig, data)
    assert from_dict(RunConfig, {"image_score": None, "train": {"epochs": 1, "ema_decay": 1.0}}).train.epochs == 1
