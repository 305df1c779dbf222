import re

import pytest
import yaml
from pydantic import ValidationError

from adbench.config import RunConfig, config_from, load_config, parse_scorer, validated, with_overrides
from adbench.engine.keys import cell_key, training_key
from adbench.errors import ConfigError
from adbench.protocols import Scoring


def test_yaml_config_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  dataset: mvtec\n  root: /data\ntrain:\n  epochs: 3\n  lr: 1\n"
                    "scoring:\n  scorers:\n    - name: invad\n")
    cfg = load_config(path, {"seed": 4, "train.batch_size": 5})
    assert cfg.data.dataset == "mvtec" and cfg.data.root == "/data" and cfg.seed == 4
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (3, 1.0, 5) and isinstance(cfg.train.lr, float)
    assert cfg.scoring.scorers == [{"name": "invad"}]


def test_sections_are_frozen():
    cfg = RunConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.epochs = 3
    assert cfg.updated({"train.epochs": 3}).train.epochs == 3 and cfg.train.epochs == 300


def test_a_mapping_for_a_section_merges_into_it_other_values_replace():
    base = {"train": {"batch_size": 32}, "noise_net": {"name": "mlp", "args": {"width": 8, "depth": 2}}}
    out = with_overrides(base, {"train": {"epochs": 5}, "noise_net.args": {"depth": 3}})
    assert out == {"train": {"batch_size": 32, "epochs": 5}, "noise_net": {"name": "mlp", "args": {"depth": 3}}}
    assert base["train"] == {"batch_size": 32}  # the base is not touched
    scored = with_overrides({}, {"scorer": "invad:steps=3", "scorer.subset": "even"})
    assert scored == {"scoring": {"scorers": [{"name": "invad", "steps": 3, "subset": "even"}]}}


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"epoch": 3}}, "config: unknown key 'train.epoch' (did you mean 'epochs'?); valid keys here: ["),
    ({"zzz": 3}, "config: unknown key 'zzz'; valid keys here: ['backbone', "),  # nothing close: no guess
    ({"backbone": {"image_size": "big"}}, "config: backbone.image_size: must be a valid integer, got 'big'"),
    ({"backbone": {"pretrained": "yes"}}, "config: backbone.pretrained: must be a valid boolean, got 'yes'"),
    ({"train": {"epochs": "3"}}, "config: train.epochs: must be a valid integer, got '3'"),  # no coercion
    ({"categories": ["a", 3]}, "config: categories.1: must be a valid string, got 3"),
    ({"backbone": {"image_std": [0.5, 0.5]}}, "config: backbone.image_std: List should have at least 3 items"),
    ({"scoring": {"image_score": "mean"}}, "config: scoring.image_score: must be 'nll+diff', 'nll', 'diff', 'max' or"),
    ({"scoring": {"protocol": "mvtec"}}, "config: scoring.protocol: must be 'invad' or 'ader', got 'mvtec'"),
    ({"scoring": {"scorers": [{"t": 3}]}}, "config: scoring.scorers: each scorer needs a 'name', got {'t': 3}"),
    ({"backbone": "resnet18"}, "config: backbone is a section, a mapping of ['image_mean', "),
    ({"image_size": 128}, "config: 'image_size' is now 'backbone.image_size' (config keys are grouped in sections"),
])
def test_unknown_keys_wrong_types_and_moved_keys_are_named(data, message):
    with pytest.raises(ConfigError) as info:
        validated(data)
    assert str(info.value).startswith(message), str(info.value)


def test_every_error_is_reported_at_once_with_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 0}\nseed: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [f"{path}: seed: must be greater than or equal to 0, got -1",
                                            f"{path}: train.epochs: must be greater than or equal to 1, got 0"]


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_cell_key_is_stable_and_ignores_the_runtime_section():
    a, b = RunConfig(), RunConfig(runtime={"name": "other", "device": "cpu"})
    assert cell_key(a) == cell_key(b)
    assert cell_key(a) != cell_key(RunConfig(seed=1))
    single = RunConfig(data={"setting": "single"})
    assert training_key(single, "x") == training_key(single.updated({"scoring.scorers": [{"name": "invad"}]}), "x")
    assert training_key(single, "x") != training_key(single, "y")


