import subprocess
import sys

import pytest
from typer.testing import CliRunner

from adbench.cli import app
from adbench.errors import ConfigError
from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS, Registry


def test_register_create_and_defaults():
    reg = Registry("things")

    @reg.register("box", "a box", size=3)
    def box(size, colour="red"):
        return (size, colour)

    assert reg.names() == ["box"]
    assert reg.create("box") == (3, "red")
    assert reg.create("box", size=5, colour="blue") == (5, "blue")
    assert reg.get("box").description == "a box"
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("box")(box)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ConfigError, match=r"Unknown scorers 'osd_irf_maen'.*Did you mean 'osd_irf_mean'"):
        SCORERS.create("osd_irf_maen")


def test_builtin_components_are_registered():
    assert {"mvtec", "mpdd", "btad", "visa", "elpv", "synthetic"} <= set(DATASETS.names())
    assert {"efficientnet_b4", "efficientnet_lite0"} <= set(BACKBONES.names())
    assert {"mlp", "mlp_tiny"} <= set(NOISE_NETS.names())
    assert {"osd_irf_mean", "osd_irf_noisy", "invad"} <= set(SCORERS.names())


def test_entry_point_plugins_are_loaded(monkeypatch):
    import adbench.registry as registry

    class FakeEntryPoint:
        def load(self):
            def plugin():
                SCORERS.register("plugin_scorer", "from a plugin")(lambda: "plugged")
            return plugin

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [FakeEntryPoint()] if group == "adbench.plugins" else [])
    monkeypatch.setattr(SCORERS, "_entries", dict(SCORERS._entries))
    assert SCORERS.create("plugin_scorer") == "plugged"


def test_cli_list_shows_every_component():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for reg in (DATASETS, BACKBONES, NOISE_NETS, SCORERS):
        for name in reg.names():
            assert name in result.output
    scorers_only = CliRunner().invoke(app, ["list", "scorers"])
    assert "invad" in scorers_only.output and "efficientnet_b4" not in scorers_only.output
    bad = CliRunner().invoke(app, ["list", "widgets"])
    assert bad.exit_code == 2 and "Unknown kind" in bad.output


