"""The JSON Schema of a run config (``adbench schema``) accepts every shipped config and refuses what
loading refuses: unknown keys, values outside a key's choices, unregistered component names."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from adbench.cli import app
from adbench.config import read_yaml
from adbench.schema import config_schema

ROOT = Path(__file__).resolve().parents[1]


def shipped_configs() -> list[tuple[str, dict]]:
    """Every run config the repo ships: the demo preset and the base of every grid and study."""
    configs = [("adbench/presets/demo.yaml", read_yaml(ROOT / "adbench/presets/demo.yaml"))]
    for path in sorted((ROOT / "registry").rglob("*.yaml")):
        configs.append((str(path.relative_to(ROOT)), read_yaml(path).get("base") or {}))
    return configs


@pytest.fixture(scope="module")
def validator():
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_shipped_config_is_valid(validator):
    configs = shipped_configs()
    assert len(configs) >= 8
    for name, data in configs:
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], name


@pytest.mark.parametrize(("data", "why"), [
    ({"epochs": 3}, "Additional properties are not allowed"),
    ({"train": {"epoch": 3}}, "Additional properties are not allowed"),
    ({"data": {"setting": "multi"}}, "is not one of"),
    ({"train": {"noise_on": "gpu"}}, "is not one of"),
    ({"backbone": {"name": "resnet"}}, "is not valid"),
    ({"backbone": "resnet18"}, "is not of type 'object'"),
    ({"scoring": {"scorers": [{"name": "osd_irf"}]}}, "is not valid"),
    ({"scoring": {"scorers": [{"t": 3}]}}, "'name' is a required property"),
    ({"backbone": {"image_size": "big"}}, "is not of type 'integer'"),
    ({"backbone": {"image_size": 200}}, "is not a multiple of 16"),
])
def test_what_loading_refuses_the_schema_refuses(validator, data, why):
    assert any(why in e.message for e in validator.iter_errors(data)), data


def test_registered_names_optional_values_and_timm_models_pass(validator):
    good = {"backbone": {"name": "timm:resnet18"}, "noise_net": {"name": "dit_gigant"},
            "scoring": {"image_score": None, "normalisation": "train", "scorers": [{"name": "invad", "steps": 5}]},
            "train": {"noise_on": "device"}, "data": {"dataset": "mvtec"}}
    assert list(validator.iter_errors(good)) == []


def test_cli_writes_the_schema(tmp_path):
    out = tmp_path / "adbench-config.schema.json"
    result = CliRunner().invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(json.dumps(config_schema()))
    assert yaml.safe_load(out.read_text())["$defs"]["DataConfig"]["properties"]["setting"]["enum"] == [
        "multiclass", "single"]


def test_the_schema_carries_the_limits_loading_checks(validator):
    schema = config_schema()
    train = schema["$defs"]["TrainConfig"]["properties"]
    assert (train["epochs"]["minimum"], train["lr"]["exclusiveMinimum"], train["ema_decay"]["maximum"]) == (1, 0, 1)
    assert schema["$defs"]["DataConfig"]["properties"]["holdout_fraction"]["exclusiveMaximum"] == 1
    assert [e.message for e in validator.iter_errors({"train": {"epochs": 0}})] == ["0 is less than the minimum of 1"]
