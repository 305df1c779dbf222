import pytest
import timm
import torch

from adbench.backbones.efficientnet import MultiScaleEfficientNet
from adbench.backbones.weights import load_state_dict, map_by_order, shipped_lite0_weights
from adbench.errors import WeightsError
from adbench.registry import BACKBONES


def test_shipped_lite0_weights_classify_a_real_photo():
    """The package's weights, mapped by order onto timm's efficientnet_lite0, see a cat in chelsea."""
    data = pytest.importorskip("skimage.data")
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
    assert torch.equal(backbone.features.conv_stem.weight, shipped["conv_stem.weight"])


def test_b4_multiscale_shape_random_init():
    backbone = BACKBONES.create("efficientnet_b4", pretrained=False)
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 256, 256)).shape == (1, 272, 16, 16)


def test_local_weights_file_roundtrip(tmp_path):
    torch.manual_seed(1)
    source = MultiScaleEfficientNet("efficientnet_lite0", pretrained=False)
    path = tmp_path / "w.pt"
    torch.save(source.features.state_dict(), path)
    loaded = BACKBONES.create("efficientnet_lite0", weights=str(path))
    assert torch.equal(loaded.features.conv_stem.weight, source.features.conv_stem.weight)
    from safetensors.torch import save_file

    save_file(source.features.state_dict(), tmp_path / "w.safetensors")
    loaded = BACKBONES.create("efficientnet_lite0", weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(loaded.features.blocks[1][0].conv_pw.weight, source.features.blocks[1][0].conv_pw.weight)


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        BACKBONES.create("efficientnet_lite0", weights=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="Cannot load weights"):
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
