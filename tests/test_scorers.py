import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from adbench.diffusion.schedule import Schedule
from adbench.errors import AdbenchError, ConfigError
from adbench.registry import SCORERS
from adbench.scorers.scoring import (
    Normaliser,
    feature_map,
    from_latent,
    max_score_on_device,
    pixel_maps_on_device,
    upsample,
)

SCHEDULE = Schedule.linear()
ABAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))  # the same schedule in closed form


class Recorder(nn.Module):
    """eps(x, t) = w * x + c, recording the timesteps it is called with."""

    def __init__(self, w=0.5, c=0.25):
        super().__init__()
        self.w, self.c, self.calls = w, c, []

    def forward(self, x, t):
        self.calls.append(t.tolist())
        return self.w * x + self.c


def test_osd_irf_mean_path_by_hand():
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    model = Recorder()
    z = SCORERS.create("osd_irf_mean").latent(model, SCHEDULE, x0)
    a = SCHEDULE.abar[500].item()
    assert torch.allclose(z, 0.5 * math.sqrt(a) * x0 + 0.25)
    assert model.calls == [[500, 500]]
    z250 = SCORERS.create("osd_irf_mean", t=250).latent(model, SCHEDULE, x0)
    assert torch.allclose(z250, 0.5 * math.sqrt(SCHEDULE.abar[250].item()) * x0 + 0.25)


def test_osd_irf_noisy_state_is_seeded():
    x0 = torch.randn(2, 3, 4, 4)
    scorer = SCORERS.create("osd_irf_noisy")
    z1 = scorer.latent(Recorder(), SCHEDULE, x0, torch.Generator().manual_seed(7))
    z2 = scorer.latent(Recorder(), SCHEDULE, x0, torch.Generator().manual_seed(7))
    z3 = scorer.latent(Recorder(), SCHEDULE, x0, torch.Generator().manual_seed(8))
    assert torch.equal(z1, z2) and not torch.equal(z1, z3)
    a = SCHEDULE.abar[500].item()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(z1, 0.5 * (math.sqrt(a) * x0 + math.sqrt(1 - a) * eps) + 0.25, atol=1e-6)


def test_invad_with_constant_noise_prediction_has_closed_form():
    """With eps_theta = c everywhere every DDIM step keeps x0_pred fixed: the end is closed form."""
    x0 = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    model = Recorder(w=0.0, c=0.3)
    z = SCORERS.create("invad", subset="even").latent(model, SCHEDULE, x0)
    a0, a_end = SCHEDULE.abar[0].item(), SCHEDULE.abar[999].item()
    x0_pred = (x0 - math.sqrt(1 - a0) * 0.3) / math.sqrt(a0)
    assert torch.allclose(z, math.sqrt(a_end) * x0_pred + math.sqrt(1 - a_end) * 0.3)
    assert model.calls == [[0], [333], [666]]
    assert SCORERS.create("invad", steps=5).nfe == 5


def test_score_components_by_hand():
    z = torch.zeros(2, 2, 2, 2)
    z[0, 0, 0, 0], z[0, 1, 0, 0] = 3.0, 4.0  # norm 5 at one position, 0 elsewhere
    z[1] = 1.0  # norm sqrt(2) everywhere
    fm = feature_map(z)
    assert fm[0, 0, 0] == 5 and fm[0].sum() == 5 and torch.allclose(fm[1], torch.full((2, 2), math.sqrt(2)))
    comp = from_latent(z).components
    const = 0.5 * 8 * math.log(2 * math.pi)
    assert comp["nll"].tolist() == pytest.approx([12.5 + const, 4.0 + const])
    assert comp["diff"].tolist() == pytest.approx([5.0, 0.0])
    up = upsample(fm, 8)
    assert up.shape == (2, 8, 8) and torch.allclose(up[1], torch.full((8, 8), math.sqrt(2)))


def test_normaliser_train_and_test_minmax():
    held = {"nll": np.array([1.0, 3.0]), "diff": np.array([10.0, 10.0])}
    norm = Normaliser.fit(held, "train")
    assert norm.shift == {"nll": 2.0, "diff": 10.0}
    assert norm.scale["nll"] == pytest.approx(math.sqrt(2)) and norm.scale["diff"] == 1.0  # zero std -> 1
    test = {"nll": np.array([2.0, 2.0 + math.sqrt(2)]), "diff": np.array([10.0, 13.0])}
    assert norm.image_score(test, ["nll"]).tolist() == pytest.approx([0.0, 1.0])
    assert norm.image_score(test, ["diff"]).tolist() == pytest.approx([0.0, 3.0])
    assert norm.image_score(test, ["nll", "diff"]).tolist() == pytest.approx([0.0, 4.0])
    minmax = Normaliser.fit({"nll": np.array([2.0, 4.0, 6.0]), "diff": np.array([0.0, 1.0, 0.5])}, "test-minmax")
    assert minmax.image_score({"nll": np.array([2.0, 6.0]), "diff": np.array([1.0, 0.5])},
                              ["nll", "diff"]).tolist() == pytest.approx([1.0, 1.5])
    with pytest.raises(AdbenchError, match="at least 2"):
        Normaliser.fit({"nll": np.array([1.0])}, "train")
    with pytest.raises(ConfigError, match="normalisation must be one of"):
        Normaliser.fit(held, "z-score")


