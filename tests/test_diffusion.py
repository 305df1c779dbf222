import math

import pytest
import torch
from torch import nn

from adbench.config import TrainConfig, validated
from adbench.diffusion.schedule import Schedule, ddim_step, even_timesteps
from adbench.diffusion.train import lr_factor, train_noise_net, training_log
from adbench.errors import AdbenchError, ConfigError
from adbench.registry import NOISE_NETS


def test_linear_schedule_closed_form():
    s = Schedule.linear()
    assert s.T == 1000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.betas[500].item() == pytest.approx(1e-4 + 500 * (0.02 - 1e-4) / 999)
    for t in (0, 1, 250, 500, 999):
        expected = math.prod(1 - (1e-4 + k * (0.02 - 1e-4) / 999) for k in range(t + 1))
        assert s.abar[t].item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="outside"):
        s.check_timestep(1000)
    assert (s.check_timestep(0), s.check_timestep(999)) == (0, 999)
    with pytest.raises(ValueError, match="outside"):
        s.check_timestep(-1)


@pytest.mark.parametrize("seed", range(5))
def test_q_sample_matches_definition_to_float32_precision(seed):
    s = Schedule.linear()
    gen = torch.Generator().manual_seed(seed)
    x0, noise = torch.randn(3, 4, 2, 2, generator=gen), torch.randn(3, 4, 2, 2, generator=gen)
    t = torch.tensor([0, 500, 999])
    got = s.q_sample(x0, t, noise)
    for i in range(3):
        a = s.abar[t[i]].item()  # float64 reference
        want = a**0.5 * x0[i].double() + (1 - a) ** 0.5 * noise[i].double()
        assert torch.allclose(got[i].double(), want, rtol=1e-6, atol=1e-7)


def test_ddim_step_is_invertible_and_exact_for_true_noise():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    a, b = 0.9, 0.3
    x_a = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    x_b = ddim_step(x_a, eps, a, b)
    assert torch.allclose(x_b, b**0.5 * x0 + (1 - b) ** 0.5 * eps, atol=1e-6)
    assert torch.allclose(ddim_step(x_b, eps, b, a), x_a, atol=1e-6)


def test_even_timesteps():
    assert even_timesteps(1000, 3) == [333, 666, 999]
    assert even_timesteps(1000, 1) == [999]
    assert even_timesteps(1000, 5)[-1] == 999
    with pytest.raises(ValueError):
        even_timesteps(1000, 0)
    assert even_timesteps(10, 9) == list(range(1, 10))  # at most T - 1 steps: every timestep but 0
    with pytest.raises(ValueError, match="steps must be in"):
        even_timesteps(10, 10)


def test_lr_schedule_warmup_then_cosine():
    """Step s of the warm-up runs at s / warmup of the peak (the official scheduler: its first step at
    ``init_lr``, the peak reached at step ``warmup``), then the cosine."""
    assert lr_factor(0, 10, 110) == 0.0
    assert lr_factor(1, 10, 110) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110) == pytest.approx(0.9)
    assert lr_factor(10, 10, 110) == pytest.approx(1.0)
    assert lr_factor(0, 10, 110, start=0.02) == 0.02 and lr_factor(5, 10, 110, start=0.02) == pytest.approx(0.51)
    assert lr_factor(60, 10, 110) == pytest.approx(0.5)
    assert lr_factor(110, 10, 110) == pytest.approx(0.0)
    assert lr_factor(200, 10, 110) == pytest.approx(0.0)  # past the end it stays at 0
    assert lr_factor(2, 1, 2) == pytest.approx(0.0)  # one decay step: cosine from 1 to 0 in one step


