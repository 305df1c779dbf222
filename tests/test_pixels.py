"""The pixels backbone (InvAD Table 6, A2): space-to-depth, its channel order, no weights, and the
per-channel standardisation by statistics of the training normals only."""

import numpy as np
import pytest
import torch
from PIL import Image

from adbench.backbones.identity import weights_info
from adbench.backbones.pixels import Pixels
from adbench.config import config_from
from adbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from adbench.engine.context import Context, feature_normaliser
from adbench.engine.keys import cell_key
from adbench.errors import AdbenchError
from adbench.registry import BACKBONES


def space_to_depth_by_hand(images: np.ndarray, p: int) -> np.ndarray:
    """Channel c*p*p + i*p + j at grid position (y, x) = colour c of pixel (y*p + i, x*p + j)."""
    n, c, h, w = images.shape
    out = np.zeros((n, c * p * p, h // p, w // p), images.dtype)
    for ch in range(c):
        for i in range(p):
            for j in range(p):
                out[:, ch * p * p + i * p + j] = images[:, ch, i::p, j::p]
    return out


def test_space_to_depth_by_hand_and_back_exactly():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    backbone = Pixels(patch=2, image_size=4)
    feats = backbone(images)
    assert feats.shape == (2, 12, 2, 3)
    # the top-left 2 x 2 patch of image 0, written out: red (0, 1 / 6, 7), then green (+24), then blue (+48)
    assert feats[0, :, 0, 0].tolist() == [0, 1, 6, 7, 24, 25, 30, 31, 48, 49, 54, 55]
    assert np.array_equal(feats.numpy(), space_to_depth_by_hand(images.numpy(), 2))
    assert torch.equal(backbone.to_images(feats), images)
    real = torch.rand(2, 3, 256, 256)
    built = BACKBONES.create("pixels")
    assert (built.out_channels, built.grid(256)) == (768, 16)
    assert built(real).shape == (2, 768, 16, 16) and torch.equal(built.to_images(built(real)), real)


def test_pixels_have_no_weights():
    assert weights_info("pixels").identity == weights_info("pixels", pretrained=False).identity == "none"
    with pytest.raises(AdbenchError, match="has no weights"):
        BACKBONES.create("pixels", weights="w.pt")
    with pytest.raises(AdbenchError, match="multiple of the patch"):
        Pixels(patch=16, image_size=40)


def test_pixels_default_to_standardised_features_and_keep_a_named_choice():
    cfg = config_from({"backbone": {"name": "pixels"}})
    assert cfg.noise_net.feature_norm == "standardize"
    named = config_from({}, {"backbone.name": "pixels", "noise_net.feature_norm": "none"})
    assert named.noise_net.feature_norm == "none"
    assert config_from({"backbone": {"name": "efficientnet_b4"}}).noise_net.feature_norm == "none"
    assert cfg.without_noise_net().noise_net.feature_norm == "standardize"  # knn sees the same features
    assert cell_key(cfg) != cell_key(cfg.updated({"noise_net.feature_norm": "none"}))


def test_standardisation_statistics_come_from_the_training_normals_only(tiny_synthetic, tmp_path):
    cfg = config_from({"data": {"dataset": "mvtec", "root": str(tiny_synthetic), "setting": "single",
                                "holdout_fraction": 0.2},
                       "backbone": {"name": "pixels", "image_size": 32}, "categories": ["washer"]})
    ctx = Context.create(cfg, tmp_path / "run", tmp_path / "cache")
    fit, held = ctx.split("washer")
    test = ctx.dataset.test("washer")
    assert len(fit) == 8 and len(held) == 2

    def by_hand(samples):  # decoded with PIL, ImageNet-normalised (pixels' input statistics), space-to-depth
        arrays = [np.asarray(Image.open(s.image_path).convert("RGB").resize((32, 32), Image.BILINEAR),
                             np.float32).transpose(2, 0, 1) / 255 for s in samples]
        images = (np.stack(arrays) - np.array(IMAGENET_MEAN, np.float32)[:, None, None]) \
            / np.array(IMAGENET_STD, np.float32)[:, None, None]
        return space_to_depth_by_hand(images.astype(np.float64), 16)

    train = by_hand(fit).transpose(1, 0, 2, 3).reshape(768, -1)
    mean, std = train.mean(axis=1), train.std(axis=1, ddof=1)
    expected = (by_hand(test) - mean[:, None, None]) / std[:, None, None]
    got = feature_normaliser(ctx, "washer")(ctx.features(test, "test"))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
    # the statistics of any other images (held-out normals, the test set) would give other features
    leaked = np.concatenate([by_hand(fit), by_hand(held), by_hand(test)]).transpose(1, 0, 2, 3).reshape(768, -1)
    assert np.abs(leaked.mean(axis=1) - mean).max() > 1e-2