def test_post_processing_smoothing_and_pooled_max():
    fmap = torch.zeros(1, 4, 4)
    fmap[0, 1, 1] = 16.0
    raw = pixel_maps_on_device(fmap, 16, sigma=0).numpy()
    assert raw.shape == (1, 16, 16) and raw.max() > 0
    smooth = pixel_maps_on_device(fmap, 16, sigma=2).numpy()
    assert smooth.sum() == pytest.approx(raw.sum(), rel=0.05) and smooth.max() < raw.max()
    maps = np.zeros((2, 6, 6), np.float32)
    maps[0, 0, 0] = 9.0  # one hot pixel
    maps[1, 2:5, 2:5] = 2.0  # a 3x3 blob
    assert max_score_on_device(torch.from_numpy(maps), 1).tolist() == [9.0, 2.0]
    # pooling favours extended anomalies
    assert max_score_on_device(torch.from_numpy(maps), 3).tolist() == pytest.approx([1.0, 2.0])


def test_invad_code_subset_ends_in_predicted_noise():
    x0 = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    model = Recorder(w=0.0, c=0.3)
    scorer = SCORERS.create("invad", subset="code")
    assert [e for e, _, _ in scorer.plan(SCHEDULE)] == [0, 500, 999]
    assert scorer.plan(SCHEDULE)[-1][2] == 0.0
    z = scorer.latent(model, SCHEDULE, x0)
    assert torch.allclose(z, torch.full_like(z, 0.3))  # abar_next = 0: the last latent is eps itself
    assert model.calls == [[0], [500], [999]]
    with pytest.raises(ConfigError, match="subset"):
        SCORERS.create("invad", subset="odd")


def test_reconstruction_by_hand():
    scorer = SCORERS.create("reconstruction", ratio=0.4, steps=10)  # respaced 0, 111, ..., 999; index 4
    assert scorer.timesteps(SCHEDULE) == [444, 333, 222, 111, 0]
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    # eps_theta = constant c: DDIM keeps the x0 prediction of the first step, and the last step lands on it
    model = Recorder(w=0.0, c=0.2)
    gen = torch.Generator().manual_seed(3)
    out = scorer.score(model, SCHEDULE, x0, gen)
    a = SCHEDULE.abar[444].item()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
    x0_hat = (x_t - math.sqrt(1 - a) * 0.2) / math.sqrt(a)
    mse = (x0 - x0_hat).pow(2).mean(dim=1).float()
    assert torch.allclose(out.feature_map, mse, atol=1e-5)
    assert torch.allclose(out.components["mse"], mse.flatten(1).mean(dim=1), atol=1e-5)  # the paper's image score
    assert model.calls == [[444, 444], [333, 333], [222, 222], [111, 111]] and scorer.nfe == 4
    assert scorer.image_scores == ("mse", "max")
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="ratio must be in"):
            SCORERS.create("reconstruction", ratio=ratio)
    with pytest.raises(ConfigError, match="must be >= 2"):
        SCORERS.create("reconstruction", steps=1)


@pytest.mark.parametrize(("ratio", "steps", "index"), [
    (0.1, 3, 0), (0.2, 3, 0), (0.4, 3, 1), (0.6, 3, 1), (0.8, 3, 2),  # 0.3, 0.6: n/a; 1.2, 1.8, 2.4
    (0.1, 5, 0), (0.2, 5, 1), (0.6, 5, 3), (0.8, 5, 4),  # 0.6 x 5 is 2.9999... in floating point: still 3
    (0.1, 10, 1), (0.4, 100, 40), (0.8, 1000, 800),
])
def test_reconstruction_table4_mapping(ratio, steps, index):
    """(ratio, S) -> perturbation index floor(ratio S) on the S-step respaced schedule, denoised that many
    steps; index 0 is n/a (no step to take)."""
    scorer = SCORERS.create("reconstruction", ratio=ratio, steps=steps)
    assert (scorer.applicable, scorer.nfe) == (index >= 1, index)
    taus = [round(i * 999 / (steps - 1)) for i in range(steps)]
    if index:
        assert scorer.timesteps(SCHEDULE) == taus[index::-1]
    else:
        with pytest.raises(ConfigError, match="no perturbation step"):
            scorer.timesteps(SCHEDULE)


