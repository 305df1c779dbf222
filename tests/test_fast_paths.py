"""The CUDA fast paths, checked on CPU.

No host syncs: the whole pipeline (backbone -> scorer -> maps and image scores) runs on the
``meta`` device, where any read of a tensor's value (``.item()``, ``float(t)``, ``bool(t)``,
``nonzero``) raises; a path that passes there never waits for the GPU inside the scoring loop.
bf16: every scorer runs under bf16 autocast (CPU's autocast, the same dtype rules as CUDA's) and
agrees with fp32. channels_last: CNN features are the same in either memory format.
"""

import pytest
import torch

from adbench.config import RunConfig
from adbench.diffusion.schedule import Schedule
from adbench.engine.build import build_noise_net
from adbench.registry import BACKBONES, SCORERS
from adbench.scorers.scoring import max_score_on_device, pixel_maps_on_device

SCORER_NAMES = sorted(SCORERS.names())


def test_meta_tensors_refuse_value_reads():
    x = torch.ones(2, device="meta")
    for read in (lambda: x.sum().item(), lambda: float(x[0]), lambda: bool(x.any()), lambda: x.nonzero()):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


@pytest.mark.parametrize("name", SCORER_NAMES)
@pytest.mark.parametrize("sigma, pool", [(0.0, 1), (4.0, 16)])
@torch.no_grad()
def test_pipeline_never_reads_device_values(name, sigma, pool):
    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"})
    backbone = BACKBONES.create(cfg.backbone.name, pretrained=False, image_size=64).eval().to("meta")
    model = build_noise_net(cfg, backbone.out_channels).eval().to("meta")
    images = torch.empty(3, 3, 64, 64, device="meta")
    scorer = SCORERS.create(name, **({"coreset": 1.0} if name == "knn" else {}))  # coreset: at fit, not scoring
    if hasattr(scorer, "fit"):
        scorer.fit(backbone(images))
    out = scorer.score(model, Schedule.linear(), backbone(images))
    scores = max_score_on_device(pixel_maps_on_device(out.feature_map, 64, sigma), pool)
    assert scores.shape == (3,) and scores.device.type == "meta"
    assert all(v.shape == (3,) and v.device.type == "meta" for v in out.components.values())


@pytest.mark.parametrize("name", SCORER_NAMES)
@torch.no_grad()
def test_scorers_under_bf16_autocast_match_fp32(name):
    torch.manual_seed(0)
    model = build_noise_net(RunConfig(noise_net={"name": "mlp_tiny"}), 8).eval()
    for p in model.parameters():  # leave the zero-initialised identity start: a net with real outputs
        p.add_(0.05 * torch.randn_like(p))
    x0 = torch.randn(4, 8, 6, 6)
    scorer, schedule = SCORERS.create(name), Schedule.linear()
    if hasattr(scorer, "fit"):
        scorer.fit(torch.randn(4, 8, 6, 6))

    def run(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = scorer.score(model, schedule, x0, torch.Generator().manual_seed(0))
        return out.feature_map, out.components

    (m32, c32), (m16, c16) = run(False), run(True)
    assert m16.dtype == torch.float32 and torch.isfinite(m16).all()
    assert torch.allclose(m16, m32, rtol=0.05, atol=0.05 * float(m32.abs().mean()))
    for k in c32:
        assert c16[k].dtype == torch.float32
        assert torch.allclose(c16[k], c32[k], rtol=0.05, atol=0.05 * float(c32[k].abs().mean()))


@torch.no_grad()
def test_channels_last_backbone_gives_the_same_features():
    backbone = BACKBONES.create("efficientnet_lite0", pretrained=False, image_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    reference = backbone(images)
    backbone.to(memory_format=torch.channels_last)
    fast = backbone(images.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-4)