def test_list_and_help_import_neither_torch_nor_timm():
    """`adbench list` and `--help` answer from the declarations in a fraction of a second; torch and timm
    alone take seconds to import. One kind's details (below) load them."""
    code = ("import sys; from typer.testing import CliRunner; from adbench.cli import app; "
            "runs = [CliRunner().invoke(app, a) for a in (['list'], ['--help'], ['run', '--help'], "
            "['grid', '--help'])]; "
            "assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]; "
            "print(sorted(m for m in ('torch', 'timm', 'optuna', 'matplotlib', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_cli_list_noise_nets_shows_parameter_counts_against_invad_table_8(monkeypatch):
    """Each count, the official code's (its never-called modules named) and Table 8's."""
    from adbench import cli

    monkeypatch.setattr(cli.out, "width", 300)
    result = CliRunner().invoke(app, ["list", "noise-nets"])
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    cells = {name: [c.strip() for c in line.split("│")[3:6]] for name, line in rows.items()}
    assert cells["dit_gigant"] == ["1223.21M", "1223.80M (+0.59M: x_embedder_linear, y_embedder, never called)",
                                   "1223M"]  # 16 x 2048, 8 heads
    assert cells["mlp_large"] == ["350.01M", "351.58M (+1.57M: cond_embed, never called)", "351M"]
    assert cells["unet"] == ["1433.71M", "1433.71M (the same)", "1433M"] and cells["mlp"] == ["9.09M", "", ""]


def test_cli_list_backbones_shows_weights_and_input_statistics(monkeypatch):
    from adbench import cli

    monkeypatch.setattr(cli.out, "width", 250)  # one line per backbone
    result = CliRunner().invoke(app, ["list", "backbones"])
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "timm:tf_efficientnet_b4.aa_in1k" in rows["efficientnet_b4"]
    assert "timm:vit_base_patch16_224.augreg_in1k" in rows["vit_base"]
    assert "[0.5, 0.5, 0.5] / [0.5, 0.5, 0.5]" in rows["vit_base"]
    assert "[0.485, 0.456, 0.406] / [0.229, 0.224, 0.225]" in rows["dino_vitb16"]
    assert "768 ch @ /16" in rows["pixels"] and rows["pixels"].split("│")[3].strip() == "none"


def test_every_component_meets_its_contract(tiny_synthetic):
    """``create`` returns the kind's contract (Backbone, NoiseNet, Scorer, Dataset): checked structurally on
    every registered name (networks built on the meta device: no memory, no init cost)."""
    import torch

    from adbench.backbones.base import Backbone
    from adbench.data.base import Dataset
    from adbench.noise_nets.base import NoiseNet
    from adbench.scorers.base import Scorer

    with torch.device("meta"):
        for name in [*(n for n in BACKBONES.names() if n != "timm:*"), "timm:resnet18"]:
            backbone = BACKBONES.create(name, pretrained=False, image_size=224)
            assert isinstance(backbone, Backbone) and backbone.grid(224) in (14, 16), name
        for name in NOISE_NETS.names():
            net = NOISE_NETS.create(name, in_channels=16)
            assert isinstance(net, NoiseNet) and net.in_channels == 16, name
    for name in SCORERS.names():
        assert isinstance(SCORERS.create(name), Scorer), name
    for name in ("mvtec", "mpdd", "btad"):
        dataset = DATASETS.create(name, root=tiny_synthetic)
        assert isinstance(dataset, Dataset) and dataset.name == name and dataset.categories()
    assert not isinstance(object(), Scorer)  # the check can fail


def test_argument_types_read_from_source_are_the_imported_factories_annotations():
    """Every declared component: the plain argument types read from its module's source (no import) are those
    typing.get_type_hints gives on the imported factory."""
    import inspect
    import typing

    from adbench.registry import REGISTRIES, TYPE_NAMES, Entry, simple_types

    checked = 0
    for registry in REGISTRIES.values():
        for entry in registry.entries():
            function = entry.factory.__init__ if isinstance(entry.factory, type) else entry.factory
            hints = typing.get_type_hints(function)
            imported = {p.name: hints[p.name] for p in inspect.signature(function).parameters.values()
                        if hints.get(p.name) in TYPE_NAMES and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
            assert simple_types(entry) == imported, entry.name
            assert simple_types(Entry(entry.name, entry.factory, "", {})) == imported
            checked += bool(imported)
    assert checked >= 10  # scorers, noise nets, datasets and backbones with typed arguments


def test_every_card_declares_what_its_component_can_do_and_nothing_else():
    from adbench.registry import DATASETS, SCORERS, Registry
    from adbench.scorers.base import FitsFeatures

    methods = {"validation_normals": "validation_normals", "defect_regions": "defect_regions",
               "private_tests": "private_tests", "validation_split": "valid"}
    for entry in DATASETS.entries():
        for ability, method in methods.items():
            assert entry.can(ability) == hasattr(entry.factory, method), (entry.name, ability)
    assert [e.name for e in DATASETS.entries() if e.can("mad_over_available")] == ["bmad"]
    for entry in SCORERS.entries():
        scorer = SCORERS.create(entry.name)
        assert entry.can("no_model") == isinstance(scorer, FitsFeatures), entry.name  # a bank instead of a net
        assert entry.can("reference") == entry.can("no_model") and isinstance(scorer.applicable, bool)
    assert not SCORERS.can("nonesuch", "reference")
    with pytest.raises(ValueError, match=r"unknown abilities \['flies'\]; a scorer may declare \['no_model', "
                                         r"'reference'\]"):
        Registry("scorers").declare("bird", lambda: None, "", card={"abilities": ["flies"]})
