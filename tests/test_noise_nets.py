import pytest
import torch

from adbench.config import TrainConfig
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import train_noise_net
from adbench.noise_nets import parameter_count
from adbench.noise_nets.embeddings import sincos_2d, sinusoidal_embedding
from adbench.registry import NOISE_NETS, SCORERS

TINY = ["mlp_tiny", "dit_tiny", "unet_tiny"]


def test_sinusoidal_embeddings_closed_form():
    emb = sinusoidal_embedding(torch.tensor([0, 7]), 8)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    assert torch.allclose(emb[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))
    pos = sincos_2d(8, 2, 3)
    assert pos.shape == (6, 8)
    assert torch.allclose(pos[4], torch.cat([sinusoidal_embedding(torch.tensor([1]), 4)[0],
                                             sinusoidal_embedding(torch.tensor([1]), 4)[0]]))


def test_paper_scale_parameter_counts():
    """InvAD's Table 8 lists DiT-base 155M, DiT-gigant 1223M and MLP 351M parameters."""
    assert parameter_count("dit_base") / 1e6 == pytest.approx(155, abs=1)
    assert parameter_count("dit_gigant") / 1e6 == pytest.approx(1223, abs=1)
    assert parameter_count("mlp_large") / 1e6 == pytest.approx(351, abs=2)
    # the official code's UNet layout (attention at ds 2/4/8, 64 channels per head) gives 1365M, 68M short of
    # the paper's 1433M (`adbench list noise-nets` shows the gap); pinned so a layout change is noticed
    assert parameter_count("unet") == 1_365_284_112


def test_dit_is_initialised_and_positioned_as_the_official_code():
    torch.manual_seed(0)
    dit = NOISE_NETS.create("dit_tiny", in_channels=8, grid=4)
    assert dit.pos.requires_grad and torch.equal(dit.pos.detach(), sincos_2d(64, 4, 4))  # trainable, sin-cos init
    assert dit.positions(4, 4) is dit.pos and dit.positions(2, 2).shape == (4, 64)  # other grids: resampled
    qkv = dit.blocks[0].qkv.weight  # 64 -> 192: xavier bound sqrt(6 / 256) = 0.153, PyTorch's default 1/8
    assert 0.125 < qkv.abs().max() <= (6 / 256) ** 0.5
    linears = [m for m in dit.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    assert dit.time.mlp[0].weight.abs().max() < 0.15 and dit.time.mlp[0].weight.std() < 0.025  # N(0, 0.02)
    zeroed = [b.ada[1] for b in dit.blocks] + [dit.final.ada[1], dit.final.linear]
    assert all(torch.count_nonzero(m.weight) == 0 for m in zeroed)
    assert dit.blocks[0].heads == 4 and NOISE_NETS.get("dit_gigant").defaults["heads"] == 8


@pytest.mark.parametrize("name", ["mlp", *TINY])
def test_shapes_zero_output_at_init_and_seeded_init(name):
    torch.manual_seed(0)
    net = NOISE_NETS.create(name, in_channels=16)
    x = torch.randn(2, 16, 8, 8)
    out = net(x, torch.tensor([0, 999]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # zero-initialised output layer
    torch.manual_seed(0)
    again = NOISE_NETS.create(name, in_channels=16)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True))


def test_dit_attends_across_positions_and_unet_checks_grid():
    torch.manual_seed(0)
    dit = NOISE_NETS.create("dit_tiny", in_channels=8)
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 8, 4, 4)
    moved = x.clone()
    moved[..., 0, 0] += 3
    t = torch.tensor([10])
    assert torch.count_nonzero((dit(x, t) - dit(moved, t)).abs().sum(dim=1)) == 16  # every token sees it
    with pytest.raises(ValueError, match="divisible by 2"):
        NOISE_NETS.create("unet_tiny", in_channels=8)(torch.randn(1, 8, 5, 5), t)