def test_multiclass_trains_one_model_on_the_category_set():
    cfg = RunConfig().with_train_categories(["b", "a"])
    assert cfg.data.setting == "multiclass" and cfg.trained_on("a") == cfg.trained_on("b") == ["a", "b"]
    assert training_key(cfg, "a") == training_key(cfg, "b") and cfg.model_name("a") == "multiclass"
    assert training_key(cfg, "a") != training_key(RunConfig().with_train_categories(["a"]), "a")
    fixed = RunConfig(data={"train_categories": ["a"]})
    assert fixed.with_train_categories(["a", "b"]).data.train_categories == ["a"]
    single = RunConfig(data={"setting": "single"}).with_train_categories(["a", "b"])
    assert single.data.train_categories is None and single.trained_on("a") == ["a"] and single.model_name("a") == "a"
    with pytest.raises(ValueError, match="unresolved"):
        training_key(RunConfig(), "a")
    with pytest.raises(ConfigError, match="applies to setting: multiclass"):
        validated({"data": {"setting": "single", "train_categories": ["a"]}})
    with pytest.raises(ConfigError, match=r"data.setting: must be 'multiclass' or 'single', got 'unified'"):
        validated({"data": {"setting": "unified"}})
    with pytest.raises(ConfigError, match="data.train_categories: List should have at least 1 item"):
        validated({"data": {"train_categories": []}})


def test_a_scorer_without_a_noise_net_gets_the_default_noise_net_sections():
    cfg = config_from({"noise_net": {"name": "dit_tiny", "args": {"depth": 2}}, "train": {"epochs": 3},
                       "scoring": {"use_ema": True, "eval_batch_size": 5}, "seed": 3})
    bare = cfg.without_noise_net()
    assert bare.noise_net == RunConfig().noise_net and bare.train == RunConfig().train
    assert bare.scoring.use_ema is False and bare.scoring.eval_batch_size == 5 and bare.seed == 3


def test_parse_scorer():
    assert parse_scorer("invad") == {"name": "invad"}
    assert parse_scorer("osd_irf_mean:t=250") == {"name": "osd_irf_mean", "t": 250}
    with pytest.raises(ConfigError, match="key=value"):
        parse_scorer("invad:steps")


def test_protocols_and_overrides():
    default = RunConfig().scoring
    assert default.resolved() == Scoring("nll+diff", 0.0, 1, "train") and default.protocol_label() == "invad"
    ader = RunConfig(scoring={"protocol": "ader"}).scoring
    assert ader.resolved() == Scoring("max", 4.0, 16, "train", True, "bilinear") and ader.protocol_label() == "ader"
    custom = RunConfig(scoring={"normalisation": "test-minmax"}).scoring
    assert custom.resolved().transductive and custom.protocol_label() == "invad+test-minmax"
    several = RunConfig(scoring={"protocol": "ader", "smoothing_sigma": 2, "pool_size": 16, "image_score": "nll"})
    assert several.scoring.protocol_label() == "ader+nll+sigma2"  # pool 16 is ader's own
    assert RunConfig(scoring={"image_score": "nll+diff"}).scoring.protocol_label() == "invad"  # same as the preset


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"epochs": 0}}, "train.epochs: must be greater than or equal to 1, got 0"),
    ({"train": {"lr": 0.0}}, "train.lr: must be greater than 0, got 0.0"),
    ({"train": {"ema_decay": 1.5}}, "train.ema_decay: must be less than or equal to 1, got 1.5"),
    ({"train": {"noise_on": "gpu"}}, "train.noise_on: must be 'host' or 'device', got 'gpu'"),
    ({"data": {"holdout_fraction": 1.0}}, "data.holdout_fraction: must be less than 1, got 1.0"),
    ({"data": {"holdout_fraction": 0.0}}, "data.holdout_fraction: must be greater than 0, got 0.0"),
    ({"scoring": {"eval_batch_size": 0}}, "scoring.eval_batch_size: must be greater than or equal to 1, got 0"),
    ({"seed": -1}, "seed: must be greater than or equal to 0, got -1"),
    ({"backbone": {"image_size": 0}}, "backbone.image_size: must be greater than or equal to 16, got 0"),
    ({"backbone": {"image_size": 200}}, "backbone.image_size: must be a multiple of 16, got 200"),
    ({"backbone": {"image_std": [0.5, 0.0, 0.5]}}, "backbone.image_std.1: must be greater than 0, got 0.0"),
    ({"noise_net": {"precision": "fp16"}}, "noise_net.precision: must be 'fp32' or 'bf16', got 'fp16'"),
    ({"train": {"lr": float("nan")}}, "train.lr: must be a finite number, got nan"),
    ({"train": {"lr": float("inf")}}, "train.lr: must be a finite number, got inf"),
    ({"scoring": {"scorers": []}}, "scoring.scorers: List should have at least 1 item after validation, not 0, got []"),
])
def test_values_outside_a_fields_limits_are_refused_by_name(data, message):
    with pytest.raises(ConfigError, match=f"^config: {re.escape(message)}$"):
        validated(data)
    assert validated({"scoring": {"image_score": None}, "train": {"epochs": 1, "ema_decay": 1.0}}).train.epochs == 1