def test_respaced_timesteps_are_the_official_codes():
    from adbench.diffusion.schedule import respaced_timesteps

    assert respaced_timesteps(1000, 3) == [0, 500, 999] and respaced_timesteps(1000, 4) == [0, 333, 666, 999]
    assert respaced_timesteps(1000, 5) == [0, 250, 500, 749, 999]  # reference-code-notes.md
    assert respaced_timesteps(1000, 1000) == list(range(1000))
    assert respaced_timesteps(1000, 1) == [0]  # one section, taken at its start
    with pytest.raises(ValueError, match="steps must be in"):
        respaced_timesteps(1000, 0)
    # S = 21 is the first count where space_timesteps (a float stride added up, each sum rounded half to
    # even) differs from rounding i * 999 / 20: 499, not 500; values printed by the official function
    assert respaced_timesteps(1000, 21) == [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 499, 549, 599, 649, 699,
                                            749, 799, 849, 899, 949, 999]
    assert respaced_timesteps(1000, 23)[9:13] == [409, 454, 499, 545]
    # every S in 1..1000: the SHA-256 of repr([sorted(space_timesteps(1000, str(S))) for S in 1..1000]),
    # computed with SkyShunsuke/InversionAD @0306aba's src/diffusion/respace.py (283 of them differ from rounding)
    every = repr([respaced_timesteps(1000, s) for s in range(1, 1001)])
    assert hashlib.sha256(every.encode()).hexdigest() == \
        "c6f7236b85606b3d65b8629cb3e34cd96d02669cc0e0a09a4eba87e76a6e56a9"


@pytest.mark.parametrize("sigma", [0.5, 1.0, 4.0])
def test_gaussian_smoothing_equals_scipy(sigma):
    from scipy.ndimage import gaussian_filter

    from adbench.scorers.scoring import gaussian_smooth

    maps = torch.rand(3, 40, 37, dtype=torch.float64)
    expected = gaussian_filter(maps.numpy(), sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)
    assert np.allclose(gaussian_smooth(maps, sigma).numpy(), expected, atol=1e-12)
    radius = int(4 * sigma + 0.5)  # a map as small as the filter's radius is still reflected correctly
    small = torch.rand(2, radius + 3, radius, dtype=torch.float64)
    expected = gaussian_filter(small.numpy(), sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)
    assert np.allclose(gaussian_smooth(small, sigma).numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="exceeds the map size"):
        gaussian_smooth(small[:, :, :-1], sigma)


class StateRecorder(nn.Module):
    """eps(x, t) = tanh(x) / 2 + t / 2000: depends on its input, and records every input it gets."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x, t):
        self.inputs.append(x.clone())
        return torch.tanh(x) / 2 + t.to(x.dtype).view(-1, 1, 1, 1) / 2000


def eps_by_hand(x, t):
    return np.tanh(x) / 2 + t / 2000


def ddim_by_hand(x, eps, a_from, a_to):
    return math.sqrt(a_to) * (x - math.sqrt(1 - a_from) * eps) / math.sqrt(a_from) + math.sqrt(1 - a_to) * eps



@pytest.mark.parametrize(("subset", "steps"), [
    ("even", [(0, ABAR[0], ABAR[333]), (333, ABAR[333], ABAR[666]), (666, ABAR[666], ABAR[999])]),
    ("code", [(0, ABAR[0], ABAR[500]), (500, ABAR[500], ABAR[999]), (999, ABAR[999], 0.0)]),
])
def test_invad_feeds_the_current_state_at_every_step(subset, steps):
    x0 = np.random.default_rng(1).standard_normal((2, 3, 2, 2))
    model = StateRecorder()
    z = SCORERS.create("invad", steps=3, subset=subset).latent(model, SCHEDULE, torch.from_numpy(x0))
    x, states = x0, []
    for t, a_from, a_to in steps:
        states.append(x)
        x = ddim_by_hand(x, eps_by_hand(x, t), a_from, a_to)
    assert len(model.inputs) == 3
    for got, want in zip(model.inputs, states, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(z.numpy(), x, rtol=1e-10, atol=1e-12)


def test_reconstruction_feeds_the_current_state_at_every_step():
    x0 = np.random.default_rng(2).standard_normal((2, 3, 2, 2))
    model = StateRecorder()
    out = SCORERS.create("reconstruction", ratio=0.4, steps=10).score(
        model, SCHEDULE, torch.from_numpy(x0), torch.Generator().manual_seed(5))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    x = math.sqrt(ABAR[444]) * x0 + math.sqrt(1 - ABAR[444]) * noise
    states = []
    for t, t_next in ((444, 333), (333, 222), (222, 111), (111, 0)):
        states.append(x)
        x = ddim_by_hand(x, eps_by_hand(x, t), ABAR[t], ABAR[t_next] if t_next else 1.0)
    assert len(model.inputs) == 4
    for got, want in zip(model.inputs, states, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.feature_map.numpy(), ((x0 - x) ** 2).mean(axis=1), rtol=1e-6)


def test_defaults_are_the_papers_settings():
    """OSD-IRF: t = 500; InvAD: 3 steps on the official code's subset; reconstruction (InvAD Table 4): 40%, 10 steps."""
    mean, noisy = SCORERS.create("osd_irf_mean"), SCORERS.create("osd_irf_noisy")
    assert (mean.t, mean.noisy, mean.name) == (500, False, "osd_irf_mean")
    assert (noisy.t, noisy.noisy, noisy.name) == (500, True, "osd_irf_noisy")
    invad = SCORERS.create("invad")
    assert (invad.steps, invad.subset, invad.nfe) == (3, "code", 3)
    reconstruction = SCORERS.create("reconstruction")
    assert (reconstruction.ratio, reconstruction.steps, reconstruction.nfe) == (0.4, 10, 4)