@pytest.mark.parametrize("name", TINY)
def test_tiny_train_then_score_with_every_scorer(name):
    g = torch.Generator().manual_seed(0)
    feats = 1.5 + 0.4 * torch.randn(24, 16, 8, 8, generator=g)
    torch.manual_seed(0)
    net = NOISE_NETS.create(name, in_channels=16)
    cfg = TrainConfig(epochs=30, batch_size=8, lr=2e-3, warmup_epochs=2, ema_warmup=True)  # 90 steps
    losses, ema = train_noise_net(net, feats, cfg, seed=0)
    assert sum(losses[-5:]) < sum(losses[:5])
    net.load_state_dict(ema)
    schedule = Schedule.linear()
    anomalous = feats[:2].clone()
    anomalous[..., 2:5, 2:5] += 4.0
    for scorer_name in SCORERS.names():
        scorer = SCORERS.create(scorer_name)
        if hasattr(scorer, "fit"):  # knn: a memory bank of the training features
            scorer.fit(feats[2:])
        with torch.no_grad():
            normal = scorer.score(net, schedule, feats[:2], torch.Generator().manual_seed(1)).feature_map
            odd = scorer.score(net, schedule, anomalous, torch.Generator().manual_seed(1)).feature_map
        assert normal.shape == (2, 8, 8) and torch.isfinite(normal).all()
        assert not torch.equal(normal, odd)
        if scorer_name == "osd_irf_mean":  # even a tiny trained net sees the anomaly on the mean path
            assert odd[:, 2:5, 2:5].mean() > normal[:, 2:5, 2:5].mean()


def test_engine_initialises_noise_nets_from_the_seed_alone():
    from adbench.config import RunConfig
    from adbench.engine.build import build_noise_net

    cfg = RunConfig(noise_net={"name": "mlp_tiny"}, seed=3)
    first = build_noise_net(cfg, 8)
    torch.rand(1000)  # global RNG consumed in between (a DataLoader, an earlier grid cell...)
    again = build_noise_net(cfg, 8)
    other = build_noise_net(RunConfig(noise_net={"name": "mlp_tiny"}, seed=4), 8)
    pairs = list(zip(first.state_dict().values(), again.state_dict().values(), other.state_dict().values(),
                     strict=True))
    assert all(torch.equal(a, b) for a, b, _ in pairs)
    assert not all(torch.equal(a, c) for a, _, c in pairs)
    state = torch.get_rng_state()
    build_noise_net(cfg, 8)
    assert torch.equal(torch.get_rng_state(), state)  # and leaves the global RNG where it was


def test_unet_attention_takes_a_fused_kernel():
    """q, k, v reach SDPA contiguous: a fused kernel (flash on CPU), not the math fallback a strided view gets."""
    from torch.nn.attention import SDPBackend

    from adbench.noise_nets.unet import AttentionBlock

    block = AttentionBlock(128, head_channels=64).eval()
    x = torch.randn(2, 128, 8, 8)
    q, k, v = block.queries_keys_values(x)
    assert q.shape == (2, 2, 64, 64) and all(t.is_contiguous() for t in (q, k, v))
    assert torch._fused_sdp_choice(q, k, v) != SDPBackend.MATH.value
    strided = q.transpose(-1, -2).contiguous().transpose(-1, -2)  # what the block passed before
    assert torch._fused_sdp_choice(strided, k, v) == SDPBackend.MATH.value
    # and the block computes softmax(q k^T / sqrt(d)) v, added to its input through the projection
    attn = torch.softmax(q @ k.transpose(-1, -2) / 64**0.5, dim=-1) @ v
    expected = x + block.proj(attn.transpose(-1, -2).reshape(2, 128, 8, 8))
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_mlp_residual_stream_stays_fp32_under_bf16_autocast():
    """As in DiT: the blocks compute in bf16, but their sum (the residual stream) is kept in fp32, so 16
    blocks of mlp_large do not accumulate bf16 rounding; the output is then within bf16 matmul error."""
    net = NOISE_NETS.create("mlp_tiny", in_channels=16)
    with torch.no_grad():
        for p in net.parameters():  # random everywhere (AdaLN-Zero starts as the identity)
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    streams = []
    for block in net.blocks:
        block.register_forward_hook(lambda module, args, out: streams.append(out.dtype))
    x, t = torch.randn(4, 16, 8, 8), torch.full((4,), 300)
    with torch.no_grad():
        ref = net(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, t)
    assert streams == [torch.float32] * 4  # two blocks, fp32 run and bf16 run
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 2e-2, f"bf16 output off by {rel:.3g} of the fp32 output's norm"
