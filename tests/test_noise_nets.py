import math

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


def test_position_table_is_maes_sincos():
    """MAE's ``get_2d_sincos_pos_embed`` (the official DiT's), written out: token n = (row i, column j) in
    row-major order; channels [sin(j w_k), cos(j w_k), sin(i w_k), cos(i w_k)], w_k = 10000^(-k / (dim/4))."""
    dim, h, w = 8, 2, 3
    pos = sincos_2d(dim, h, w)
    assert pos.shape == (6, 8) and pos.dtype == torch.float32
    omega = [10000 ** (-k / 2) for k in range(2)]  # 1 and 0.01
    for n in range(h * w):
        i, j = divmod(n, w)
        expected = ([math.sin(j * o) for o in omega] + [math.cos(j * o) for o in omega]
                    + [math.sin(i * o) for o in omega] + [math.cos(i * o) for o in omega])
        assert pos[n].tolist() == pytest.approx(expected, abs=1e-7)
    assert pos[0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


W, C = 2048, 272  # width and feature channels of the papers' nets (EfficientNet-B4 features)


def linear(i: int, o: int) -> int:
    return i * o + o


def conv(i: int, o: int, k: int = 3) -> int:
    return i * o * k * k + o


# the official modules' parameters, by closed form (SkyShunsuke/InversionAD @0306aba, models/mlp.py, dit.py,
# unet.py, built as create_denising_model builds them at C = 272): adbench's module -> the official one
MLP_BLOCK = 2 * W + 2 * linear(W, W) + linear(W, 3 * W)  # affine LayerNorm, the MLP, the AdaLN modulation
OFFICIAL_MLP = {"input": linear(C, W), "time": linear(256, W) + linear(W, W), "blocks": 16 * MLP_BLOCK,
                "final": 2 * W + linear(W, C) + linear(W, 2 * W)}
MLP_UNUSED = linear(768, W)  # cond_embed: a class-condition projection the unconditional forward never calls


def dit_modules(width: int, depth: int, tokens: int) -> dict[str, int]:
    block = linear(width, 3 * width) + linear(width, width) + linear(width, 4 * width) + linear(4 * width, width) \
        + linear(width, 6 * width)
    return {"pos": tokens * width, "embed": linear(C, width), "time": linear(256, width) + linear(width, width),
            "blocks": depth * block, "final": linear(width, C) + linear(width, 2 * width)}


def dit_unused(width: int) -> int:
    return linear(C, width) + 15 * width  # x_embedder_linear and y_embedder (15 classes, no CFG token)


def unet_modules() -> dict[str, int]:
    t = 4 * 512

    def res(i: int, o: int) -> int:
        return 2 * i + conv(i, o) + linear(t, o) + 2 * o + conv(o, o) + (conv(i, o, 1) if i != o else 0)

    def attn(c: int) -> int:
        return 2 * c + linear(c, 3 * c) + linear(c, c)

    chans = [512 * m for m in (1, 2, 3, 4)]
    down, skips, ch = 0, [512], 512
    for level, c in enumerate(chans):
        for _ in range(2):
            down += res(ch, c) + (attn(c) if level else 0)
            ch = c
            skips.append(ch)
        if level < 3:
            down += conv(ch, ch)  # Downsample: a stride-2 3x3 conv
            skips.append(ch)
    up = 0
    for level, c in reversed(list(enumerate(chans))):
        for i in range(3):
            up += res(ch + skips.pop(), c) + (attn(c) if level else 0)
            ch = c
            if level and i == 2:
                up += conv(ch, ch)  # Upsample(ch, conv_resample=True): nearest, then a 3x3 conv
    return {"time": linear(512, t) + linear(t, t), "stem": conv(C, 512), "down": down,
            "mid": 2 * res(2048, 2048) + attn(2048), "up": up, "out": 2 * 512 + conv(512, C)}


def module_counts(name: str, **kwargs) -> dict[str, int]:
    with torch.device("meta"):
        net = NOISE_NETS.create(name, in_channels=C, **kwargs)
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in net.named_children()}
    return {**counts, **{k: p.numel() for k, p in net.named_parameters(recurse=False)}}


def test_paper_scale_parameter_counts_are_the_official_modules():
    """Module by module as the official code's, against closed forms; the official totals (InvAD Table 8:
    MLP 351M, UNet 1433M, DiT-base 155M, DiT-gigant 1223M) hold the modules their unconditional forward never
    calls on top (measured on the official code: 351,584,528, 1,433,708,304, 155,645,200, 1,223,797,008)."""
    assert module_counts("mlp_large") == OFFICIAL_MLP
    assert parameter_count("mlp_large") + MLP_UNUSED == 351_584_528
    assert module_counts("unet") == unet_modules()
    assert parameter_count("unet") == 1_433_708_304  # the upsampling convolutions included: all of it
    for name, width, depth, total in (("dit_base", 1024, 8, 155_645_200), ("dit_gigant", 2048, 16, 1_223_797_008)):
        assert module_counts(name) == dit_modules(width, depth, 256)
        assert parameter_count(name) + dit_unused(width) == total
    # a 14 x 14 token grid (ViT/DINO at 224 px): the official table is 196 positions
    assert module_counts("dit_gigant", grid=14) == dit_modules(2048, 16, 196)
    assert parameter_count("dit_gigant", grid=14) + dit_unused(2048) == 1_223_674_128
    # what `adbench list noise-nets` names as the official modules' unused parameters
    assert {e.name: e.unused_official[1] for e in NOISE_NETS.entries() if e.unused_official} == {
        "mlp_large": MLP_UNUSED, "dit_base": dit_unused(1024), "dit_gigant": dit_unused(2048)}


def test_mlp_is_built_and_initialised_as_the_official_code():
    """Affine LayerNorms (gain 1, bias 0, trainable) in every block and the final layer, xavier-uniform weights
    with zero biases, an N(0, 0.02) timestep MLP, zero modulations and output."""
    torch.manual_seed(0)
    net = NOISE_NETS.create("mlp", in_channels=16)  # width 512, depth 6
    norms = [b.norm for b in net.blocks] + [net.final.norm]
    assert all(n.weight.requires_grad and torch.equal(n.weight, torch.ones(512)) and n.bias.abs().sum() == 0
               for n in norms)
    bound = (6 / (512 + 512)) ** 0.5  # xavier-uniform of a 512 x 512 layer; PyTorch's default would be 1/sqrt(512)
    w = net.blocks[0].mlp[0].weight
    assert bound * 0.99 < w.abs().max() <= bound and w.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    assert net.time.mlp[2].weight.std().item() == pytest.approx(0.02, rel=0.02)
    zeroed = [b.ada[1] for b in net.blocks] + [net.final.ada[1], net.final.linear]
    assert all(torch.count_nonzero(m.weight) == 0 for m in zeroed)


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


def test_engine_builds_the_dit_for_the_backbones_token_grid():
    """The position table is built for the grid the features have (14 x 14 at 224 px), not resampled from
    16 x 16; nets without a grid (MLP, UNet) are built as before."""
    from adbench.config import RunConfig
    from adbench.engine.build import build_noise_net

    dit = build_noise_net(RunConfig(noise_net={"name": "dit_tiny"}), 8, grid=14)
    assert dit.grid == (14, 14) and torch.equal(dit.pos.detach(), sincos_2d(64, 14, 14))
    assert build_noise_net(RunConfig(noise_net={"name": "dit_tiny", "args": {"grid": 8}}), 8, grid=14).grid == (8, 8)
    assert build_noise_net(RunConfig(noise_net={"name": "mlp_tiny"}), 8, grid=14).in_channels == 8


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
