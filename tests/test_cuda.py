"""The CUDA paths on a real GPU: same numbers as the CPU within stated tolerances, fused kernels, exact resume.

Skipped without CUDA (CI, laptops); `benchmarks/gpu_check.sh` runs them on a GPU machine.
"""

import pytest
import torch

from adbench.config import RunConfig, TrainConfig
from adbench.device import autocast, precision, seed_everything
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import train_noise_net
from adbench.engine.build import build_noise_net, build_scorer
from adbench.engine.context import Context
from adbench.noise_nets.unet import AttentionBlock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def random_net(name: str, channels: int, device: torch.device) -> torch.nn.Module:
    """Every weight random (zero-initialised output layers would hide differences), the same on each device."""
    model = build_noise_net(RunConfig(noise_net={"name": name}), channels)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.to(device).eval()


@pytest.mark.parametrize("name", ["osd_irf_mean", "osd_irf_noisy", "invad", "reconstruction", "knn"])
@torch.no_grad()
def test_a_seed_scores_the_same_on_cpu_and_cuda(name):
    """Noise comes from the host generator: in fp32 the maps agree to float rounding on both devices."""
    feats = torch.randn(4, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = []
    for device in (CPU, CUDA):
        scorer = build_scorer({"name": name})
        if name == "knn":
            scorer.fit(torch.randn(40, 16, 8, 8, generator=torch.Generator().manual_seed(2)),
                       torch.Generator().manual_seed(3), device)
        out = scorer.score(random_net("mlp_tiny", 16, device), Schedule.linear(1000), feats.to(device),
                           torch.Generator().manual_seed(0))
        maps.append(out.feature_map.float().cpu())
    torch.testing.assert_close(maps[1], maps[0], rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_bf16_noise_net_stays_near_fp32():
    """The default bf16 autocast against fp32 on the same GPU: DiT and MLP outputs within 2% (RMS)."""
    x, t = torch.randn(8, 64, 16, 16, device=CUDA), torch.full((8,), 500, device=CUDA)
    for name in ("mlp_tiny", "dit_tiny"):
        net = random_net(name, 64, CUDA)
        ref = net(x, t).float()
        with autocast(CUDA):
            low = net(x, t).float()
        assert ((low - ref).norm() / ref.norm()).item() < 2e-2, name


def test_bf16_where_the_gpu_has_it():
    assert precision(CUDA) == ("bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp32")


@torch.no_grad()
def test_unet_attention_runs_a_fused_kernel_on_cuda():
    from torch.nn.attention import SDPBackend

    block = AttentionBlock(256).to(CUDA).eval()
    with autocast(CUDA):
        q, k, v = block.queries_keys_values(torch.randn(4, 256, 16, 16, device=CUDA))
        assert torch._fused_sdp_choice(q, k, v) != SDPBackend.MATH.value


def test_training_on_cuda_resumes_exactly(tmp_path):
    """With ``noise_on: device`` timesteps and noise come from a CUDA generator; its state is checkpointed and
    training resumes exactly."""
    seed_everything(0, deterministic=True)
    try:
        feats = torch.randn(12, 16, 4, 4, generator=torch.Generator().manual_seed(0))
        cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-3, warmup_epochs=1, checkpoint_every=5, noise_on="device")
        ref_losses, _ = train_noise_net(random_net("mlp_tiny", 16, CPU).train(), feats, cfg, seed=5, device=CUDA)
        dying = random_net("mlp_tiny", 16, CPU).train()
        forward, calls = dying.forward, []

        def dies_at_step_8(x, t):
            calls.append(1)
            if len(calls) == 8:
                raise KeyboardInterrupt
            return forward(x, t)

        dying.forward = dies_at_step_8
        with pytest.raises(KeyboardInterrupt):
            train_noise_net(dying, feats, cfg, seed=5, checkpoint=tmp_path / "m.ckpt", device=CUDA)
        state = torch.load(tmp_path / "m.ckpt", weights_only=True)
        assert (state["step"], state["generator_device"]) == (5, "cuda")
        losses, _ = train_noise_net(random_net("mlp_tiny", 16, CPU).train(), feats, cfg, seed=5,
                                    checkpoint=tmp_path / "m.ckpt", device=CUDA)
        assert losses == ref_losses
    finally:
        seed_everything(0, deterministic=False)


def test_training_on_cuda_with_host_noise_trains_the_cpu_model():
    """The default ``noise_on: host``: the GPU draws the CPU's noise stream, so in fp32 both devices train the
    same model up to float rounding (losses and weights within 1e-3)."""
    feats = torch.randn(16, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, warmup_epochs=1)
    nets, losses = [], []
    for device in (CPU, CUDA):
        net = random_net("mlp_tiny", 16, CPU).train()
        losses.append(train_noise_net(net, feats, cfg, seed=5, device=device)[0])  # fp32: the default
        nets.append(net.cpu())
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-3, atol=1e-3)
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-3)


@torch.no_grad()
def test_backbone_features_on_cuda_match_the_cpu(tiny_synthetic, tmp_path):
    """The fp32 backbone on CUDA (cuDNN convolutions in TF32, PyTorch's default) against the CPU's features
    of the same images: within 1% (relative RMS)."""
    feats = {}
    for device in ("cpu", "cuda"):
        cfg = RunConfig(data={"dataset": "mvtec", "root": str(tiny_synthetic)},
                        backbone={"name": "efficientnet_lite0", "image_size": 64}, runtime={"device": device})
        ctx = Context.create(cfg, tmp_path / device, tmp_path / device / "cache")
        feats[device] = ctx.features(ctx.dataset.test("washer"), "test")
    err = (feats["cuda"] - feats["cpu"]).norm() / feats["cpu"].norm()
    assert err.item() < 1e-2
