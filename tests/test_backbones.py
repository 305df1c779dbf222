import hashlib

import pytest
import timm
import torch

from adbench.backbones.identity import shipped_lite0_weights, weights_info
from adbench.backbones.timm_backbone import TimmBackbone
from adbench.backbones.weights import load_state_dict, map_by_order
from adbench.config import RunConfig
from adbench.engine.keys import input_stats
from adbench.errors import ConfigError, WeightsError
from adbench.registry import BACKBONES


def test_shipped_lite0_weights_classify_a_real_photo():
    """The package's weights, mapped by order onto timm's efficientnet_lite0, see a cat in chelsea."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) is not installed")
    model = timm.create_model("efficientnet_lite0")
    model.load_state_dict(map_by_order(load_state_dict(shipped_lite0_weights()), model, "lite0"))
    model.eval()
    img = torch.tensor(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        top5 = model((img - mean) / std).topk(5).indices[0].tolist()
    assert {281, 282, 285} & set(top5[:2])  # tabby, tiger cat, Egyptian cat


def test_lite0_multiscale_features():
    backbone = BACKBONES.create("efficientnet_lite0")
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 256, 256))
    assert feats.shape == (2, 192, 16, 16) and backbone.out_channels == 192 and backbone.grid(256) == 16
    shipped = map_by_order(load_state_dict(shipped_lite0_weights()), timm.create_model("efficientnet_lite0"), "x")
    assert torch.equal(backbone.model.conv_stem.weight, shipped["conv_stem.weight"])


def test_b4_multiscale_shape_random_init():
    backbone = BACKBONES.create("efficientnet_b4", pretrained=False)
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 256, 256)).shape == (1, 272, 16, 16)


def test_local_weights_file_roundtrip(tmp_path):
    torch.manual_seed(1)
    source = TimmBackbone("efficientnet_lite0", pretrained=False)
    path = tmp_path / "w.pt"
    torch.save(source.model.state_dict(), path)
    loaded = BACKBONES.create("efficientnet_lite0", weights=str(path))
    assert torch.equal(loaded.model.conv_stem.weight, source.model.conv_stem.weight)
    from safetensors.torch import save_file

    save_file(source.model.state_dict(), tmp_path / "w.safetensors")
    loaded = BACKBONES.create("efficientnet_lite0", weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(loaded.model.blocks[1][0].conv_pw.weight, source.model.blocks[1][0].conv_pw.weight)


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        BACKBONES.create("efficientnet_lite0", weights=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"bad.pt is not a readable weights file \(damaged or truncated\?\)"):
        BACKBONES.create("efficientnet_lite0", weights=str(bad))
    torch.save({"x": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not the same network"):
        BACKBONES.create("efficientnet_lite0", weights=str(tmp_path / "other.pt"))


def test_offline_hub_failure_says_how_to_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start-up
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match=r"--weights FILE.*--no-pretrained"):
        BACKBONES.create("efficientnet_b4", pretrained=True)


@pytest.mark.parametrize("name", ["vit_base", "dino_vitb16"])
def test_vit_patch_token_maps(name):
    torch.manual_seed(0)
    backbone = BACKBONES.create(name, pretrained=False, image_size=224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = backbone(x)
        tokens = backbone.model.forward_features(x)
    assert feats.shape == (1, 768, 14, 14) and backbone.grid(224) == 14
    # position (row 2, col 5) is patch token 2 * 14 + 5 (after the class token)
    assert torch.equal(feats[0, :, 2, 5], tokens[0, 1 + 2 * 14 + 5])
    assert BACKBONES.create(name, pretrained=False, image_size=256)(torch.randn(1, 3, 256, 256)).shape[-1] == 16


def test_vit_local_weights_are_resampled_to_the_input_size(tmp_path):
    torch.manual_seed(0)
    at224 = BACKBONES.create("vit_base", pretrained=False, image_size=224)
    torch.save(at224.model.state_dict(), tmp_path / "vit.pt")
    at256 = BACKBONES.create("vit_base", weights=str(tmp_path / "vit.pt"), image_size=256)
    assert at256.model.pos_embed.shape[1] == 1 + 16 * 16
    assert torch.equal(at256.model.blocks[0].attn.qkv.weight, at224.model.blocks[0].attn.qkv.weight)


def test_any_timm_model_by_name():
    cnn = BACKBONES.create("timm:resnet18", pretrained=False)
    with torch.no_grad():
        assert cnn(torch.randn(1, 3, 128, 128)).shape == (1, 64 + 64 + 128 + 256, 8, 8)
    vit = BACKBONES.create("timm:vit_tiny_patch16_224", pretrained=False, image_size=64)
    assert vit(torch.randn(1, 3, 64, 64)).shape == (1, 192, 4, 4)
    with pytest.raises(ConfigError, match="timm has no model 'resnet_nope'"):
        BACKBONES.create("timm:resnet_nope")


@pytest.mark.parametrize(("backbone", "identity", "mean"), [
    ("efficientnet_b4", "timm:tf_efficientnet_b4.aa_in1k", (0.485, 0.456, 0.406)),  # not ns_jft_in1k
    ("vit_base", "timm:vit_base_patch16_224.augreg_in1k", (0.5, 0.5, 0.5)),  # ImageNet-1k, its own statistics
    ("dino_vitb16", "timm:vit_base_patch16_224.dino", (0.485, 0.456, 0.406)),
    ("timm:resnet18", "timm:resnet18.a1_in1k", (0.485, 0.456, 0.406)),
])
def test_backbones_resolve_to_exact_weights_and_their_input_statistics(backbone, identity, mean):
    info = weights_info(backbone)
    assert (info.identity, info.mean) == (identity, mean)
    assert info.std == ((0.5, 0.5, 0.5) if mean == (0.5, 0.5, 0.5) else (0.229, 0.224, 0.225))
    assert weights_info(backbone, pretrained=False).identity == "random-init"


def test_weights_files_are_named_by_their_sha256(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"weights")
    expected = hashlib.sha256(b"weights").hexdigest()[:16]
    assert weights_info("efficientnet_b4", weights=str(path)).identity == f"file:w.pt sha256:{expected}"
    shipped = hashlib.sha256(shipped_lite0_weights().read_bytes()).hexdigest()[:16]
    assert weights_info("efficientnet_lite0").identity == f"file:efficientnet-lite0-57934424.pth sha256:{shipped}"
    assert weights_info("efficientnet_b4", weights=str(tmp_path / "gone.pt")).identity.endswith("(missing)")
    with pytest.raises(ConfigError, match="Invalid pretrained tag"):
        weights_info("timm:resnet18.no_such_tag")


def test_input_statistics_come_from_the_weights_unless_set():
    cfg = RunConfig(backbone={"name": "vit_base"})
    assert input_stats(cfg) == ((0.5,) * 3, (0.5,) * 3, "weights")
    imagenet = RunConfig(backbone={"name": "vit_base", "image_mean": [0.485, 0.456, 0.406],
                                   "image_std": [0.229, 0.224, 0.225]})
    assert input_stats(imagenet)[2] == "set, differs from the weights"
    assert input_stats(RunConfig(backbone={"name": "efficientnet_b4", "image_mean": [0.485, 0.456, 0.406]})) == (
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "set")


def test_an_unreachable_hub_fails_at_once_with_the_offline_options(monkeypatch, tmp_path):
    import socket

    import huggingface_hub.constants as hub

    from adbench.backbones import timm_backbone

    def refused(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)  # whatever the environment says
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    timm_backbone.hub_reachable.cache_clear()
    assert timm_backbone.hub_reachable() is False
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    timm_backbone.hub_reachable.cache_clear()
    assert timm_backbone.hub_reachable() is True  # the proxy decides
    monkeypatch.delenv("HTTPS_PROXY")
    timm_backbone.hub_reachable.cache_clear()
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match=r"hub cannot be reached from here and they are not in its cache\)"
                                           r".*--weights FILE.*--no-pretrained"):
        BACKBONES.create("vit_base", pretrained=True)
    assert hub.HF_HUB_OFFLINE is False  # switched off for the load only
    timm_backbone.hub_reachable.cache_clear()