def test_config_prints_the_resolved_config_of_a_run_a_grid_cell_and_a_study_trial(tiny_synthetic, tmp_path):
    import optuna
    from typer.testing import CliRunner

    from adbench.cli import app
    from adbench.engine.grid import GridRunner, load_grid
    from adbench.engine.study import config_for, load_study
    from tests.test_study import study_file

    runner = CliRunner()
    config = tmp_path / "c.yaml"
    config.write_text("noise_net: {name: mlp_tiny}\nscoring: {scorers: [{name: invad}]}\n")
    shown = runner.invoke(app, ["config", str(config), "--set", "train.lr=0.002"])
    assert shown.exit_code == 0, shown.output
    printed = validated(yaml.safe_load(shown.output), "printed")
    assert printed == load_config(config, {"train.lr": 0.002}) and "batch_size: 64" in shown.output  # defaults in
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"name": "g", "base": {"data": {"dataset": "mvtec", "root": str(tiny_synthetic)},
                                                          "categories": ["washer"], "noise_net": {"name": "mlp_tiny"}},
                                    "axes": {"scorer": ["osd_irf_mean", "invad"], "seed": [0, 1]}}))
    cells = GridRunner(load_grid(grid), tmp_path / "r", tmp_path / "cache").cells()
    listed = runner.invoke(app, ["config", "--grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == len(cells) == 4
    one = runner.invoke(app, ["config", "--grid", str(grid), "--cell", "3", "--results-dir", str(tmp_path / "r")])
    assert validated(yaml.safe_load(one.stdout), "printed") == cells[3].cfg
    study = study_file(tmp_path / "s.yaml", tiny_synthetic)
    spec = load_study(study)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    made = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize")
    params = {"scorer.t": 300, "train.lr": 0.003}
    made.add_trial(optuna.trial.create_trial(params=params, value=0.5, distributions={
        "scorer.t": optuna.distributions.IntDistribution(100, 900, step=100),
        "train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}))
    trial = runner.invoke(app, ["config", "--study", str(study), "--trial", "0", "--storage", storage])
    assert trial.exit_code == 0, trial.output
    assert validated(yaml.safe_load(trial.stdout), "printed") == config_for(spec, params)
    for args, message in ((["config"], "config needs one of CONFIG, --run"),
                          (["config", "--grid", str(grid), "--cell", "9"], "--cell 9: the grid has 4 cells"),
                          (["config", "--study", str(study), "--trial", "5", "--storage", storage],
                           "--trial 5: study 'tiny' has trials 0 to 0")):
        bad = runner.invoke(app, [*args, "--results-dir", str(tmp_path / "r")])
        assert bad.exit_code == 2 and message in bad.output, bad.output


@pytest.mark.parametrize(("overrides", "message"), [
    ({"scoring": {"pro_limit": 0}}, "scoring.pro_limit"), ({"scoring": {"pro_limit": 1.5}}, "scoring.pro_limit"),
    ({"scoring": {"aupro_impl": "steps"}}, "scoring.aupro_impl"),
    ({"data": {"held_out": "test"}}, "data.held_out"),
    ({"runtime": {"metric_memory_mb": 0}}, "runtime.metric_memory_mb"),
])
def test_the_metric_settings_refuse_values_outside_their_range_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from(overrides)


def test_pro_limit_one_and_known_optional_metrics_are_accepted_unknown_ones_refused_by_name():
    from adbench.engine.preflight import check_extra_metrics
    from adbench.metrics import optional_metrics

    assert config_from({"scoring": {"pro_limit": 1}}).scoring.pro_limit == 1.0
    check_extra_metrics([m.key for m in optional_metrics() if not m.key.startswith("pixel_auspro")], "mvtec")
    with pytest.raises(ConfigError, match=r"scoring.extra_metrics: unknown pixel_aupimo_x; the optional metrics are "
                                          r"pixel_aupimo, pixel_aupimo_exact, pixel_miou_max, pixel_segf1, "
                                          r"pixel_auspro_1pct"):
        check_extra_metrics(["pixel_aupimo", "pixel_aupimo_x"], "mvtec")