def test_lr_schedule_of_the_official_code():
    """1e-6 -> 5e-5 linearly over the warm-up, cosine to 1e-6: checked through the optimizer's actual lr."""
    cfg = TrainConfig(epochs=6, batch_size=4, warmup_epochs=2)  # 8 images: 2 steps per epoch, 12 in all
    net = nn.Linear(1, 1)
    seen = []
    real_step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    torch.optim.AdamW.step = recording
    try:
        losses, _ = train_noise_net(_Flat(net), torch.zeros(8, 1, 1, 1), cfg, seed=0)
    finally:
        torch.optim.AdamW.step = real_step
    peak, low = 5e-5, 1e-6
    warm = [low + (peak - low) * s / 4 for s in range(4)]  # the official step_num / warmup_steps: 1e-6 first
    cosine = [low + (peak - low) * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)]
    assert seen == pytest.approx(warm + cosine, rel=1e-9)
    log = training_log(cfg, losses, 8)  # the train_log.csv beside each model: what the optimizer used
    assert [r["lr"] for r in log] == seen and [r["loss"] for r in log] == losses
    assert [r["epoch"] for r in log] == [s // 2 for s in range(12)] and {r["ema_decay"] for r in log} == {0.999}
    warmed = training_log(cfg.model_copy(update={"ema_warmup": True}), losses, 8)
    assert [r["ema_decay"] for r in warmed[:3]] == [1 / 10, 2 / 11, 3 / 12]
    assert cosine[0] == pytest.approx(peak) and (cfg.epochs, cfg.batch_size) == (6, 4)
    official = {"epochs": 300, "batch_size": 64, "lr": 5e-5, "lr_start": 1e-6, "lr_end": 1e-6, "warmup_epochs": 40,
                "weight_decay": 0.0, "grad_clip": 1.0, "timesteps": 1000, "checkpoint_every": 500, "ema_decay": 0.999,
                "ema_warmup": False, "noise_on": "host", "precision": "fp32", "drop_last": True, "strategy": "ddp",
                "activation_checkpointing": False}
    assert TrainConfig().model_dump() == official


def test_an_epoch_is_whole_batches_as_the_official_loaders():
    """drop_last=True (the official DataLoaders'): 3629 MVTec images at batch 64 are 56 steps an epoch, so
    the papers' 40 warm-up epochs are 2,240 steps; drop_last=false trains on the remainder too."""
    from adbench.diffusion.train import steps_per_epoch

    assert steps_per_epoch(3629, TrainConfig()) == 56 and steps_per_epoch(3629, TrainConfig(drop_last=False)) == 57
    assert TrainConfig().warmup_epochs * steps_per_epoch(3629, TrainConfig()) == 2240
    assert steps_per_epoch(64, TrainConfig()) == 1
    with pytest.raises(AdbenchError, match=r"^20 training images do not fill one batch of train.batch_size 64, .*"
                                           r"set train.batch_size to at most 20, or train.drop_last=false$"):
        steps_per_epoch(20, TrainConfig())
    seen = []
    feats = toy_features(10)  # batch 4: two whole batches an epoch, two images left out (each epoch others)
    net = _Flat(nn.Linear(16, 16))
    net.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    losses, _ = train_noise_net(net, feats, TrainConfig(epochs=3, batch_size=4, warmup_epochs=1), seed=0)
    assert seen == [4] * 6 and len(losses) == 6


class _Flat(nn.Module):
    """A noise net over 1 x 1 x 1 features: a linear map of the value, the timestep ignored."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x, t):
        return self.linear(x.flatten(1)).view_as(x)


def test_mlp_is_per_token():
    torch.manual_seed(0)
    net = NOISE_NETS.create("mlp_tiny", in_channels=6)
    for p in net.parameters():
        nn.init.normal_(p, std=0.2)
    x, t = torch.randn(1, 6, 3, 3), torch.tensor([100])
    moved = x.clone()
    moved[..., 0, 0] += 5  # change one position: only that output position changes
    diff = (net(x, t) - net(moved, t)).abs().sum(dim=1)[0]
    assert diff[0, 0] > 0 and torch.count_nonzero(diff) == 1


def toy_features(n=16):
    g = torch.Generator().manual_seed(1)
    return 2.0 + 0.3 * torch.randn(n, 4, 2, 2, generator=g)


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    net = NOISE_NETS.create("mlp_tiny", in_channels=4)
    losses, _ = train_noise_net(net, toy_features(), TrainConfig(epochs=60, batch_size=8, lr=3e-3, warmup_epochs=2),
                             seed=0)
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(("checkpoint_every", "resumed_at"), [(4, 8), (3, 9)])  # at an epoch's start, mid-epoch
def test_resume_from_checkpoint_is_bit_exact(tmp_path, checkpoint_every, resumed_at):
    cfg = TrainConfig(epochs=6, batch_size=3, lr=1e-3, warmup_epochs=1, checkpoint_every=checkpoint_every)
    feats = toy_features(10)  # 3 steps per epoch (the last image of each dropped), 18 in all

    def fresh():
        torch.manual_seed(0)
        return NOISE_NETS.create("mlp_tiny", in_channels=4)

    reference = fresh()
    ref_losses, ref_ema = train_noise_net(reference, feats, cfg, seed=5)

    interrupted = fresh()
    calls = {"n": 0}
    original = interrupted.forward

    def dying_forward(x, t):
        calls["n"] += 1
        if calls["n"] == 11:  # mid-epoch, after the last checkpoint
            raise Interrupt
        return original(x, t)

    interrupted.forward = dying_forward
    ckpt = tmp_path / "model.ckpt"
    with pytest.raises(Interrupt):
        train_noise_net(interrupted, feats, cfg, seed=5, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == resumed_at

    state = torch.load(ckpt, weights_only=True)
    assert state["generator_device"] == "cpu"  # the noise stream's device: a CUDA stream cannot go on here
    torch.save({**state, "generator_device": "cuda"}, tmp_path / "elsewhere.ckpt")
    with pytest.raises(AdbenchError, match="elsewhere.ckpt drew its noise on cuda, here it would be cpu: .* or delete"):
        train_noise_net(fresh(), feats, cfg, seed=5, checkpoint=tmp_path / "elsewhere.ckpt")

    resumed = fresh()
    losses, ema = train_noise_net(resumed, feats, cfg, seed=5, checkpoint=ckpt)
    assert losses == ref_losses
    assert all(torch.equal(ema[k], ref_ema[k]) for k in ema)
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.slow
def test_compiled_training_step_trains_the_eager_net():
    """``runtime.compile`` (torch.compile, inductor on CPU; 15-30 s of compiling) gives the eager step's losses,
    EMA and weights to float rounding: 9 steps of AdamW with a smaller last batch per epoch (a second shape).
    Inductor's fused kernels round differently from eager's, and AdamW's normalised update can turn a last-bit
    gradient difference into a visible step on a parameter whose gradient is near zero: measured on a 2-core
    Xeon with 1 and 2 threads, losses equal, weights within 4.6e-7, EMA within 7.5e-9. The bound, 1e-5, is
    1 % of one step at lr 1e-3."""
    from torch._dynamo.utils import counters

    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, warmup_epochs=1, drop_last=False)
    feats = toy_features(10)  # 3 steps an epoch: 4, 4, 2 images
    counters.clear()
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = NOISE_NETS.create("mlp_tiny", in_channels=4)
        losses, ema = train_noise_net(net, feats, cfg, seed=2, compile_model=compiled)
        runs.append((losses, ema, net.state_dict()))
    (eager_losses, eager_ema, eager_w), (losses, ema, weights) = runs
    assert len(losses) == 9 and losses == pytest.approx(eager_losses, rel=1e-5)
    for k in eager_w:
        torch.testing.assert_close(weights[k], eager_w[k], rtol=0, atol=1e-5)
        torch.testing.assert_close(ema[k], eager_ema[k], rtol=0, atol=1e-5)
    assert weights.keys() == eager_w.keys()  # the module's own names, not the compiled wrapper's
    # compiled: one graph per batch shape, each with its backward
    assert counters["stats"]["unique_graphs"] == 2 and counters["aot_autograd"]["ok"] == 2


def test_noise_on_the_device_is_the_host_stream_on_cpu():
    """On the CPU the device generator is the host generator: both settings train the same model; a setting
    outside host/device is refused by name."""
    feats = toy_features(8)
    runs = []
    for where in ("host", "device"):
        torch.manual_seed(0)
        runs.append(train_noise_net(NOISE_NETS.create("mlp_tiny", in_channels=4), feats,
                                    TrainConfig(epochs=2, batch_size=4, warmup_epochs=1, noise_on=where), seed=3)[0])
    assert runs[0] == runs[1]
    with pytest.raises(ConfigError, match=r"^config: train.noise_on: must be 'host' or 'device', got 'gpu'$"):
        validated({"train": {"noise_on": "gpu"}})


def test_ema_follows_the_closed_form():
    from adbench.diffusion.train import EMA

    net = nn.Linear(1, 1, bias=False)
    nn.init.constant_(net.weight, 0.0)
    for warmup in (False, True):
        nn.init.constant_(net.weight, 0.0)
        ema = EMA(net, decay=0.9, warmup=warmup)
        expected = 0.0
        for step in range(30):
            nn.init.constant_(net.weight, float(step + 1))
            ema.update(net, step)
            d = min(0.9, (1 + step) / (10 + step)) if warmup else 0.9
            expected = d * expected + (1 - d) * (step + 1)
        assert ema.state["weight"].item() == pytest.approx(expected)