def test_osd_irf_noise_has_the_features_dtype():
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    z = SCORERS.create("osd_irf_noisy", t=250).latent(Recorder(), SCHEDULE, x0, torch.Generator().manual_seed(2))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = SCHEDULE.abar[250].item()
    assert torch.allclose(z, 0.5 * (math.sqrt(a) * x0 + math.sqrt(1 - a) * eps) + 0.25, rtol=1e-12, atol=1e-12)


def test_small_smoothing_sigma_still_smooths():
    from scipy.ndimage import gaussian_filter

    fmap = torch.rand(2, 4, 4, dtype=torch.float64)
    up = upsample(fmap, 16).numpy()
    expected = gaussian_filter(up, sigma=(0, 0.5, 0.5), mode="reflect", truncate=4.0)
    assert np.allclose(pixel_maps_on_device(fmap, 16, sigma=0.5).numpy(), expected, atol=1e-6)


def test_pooled_max_with_a_2x2_window_by_hand():
    maps = np.array([[[0, 0, 0], [0, 4, 0], [0, 0, 8]]], np.float32)
    assert max_score_on_device(torch.from_numpy(maps), 2).tolist() == [3.0]  # window (4, 0, 0, 8) / 4


def test_scoring_settings_are_validated():
    from adbench.protocols import Scoring

    with pytest.raises(ConfigError, match="pool_size >= 1"):
        Scoring(pool_size=0)
    with pytest.raises(ConfigError, match="smoothing_sigma must be >= 0"):
        Scoring(smoothing_sigma=-1.0)


def test_invad_single_step_is_the_codes_one_evaluation_at_t0():
    """space_timesteps(1000, "1") = {0}: one evaluation at t = 0, straight to abar = 0 (Table 6 A2/A3)."""
    assert [e for e, _, _ in SCORERS.create("invad", steps=2, subset="code").plan(SCHEDULE)] == [0, 999]
    scorer = SCORERS.create("invad", steps=1)
    assert scorer.plan(SCHEDULE) == [(0, ABAR[0], 0.0)] and scorer.nfe == 1
    x0 = np.random.default_rng(3).standard_normal((2, 3, 2, 2))
    model = StateRecorder()
    z = scorer.latent(model, SCHEDULE, torch.from_numpy(x0))
    assert len(model.inputs) == 1 and torch.equal(model.inputs[0], torch.from_numpy(x0))
    np.testing.assert_allclose(z.numpy(), eps_by_hand(x0, 0), rtol=1e-12)  # sqrt(0) x0_pred + sqrt(1) eps


class Refuses(nn.Module):
    def forward(self, x, t):
        raise AssertionError("steps=0 must not call the noise net")


def test_invad_without_inversion_scores_the_features_under_the_prior():
    """steps=0 (Table 6 A1): no network call; the latent is x0. By hand on a 1 x 2 x 1 x 2 tensor:
    positions (3, 4) and (0, 1) have norms 5 and 1; NLL = (9 + 16 + 0 + 1) / 2 + 4/2 log 2 pi."""
    x0 = torch.tensor([[[[3.0, 0.0]], [[4.0, 1.0]]]], dtype=torch.float64)
    for subset in ("code", "even"):
        scorer = SCORERS.create("invad", steps=0, subset=subset)
        assert scorer.plan(SCHEDULE) == [] and scorer.nfe == 0
        out = scorer.score(Refuses(), SCHEDULE, x0)
        assert out.feature_map.tolist() == [[[5.0, 1.0]]]
        assert out.components["nll"].item() == pytest.approx(13 + 2 * math.log(2 * math.pi), rel=1e-7)  # fp32
        assert out.components["diff"].item() == pytest.approx(4.0, rel=1e-12)
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        SCORERS.create("invad", steps=-1)


