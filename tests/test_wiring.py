"""The wiring from a scorer's output to a published number, against hand computations.

A linear noise net eps(x, t) = 0.5 x + 0.25 (test_scorers' Recorder) makes every latent closed-form, so the image scores
(NLL, max - min of the map, their z-scores with held-out statistics), the pixel maps (bilinear
upsampling, Gaussian smoothing, pooled max) and the metrics of the result row are all computed
here independently in float64 numpy / scipy / scikit-learn and compared with the engine's.
"""

import dataclasses
import json
import math
import resource
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter
from sklearn.metrics import average_precision_score, roc_auc_score

from adbench.config import RunConfig, config_from
from adbench.data.base import Sample
from adbench.engine.context import Context, EvalSet, eval_set, holdout_size, split_train
from adbench.engine.keys import feature_key, training_key
from adbench.engine.scoring import cell_scores, score_cell
from adbench.engine.training import train_category
from adbench.errors import DataError
from adbench.metrics import metric_keys, pixel_metrics
from adbench.metrics.pro import aupro_mvtec3d
from adbench.registry import SCORERS
from adbench.scorers.scoring import upsample
from tests.test_metrics import brute_aupro, sklearn_f1max
from tests.test_scorers import ABAR, Recorder

W, B = 0.5, 0.25  # Recorder's eps(x, t) = W x + B


def latent_by_hand(x0: np.ndarray, t: int = 500, eps: np.ndarray | None = None) -> np.ndarray:
    x_t = math.sqrt(ABAR[t]) * x0 + (0 if eps is None else math.sqrt(1 - ABAR[t]) * eps)
    return W * x_t + B


def components_by_hand(z: np.ndarray) -> dict[str, np.ndarray]:
    fmap = np.sqrt((z**2).sum(axis=1))
    return {"nll": 0.5 * (z**2).sum(axis=(1, 2, 3)) + 0.5 * z[0].size * math.log(2 * math.pi),
            "diff": fmap.max(axis=(1, 2)) - fmap.min(axis=(1, 2)), "fmap": fmap}


def zscores(test: np.ndarray, held: np.ndarray) -> np.ndarray:
    return (test - held.mean()) / held.std(ddof=1)


def upsampled(fmap: np.ndarray, size: int, align_corners: bool = False) -> np.ndarray:
    """Separable linear interpolation with numpy: output pixel i samples source i (n - 1) / (size - 1)
    (align_corners) or (i + 0.5) n / size - 0.5, clamped at the edges."""
    n, i = fmap.shape[-1], np.arange(size)
    x = i * (n - 1) / (size - 1) if align_corners else (i + 0.5) * n / size - 0.5
    along_last = np.apply_along_axis(lambda v: np.interp(x, np.arange(n), v), -1, fmap)
    return np.apply_along_axis(lambda v: np.interp(x, np.arange(n), v), -2, along_last)


def pooled_max(maps: np.ndarray, k: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(maps, (k, k), axis=(1, 2)).mean(axis=(-1, -2)).max(axis=(1, 2))


def metrics_by_hand(scores, labels, maps, masks) -> dict[str, float]:
    y, m = masks.ravel(), maps.ravel()
    out = {"image_auroc": roc_auc_score(labels, scores), "image_ap": average_precision_score(labels, scores),
           "image_f1max": sklearn_f1max(labels, scores), "pixel_auroc": roc_auc_score(y, m),
           "pixel_ap": average_precision_score(y, m), "pixel_f1max": sklearn_f1max(y, m),
           "pixel_aupro": brute_aupro(maps, masks)}
    out["mad"] = float(np.mean(list(out.values())))
    return out


@pytest.fixture(scope="module")
def features():
    """Held-out normals, and a test set whose anomalies are feature outliers at their masked positions."""
    rng = np.random.default_rng(0)
    held = rng.standard_normal((6, 4, 4, 4))
    test = rng.standard_normal((12, 4, 4, 4))
    labels = np.array([0] * 5 + [1] * 7)
    masks = np.zeros((12, 32, 32), bool)
    for i in range(5, 12):
        y, x = rng.integers(0, 3, 2)
        test[i, :, y, x] += rng.uniform(1.0, 3.0) * rng.choice([-1, 1], 4)
        test[i, 0, y + 1, x] += rng.uniform(-2.0, 2.0)  # a second, weaker position: the map is not one peak
        masks[i, 8 * y : 8 * y + 16, 8 * x : 8 * x + 8] = True
    return held, test, labels, masks


def context(tmp_path, overrides: dict | None = None) -> Context:
    """A context without data or backbone; ``overrides``: dotted config keys."""
    config = config_from({"backbone": {"image_size": 32}, "scoring": {"eval_batch_size": 5, "save_maps": 0}},
                         overrides).with_train_categories(["c"])
    return Context(config, tmp_path, tmp_path / "cache", torch.device("cpu"), None, None, None)


@pytest.fixture(autouse=True)
def fixed_timing_without_a_backbone(monkeypatch):
    """Contexts built without a backbone (the hand computations below) time nothing: 10 ms backbone and
    30 ms scorer per image."""
    import adbench.engine.scoring as run

    real = run.pipeline_seconds
    monkeypatch.setattr(run, "pipeline_seconds", lambda ctx, *a: (0.01, 0.03, 0.0) if ctx.backbone is None
                        else real(ctx, *a))


def evalset(features, held=None, test=None) -> EvalSet:
    h, t, labels, masks = features
    h, t = (h if held is None else held), (t if test is None else test)
    return EvalSet("c", torch.from_numpy(h).float(), torch.from_numpy(t).float(), labels, masks, [])


@pytest.mark.parametrize("image_score", ["nll", "diff", "nll+diff"])
def test_image_scores_are_held_out_zscores_summed(image_score, features, tmp_path):
    held, test, labels, masks = features
    ctx = context(tmp_path, {"scoring.image_score": image_score})
    data = evalset(features)
    got = cell_scores(ctx, data, Recorder(), SCORERS.create("osd_irf_mean"), "c")
    h, t = components_by_hand(latent_by_hand(held)), components_by_hand(latent_by_hand(test))
    expected = sum(zscores(t[k], h[k]) for k in image_score.split("+"))
    assert got.image_score == image_score
    np.testing.assert_allclose(got.scores, expected, rtol=1e-4, atol=1e-4)
    maps = upsampled(t["fmap"], 32)
    np.testing.assert_allclose(got.maps, maps, rtol=1e-4, atol=1e-4)
    row = score_cell(ctx, data, Recorder(), {"name": "osd_irf_mean"})
    want = metrics_by_hand(expected, labels, got.maps, masks)  # the maps checked above; ties are float32's
    assert {k: row[k] for k in want} == pytest.approx(want, abs=1e-6)
    assert row["transductive"] is False and row["normalisation"] == "train"
    assert (row["fps"], row["scorer_fps"]) == pytest.approx((25.0, 1 / 0.03))  # 1 / (backbone + scorer)


def test_the_two_image_scores_rank_differently(features):
    """The case above can tell nll, diff and nll+diff apart: their AU-ROCs differ."""
    held, test, labels, _ = features
    h, t = components_by_hand(latent_by_hand(held)), components_by_hand(latent_by_hand(test))
    aurocs = {name: roc_auc_score(labels, sum(zscores(t[k], h[k]) for k in name.split("+")))
              for name in ("nll", "diff", "nll+diff")}
    assert len(set(aurocs.values())) == 3


def test_train_normalisation_sees_only_held_out_normals(features, tmp_path):
    held, test, _, _ = features
    ctx = context(tmp_path)
    scorer = SCORERS.create("osd_irf_mean")
    base = cell_scores(ctx, evalset(features), Recorder(), scorer, "c").normaliser
    scaled = cell_scores(ctx, evalset(features, test=3 * test + 1), Recorder(), scorer, "c").normaliser
    assert scaled == base  # the test set's scale does not reach the statistics
    h = components_by_hand(latent_by_hand(held))
    assert base.shift == pytest.approx({k: h[k].mean() for k in ("nll", "diff")}, rel=1e-6)
    assert base.scale == pytest.approx({k: h[k].std(ddof=1) for k in ("nll", "diff")}, rel=1e-5)


def test_test_minmax_only_when_asked_and_flagged(features, tmp_path):
    held, test, labels, masks = features
    ctx = context(tmp_path, {"scoring.normalisation": "test-minmax"})
    data = evalset(features, held=held * 50)  # held-out normals must not matter here
    got = cell_scores(ctx, data, Recorder(), SCORERS.create("osd_irf_mean"), "c")
    t = components_by_hand(latent_by_hand(test))
    expected = sum((t[k] - t[k].min()) / (t[k].max() - t[k].min()) for k in ("nll", "diff"))
    np.testing.assert_allclose(got.scores, expected, rtol=1e-5, atol=1e-6)
    row = score_cell(ctx, data, Recorder(), {"name": "osd_irf_mean"})
    assert row["transductive"] is True and row["normalisation"] == "test-minmax"
    assert row["image_auroc"] == pytest.approx(roc_auc_score(labels, expected), abs=1e-12)


@pytest.mark.parametrize(("cfg", "sigma", "pool", "corners"), [
    ({"scoring.protocol": "ader"}, 4.0, 16, True),
    ({"scoring": {"image_score": "max", "smoothing_sigma": 1.5, "pool_size": 3}}, 1.5, 3, False),
])
def test_map_post_processing_and_pooled_max(cfg, sigma, pool, corners, features, tmp_path):
    held, test, labels, masks = features
    ctx = context(tmp_path, cfg)
    data = evalset(features)
    got = cell_scores(ctx, data, Recorder(), SCORERS.create("osd_irf_mean"), "c")

    def maps_of(x):
        fmap = components_by_hand(latent_by_hand(x))["fmap"]
        return gaussian_filter(upsampled(fmap, 32, corners), sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)

    maps = maps_of(test)
    np.testing.assert_allclose(got.maps, maps, rtol=1e-4, atol=1e-4)
    expected = zscores(pooled_max(maps, pool), pooled_max(maps_of(held), pool))
    assert got.image_score == "max"
    np.testing.assert_allclose(got.scores, expected, rtol=1e-4, atol=1e-4)
    row = score_cell(ctx, data, Recorder(), {"name": "osd_irf_mean"})
    want = metrics_by_hand(expected, labels, got.maps, masks)  # the maps checked above; ties are float32's
    assert {k: row[k] for k in want} == pytest.approx(want, abs=1e-6)


def test_bilinear_upsampling_is_half_pixel_centred():
    """align_corners=False: output pixel i samples source (i + 0.5) / 2 - 0.5, clamped at the edges."""
    fmap = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    row = [0.0, 0.25, 0.75, 1.0]
    expected = np.array([[r + 2 * c for r in row] for c in row])
    np.testing.assert_allclose(upsample(fmap, 4)[0].numpy(), expected, atol=1e-7)


def test_bilinear_upsampling_with_aligned_corners():
    """align_corners=True (ADer): output pixel i samples source i (2 - 1) / (4 - 1); corners kept."""
    fmap = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    row = [0.0, 1 / 3, 2 / 3, 1.0]
    expected = np.array([[r + 2 * c for r in row] for c in row])
    np.testing.assert_allclose(upsample(fmap, 4, align_corners=True)[0].numpy(), expected, atol=1e-6)


def test_scoring_noise_follows_the_seed(features, tmp_path):
    held, test, _, _ = features
    ctx = context(tmp_path, {"seed": 3, "scoring.image_score": "nll"})
    got = cell_scores(ctx, evalset(features), Recorder(), SCORERS.create("osd_irf_noisy"), "c")

    def noise(x, seed):  # one generator per set, drawn batch after batch (5, 5, 2 images)
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([torch.randn((len(x[i : i + 5]), *x.shape[1:]), generator=gen)
                          for i in range(0, len(x), 5)]).double().numpy()

    t = components_by_hand(latent_by_hand(test, eps=noise(test, 3)))  # test noise: the seed
    h = components_by_hand(latent_by_hand(held, eps=noise(held, 4)))  # held-out noise: the seed + 1
    np.testing.assert_allclose(got.scores, zscores(t["nll"], h["nll"]), rtol=1e-4, atol=1e-4)
    other = cell_scores(dataclasses.replace(ctx, cfg=ctx.cfg.updated({"seed": 4})), evalset(features),
                        Recorder(), SCORERS.create("osd_irf_noisy"), "c")
    assert not np.allclose(other.scores, got.scores)


def test_mad_is_the_mean_of_the_seven_metrics():
    from adbench.metrics import mad

    values = dict(zip(metric_keys(), [0.9, 0.5, 0.7, 0.95, 0.3, 0.4, 0.8], strict=True))
    assert mad(values) == pytest.approx(4.55 / 7, abs=1e-15)


def test_split_is_disjoint_sized_and_seeded(tiny_synthetic):
    from adbench.data.mvtec import MVTecLayout

    samples = MVTecLayout(tiny_synthetic).train("washer")  # 10 images
    assert split_train(samples, None, seed=0) == (samples, [])  # transductive: nothing held out
    assert [holdout_size(n, f) for n, f in ((40, 0.1), (400, 0.1), (400, 0.2), (39, 0.1), (39, 0.9))] == [
        20, 40, 80, 4, 35]  # at least 20 from 40 images on; a smaller category: what the fraction gives
    for fraction, n_held in ((0.2, 2), (0.1, 2), (0.35, 4), (0.5, 5)):  # max(2, round(fraction * n))
        fit, held = split_train(samples, fraction, seed=0)
        assert len(held) == n_held and len(fit) == 10 - n_held
        assert set(fit).isdisjoint(held) and set(fit) | set(held) == set(samples)
    fit, held = split_train(samples[:3], 0.5, seed=0)  # 2 held out (the minimum), 1 left to train
    assert (len(fit), len(held)) == (1, 2)
    with pytest.raises(DataError, match="too few"):
        split_train(samples[:2], 0.5, seed=0)
    held_by_seed = [frozenset(split_train(samples, 0.3, seed)[1]) for seed in range(6)]
    assert held_by_seed[0] == frozenset(split_train(samples, 0.3, 0)[1])
    assert len(set(held_by_seed)) > 1


def small_context(data_root, tmp_path, overrides: dict | None = None) -> Context:
    """A real context: the tiny synthetic data at 64 px, EfficientNet-Lite0, a tiny MLP trained 1 epoch;
    ``overrides``: dotted config keys."""
    cfg = config_from({"data": {"dataset": "mvtec", "root": str(data_root), "holdout_fraction": 0.3},
                       "backbone": {"name": "efficientnet_lite0", "image_size": 64}, "noise_net": {"name": "mlp_tiny"},
                       "seed": 2, "scoring": {"eval_batch_size": 8, "fps_images": 2},
                       "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 1}}, overrides)
    return Context.create(cfg, tmp_path / "run", tmp_path / "cache")


def features_seen(monkeypatch) -> dict[str, list]:
    """What each ``Context.features`` call ("<category>: train features", ...) is asked for, as it happens."""
    seen: dict[str, list] = {}
    original = Context.features

    def recording(self, samples, what):
        seen[what] = list(samples)
        return original(self, samples, what)

    monkeypatch.setattr(Context, "features", recording)
    return seen


def test_validation_normals_are_held_out_and_never_trained_on(tmp_path, monkeypatch):
    """data.held_out: validation (MVTec AD 2's protocol): the noise net fits every train/good image and none of
    validation/good, which alone estimate the score normalisation."""
    from tests.test_data import ad2_like

    ad2_like(tmp_path / "ad2", size=64, n_train=6, n_validation=3)
    ctx = small_context(tmp_path / "ad2", tmp_path, {"data.dataset": "mvtec_ad2", "data.held_out": "validation",
                                                     "categories": ["can"]})
    seen = features_seen(monkeypatch)
    train_category(ctx, "can")
    eval_set(ctx, "can")
    fit, held = seen["can: train features"], seen["can: held-out features"]
    assert [s.image_path for s in fit] == [s.image_path for s in ctx.dataset.train("can")] and len(fit) == 6
    assert [s.image_path for s in held] == sorted((tmp_path / "ad2" / "can" / "validation" / "good").iterdir())
    assert {s.image_path for s in fit}.isdisjoint(s.image_path for s in held)


def test_training_sees_only_fit_images_and_scoring_only_held_out(tiny_synthetic, tmp_path, monkeypatch):
    ctx = small_context(tiny_synthetic, tmp_path)
    seen = features_seen(monkeypatch)
    train_category(ctx, "washer")
    data = eval_set(ctx, "washer")
    everything = ctx.dataset.train("washer")
    fit, held = seen["washer: train features"], seen["washer: held-out features"]
    assert len(held) == 3 and len(fit) == 7
    assert set(fit).isdisjoint(held) and set(fit) | set(held) == set(everything)
    assert seen["washer: test features"] == ctx.dataset.test("washer") and len(data.held_feats) == 3
    for other in ("granite", "weave"):  # multiclass: the other categories' fit splits train the model too
        fit_other, held_other = split_train(ctx.dataset.train(other), 0.3, 2)
        assert seen[f"{other}: train features"] == fit_other and not set(fit_other) & set(held_other)


def test_multiclass_trains_one_model_on_every_category_and_scores_all_with_it(tiny_synthetic, tmp_path,
                                                                             monkeypatch):
    import adbench.engine.training as run

    trained = []
    real = run.train_noise_net

    def recording(model, feats, *args):
        trained.append(feats)
        return real(model, feats, *args)

    monkeypatch.setattr(run, "train_noise_net", recording)
    ctx = small_context(tiny_synthetic, tmp_path)
    assert ctx.cfg.data.train_categories == ["granite", "washer", "weave"]
    models = [train_category(ctx, c) for c in ("washer", "weave", "granite")]
    key = training_key(ctx.cfg, "washer")
    assert len(trained) == 1 and sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == [
        f"multiclass-{key}.pt", f"multiclass-{key}.train.json", f"multiclass-{key}.train_log.csv"]
    union = torch.cat([ctx.features(split_train(ctx.dataset.train(c), 0.3, 2)[0], "x")
                       for c in ("granite", "washer", "weave")])  # each category's fit split, in name order
    assert torch.equal(trained[0], union)
    for model in models[1:]:
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), models[0].state_dict().values(),
                                                     strict=True))
    rows = [score_cell(ctx, eval_set(ctx, c), models[0], {"name": "osd_irf_mean"}) for c in ("washer", "weave")]
    assert [(r["setting"], r["trained_on"]) for r in rows] == [("multiclass", "granite,washer,weave")] * 2
    single = small_context(tiny_synthetic, tmp_path / "single", {"data.setting": "single"})
    for c in ("washer", "weave"):
        train_category(single, c)
    assert len(trained) == 3 and sorted(p.name.split("-")[0] for p in (tmp_path / "single" / "run" / "models")
                                        .glob("*.pt")) == ["washer", "weave"]
    assert torch.equal(trained[1], single.features(split_train(single.dataset.train("washer"), 0.3, 2)[0], "x"))


def test_seed_everything_seeds_every_global_generator(monkeypatch):
    import os
    import random

    from adbench.device import seed_everything

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # restored after the test
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(11, deterministic=True)
        drawn = (random.random(), np.random.rand(), torch.rand(1).item())
        assert torch.are_deterministic_algorithms_enabled() and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    expected = (random.Random(11).random(), np.random.RandomState(11).rand(),
                torch.rand(1, generator=torch.Generator().manual_seed(11)).item())
    assert drawn == expected


def test_models_and_features_are_stored_where_they_are_looked_up(tiny_synthetic, tmp_path, monkeypatch):
    """The model file is where a grid's plan looks for it; features are cached under their key and read back."""

    ctx = small_context(tiny_synthetic, tmp_path)
    train_category(ctx, "washer")
    key = training_key(ctx.cfg, "washer")
    assert sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == [
        f"multiclass-{key}.pt", f"multiclass-{key}.train.json", f"multiclass-{key}.train_log.csv"]
    samples = ctx.dataset.test("washer")
    cached = tmp_path / "cache" / "features" / f"{feature_key(ctx.cfg, samples, 'cpu:fp32')}.pt"
    first = ctx.features(samples, "test")
    assert torch.equal(torch.load(cached, weights_only=True), first)
    with monkeypatch.context() as patch:
        patch.setattr("adbench.engine.cache.extract", lambda *a, **k: pytest.fail("the cache was not read"))
        assert torch.equal(ctx.features(samples, "test"), first)  # read back, not recomputed
    cached.write_bytes(b"damaged")
    assert torch.equal(ctx.features(samples, "test"), first)  # a damaged entry is recomputed
    assert torch.equal(torch.load(cached, weights_only=True), first)


def change_a_tensor_byte(path):
    """Change one byte in the middle of the largest entry of a torch file (a tensor's data), keeping its size
    and the zip layout: torch.load alone would read the changed value without complaint."""
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda e: e.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26: entry.header_offset + 30])
    at = entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    return entry.filename


def test_a_changed_byte_in_a_cached_tensor_is_caught_named_and_recomputed(tiny_synthetic, tmp_path, capsys):
    """Features and model files whose bytes changed inside a tensor (torch would load them): each is named in
    a warning, removed and computed again, giving what the intact file held."""
    ctx = small_context(tiny_synthetic, tmp_path)
    samples = ctx.dataset.test("washer")
    first = ctx.features(samples, "test")
    cached = tmp_path / "cache" / "features" / f"{feature_key(ctx.cfg, samples, 'cpu:fp32')}.pt"
    entry = change_a_tensor_byte(cached)
    assert not torch.equal(torch.load(cached, weights_only=True), first)  # torch reads the changed value
    capsys.readouterr()
    assert torch.equal(ctx.features(samples, "test"), first)
    assert f"warning: {cached} is not a readable feature cache file (damaged): {entry} fails its checksum; " \
           "removed, computing it again" in " ".join(capsys.readouterr().err.split())
    trained = train_category(ctx, "washer").state_dict()
    model_file = ctx.model_path("washer")
    change_a_tensor_byte(model_file)
    again = train_category(ctx, "washer").state_dict()
    assert f"warning: {model_file} is not a readable model file (damaged)" in " ".join(capsys.readouterr().err.split())
    assert all(torch.equal(again[k], trained[k]) for k in trained)  # trained again, to the same weights


def test_use_ema_picks_the_weights_scored_and_training_honours_deterministic(tiny_synthetic, tmp_path):
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        ema = train_category(small_context(tiny_synthetic, tmp_path, {"deterministic": True, "scoring.use_ema": True}),
                             "washer")
        assert torch.are_deterministic_algorithms_enabled()
        raw = train_category(small_context(tiny_synthetic, tmp_path, {"deterministic": True}), "washer")  # same file
        (log,) = (tmp_path / "run" / "models").glob("multiclass-*.train_log.csv")
        assert pd.read_csv(log).columns.tolist() == ["step", "epoch", "loss", "lr", "ema_decay"]
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    (path,) = (tmp_path / "run" / "models").glob("multiclass-*.pt")
    stored = torch.load(path, weights_only=True)
    for name, value in raw.state_dict().items():
        assert torch.equal(value, stored["raw"][name]) and torch.equal(ema.state_dict()[name], stored["ema"][name])
    assert any(not torch.equal(stored["raw"][k], stored["ema"][k]) for k in stored["raw"])


def test_image_level_data_and_non_finite_maps(tiny_synthetic, tmp_path):
    from adbench.engine.scoring import cell_metrics
    from adbench.metrics import NonFiniteScoreError
    from adbench.protocols import Scoring
    from adbench.scorers.scoring import ImageScores, Normaliser, ScorerOutput, score_images

    ctx = small_context(tiny_synthetic, tmp_path)
    ctx.dataset.has_masks = False  # e.g. ELPV
    data = eval_set(ctx, "washer")
    assert data.masks is None and data.samples == ctx.dataset.test("washer")
    scores = np.arange(len(data.labels), dtype=np.float32) * (2 * data.labels - 1)
    maps = np.zeros((len(scores), 64, 64), np.float32)
    metrics = cell_metrics(data, ImageScores("max", scores, maps, Normaliser({}, {})))
    assert metrics["image_auroc"] == roc_auc_score(data.labels, scores)
    assert all(math.isnan(metrics[k]) for k in ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro", "mad"))
    # the scoring stage refuses a finite score with a broken map, naming the cell and the image
    fmap = torch.zeros(len(scores), 4, 4)
    fmap[2, 1, 1] = float("nan")
    test = ScorerOutput(fmap, {"nll": scores})  # finite image scores
    held_out = ScorerOutput(torch.zeros(3, 4, 4), {"nll": np.array([0.0, 1.0, 2.0])})
    names = [str(s.image_path) for s in data.samples]
    with pytest.raises(NonFiniteScoreError, match=rf"^washer / x: 1 test image\(s\) got NaN or Inf scores, first "
                                                  rf"{data.samples[2].image_path}\."):
        score_images(test, held_out, Scoring(image_score="nll"), 64, ("nll",), "washer / x", names)


def test_segf1_binarises_at_mean_plus_3_std_of_the_held_out_normals_maps():
    """The held-out maps (at the image size: upsampling is the identity, no smoothing) are 1 and 3 everywhere:
    mean 2, std 1, threshold 5; the test maps' pixels above 5 are then counted against the masks."""
    from adbench.engine.context import EvalSet
    from adbench.engine.scoring import cell_metrics
    from adbench.protocols import Scoring
    from adbench.scorers.scoring import ImageScores, ScorerOutput, score_images

    held_out = ScorerOutput(torch.stack([torch.ones(8, 8), 3 * torch.ones(8, 8)]), {"nll": np.array([0.0, 1.0])})
    fmap = torch.zeros(2, 8, 8)
    fmap[0, :2, :2] = 6.0  # 4 pixels > 5, of which 3 in the mask below
    fmap[0, 7, 7] = 5.0  # a masked pixel at the threshold: not above it
    test = ScorerOutput(fmap, {"nll": np.array([1.0, 0.0])})
    out = score_images(test, held_out, Scoring(image_score="nll"), 8, ("nll",), "c / x", ["a", "b"])
    assert out.seg_threshold == 5.0
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2, :1] = masks[0, 0, 1] = masks[0, 7, 7] = True
    data = EvalSet("c", torch.empty(0), torch.empty(0), np.array([1, 0]), masks, [])
    got = cell_metrics(data, out, extra=("pixel_segf1",))["pixel_segf1"]
    assert got == 2 * 3 / (2 * 3 + 1 + 1)  # TP 3, FP 1, FN 1
    transductive = score_images(test, None, Scoring(image_score="nll", normalisation="test-minmax"), 8, ("nll",),
                                "c / x", ["a", "b"])
    assert math.isnan(transductive.seg_threshold) and isinstance(transductive, ImageScores)


def test_loco_scores_each_anomaly_kind_beside_the_good_images_and_reports_their_mean():
    """MVTec's evaluate_experiment.py: logical and structural anomalies each against the good images, then the
    mean. Two good images (0.2, 0.6), two logical (0.9, 0.7: above both good ones, AU-ROC 1), one structural
    (0.1: below both, AU-ROC 0): mean 0.5, where one pooled curve gives 4 of 6 pairs."""
    from adbench.data.base import DefectRegion
    from adbench.engine.context import EvalSet
    from adbench.engine.scoring import cell_metrics
    from adbench.scorers.scoring import ImageScores, Normaliser

    kinds = ("good", "good", "logical_anomalies", "logical_anomalies", "structural_anomalies")
    labels = np.array([0, 0, 1, 1, 1])
    samples = [Sample(Path(f"{i}.png"), None, int(y), kind)
               for i, (kind, y) in enumerate(zip(kinds, labels, strict=True))]
    scores = np.array([0.2, 0.6, 0.9, 0.7, 0.1])
    rng = np.random.default_rng(3)
    maps = rng.random((5, 4, 4))
    masks = np.zeros((5, 4, 4), bool)
    masks[2, :2, :2] = masks[3, 2:, 2:] = masks[4, 1:3, 1:3] = True
    maps[2:][masks[2:]] += 0.5
    regions = [DefectRegion(i, masks[i], 2.0) for i in (2, 3, 4)]
    out = ImageScores("max", scores, maps, Normaliser({}, {}))
    keys = ("pixel_auspro_30pct",)
    data = EvalSet("c", torch.empty(0), torch.zeros(5, 1), labels, masks, samples, regions=regions,
                   kinds_apart=("logical_anomalies", "structural_anomalies"))
    got = cell_metrics(data, out, extra=keys)
    by_kind = json.loads(got["metrics_by_kind"])
    assert by_kind["logical_anomalies"]["image_auroc"] == 1.0 and by_kind["structural_anomalies"]["image_auroc"] == 0.0
    assert got["image_auroc"] == 0.5
    for kind, at in (("logical_anomalies", [0, 1, 2, 3]), ("structural_anomalies", [0, 1, 4])):
        assert by_kind[kind]["image_ap"] == pytest.approx(average_precision_score(labels[at], scores[at]), abs=1e-12)
        assert by_kind[kind]["pixel_auroc"] == pytest.approx(roc_auc_score(masks[at].ravel(), maps[at].ravel()),
                                                             abs=1e-12)
        kept = [DefectRegion(at.index(r.image), r.mask, r.saturation) for r in regions if r.image in at]
        assert by_kind[kind][keys[0]] == pixel_metrics(maps[at], masks[at], extra=keys, regions=kept)[keys[0]]
    for key in (*metric_keys(), keys[0]):
        assert got[key] == pytest.approx((by_kind["logical_anomalies"][key] + by_kind["structural_anomalies"][key]) / 2,
                                         abs=1e-15), key
    pooled = cell_metrics(dataclasses.replace(data, kinds_apart=()), out, extra=keys)
    assert pooled["image_auroc"] == pytest.approx(4 / 6, abs=1e-15) and "metrics_by_kind" not in pooled


def test_cell_config_is_one_category_and_one_scorer():
    from adbench.engine.build import cell_config

    cfg = RunConfig(categories=["a", "b"], scoring={"scorers": [{"name": "invad"}, {"name": "osd_irf_mean", "t": 250}]})
    cell = cell_config(cfg, "b", cfg.scoring.scorers[1])
    assert (cell.categories, cell.scoring.scorers) == (["b"], [{"name": "osd_irf_mean", "t": 250}])
    assert cell.updated({"categories": cfg.categories, "scoring.scorers": cfg.scoring.scorers}) == cfg


def test_noise_net_arguments_reach_the_net():
    from adbench.engine.build import build_noise_net

    deep = build_noise_net(RunConfig(noise_net={"name": "mlp_tiny", "args": {"depth": 3}}), in_channels=4)
    assert len(deep.blocks) == 3


def test_training_checkpoints_beside_the_model_file(tiny_synthetic, tmp_path, monkeypatch):
    """Training writes its resumable checkpoint next to the model file (a killed run resumes from it) and
    removes it once the model is saved; ``runtime.compile`` reaches the trainer (which then trains eagerly
    here: compiling is tested in test_diffusion.py)."""
    import adbench.engine.training as run

    calls = []
    real = run.train_noise_net

    def recording(model, feats, cfg, seed, checkpoint, device, description, compile_model):
        calls.append((checkpoint, description, compile_model))
        return real(model, feats, cfg, seed, checkpoint, device, description, False)

    monkeypatch.setattr(run, "train_noise_net", recording)
    ctx = small_context(tiny_synthetic, tmp_path, {"runtime.compile": True})
    train_category(ctx, "washer")
    model_file = ctx.model_path("washer")
    assert calls == [(model_file.with_suffix(".ckpt"), "multiclass: train", True)]
    assert model_file.is_file() and not model_file.with_suffix(".ckpt").exists()


def test_knn_bank_is_the_training_features_of_the_model_it_stands_beside(tiny_synthetic, tmp_path, monkeypatch):
    from adbench.scorers.knn import KNN

    banks = []
    real = KNN.fit
    monkeypatch.setattr(KNN, "fit", lambda self, feats, *args: banks.append(feats) or real(self, feats, *args))
    ctx = small_context(tiny_synthetic, tmp_path)
    row = score_cell(ctx, eval_set(ctx, "washer"), None, {"name": "knn", "coreset": 1.0})
    union = torch.cat([ctx.features(split_train(ctx.dataset.train(c), 0.3, 2)[0], "x")
                       for c in ("granite", "washer", "weave")])
    assert len(banks) == 1 and torch.equal(banks[0], union) and row["trained_on"] == "granite,washer,weave"


def test_transductive_normalisation_trains_on_every_normal_and_small_holdouts_are_flagged(tiny_synthetic,
                                                                                           tmp_path):
    ctx = small_context(tiny_synthetic, tmp_path, {"scoring.normalisation": "test-minmax", "categories": ["washer"]})
    assert ctx.cfg.holdout() is None
    everything = torch.cat([ctx.features(ctx.dataset.train(c), "x") for c in ("granite", "washer", "weave")])
    from adbench.engine.context import training_features

    assert torch.equal(training_features(ctx, "washer"), everything)
    row = score_cell(ctx, eval_set(ctx, "washer"), train_category(ctx, "washer"), {"name": "osd_irf_mean"})
    assert (row["n_holdout"], row["holdout_below_min"]) == (0, False)
    held = small_context(tiny_synthetic, tmp_path / "held")
    row = score_cell(held, eval_set(held, "washer"), train_category(held, "washer"), {"name": "osd_irf_mean"})
    assert (row["n_holdout"], row["holdout_below_min"]) == (3, True)  # 0.3 of 10 images


def test_feature_norm_standardises_every_stage_by_the_training_statistics(tiny_synthetic, tmp_path, monkeypatch):
    import adbench.engine.training as run
    from adbench.scorers.knn import KNN

    seen = {}
    real_train, real_fit = run.train_noise_net, KNN.fit

    def train(model, feats, *args):
        seen["train"] = feats
        return real_train(model, feats, *args)

    def fit(self, feats, *args):
        seen["bank"] = feats
        return real_fit(self, feats, *args)

    monkeypatch.setattr(run, "train_noise_net", train)
    monkeypatch.setattr(KNN, "fit", fit)
    ctx = small_context(tiny_synthetic, tmp_path, {"noise_net.feature_norm": "standardize", "categories": ["washer"]})
    raw = run.training_features(ctx, "washer").double().numpy()  # N x C x h x w
    mean = raw.mean(axis=(0, 2, 3), keepdims=True)
    std = raw.std(axis=(0, 2, 3), ddof=1, keepdims=True)
    data = eval_set(ctx, "washer")
    train_category(ctx, "washer")
    score_cell(ctx, data, None, {"name": "knn", "coreset": 1.0})
    for got in (seen["train"], seen["bank"]):
        np.testing.assert_allclose(got.numpy(), (raw - mean) / std, rtol=1e-4, atol=1e-4)
    test = ctx.features(ctx.dataset.test("washer"), "x").double().numpy()
    np.testing.assert_allclose(data.test_feats.numpy(), (test - mean) / std, rtol=1e-4, atol=1e-4)
    held = ctx.features(split_train(ctx.dataset.train("washer"), 0.3, 2)[1], "x").double().numpy()
    assert held.shape[0] == 3  # the held-out normals that weight the image-score components
    np.testing.assert_allclose(data.held_feats.numpy(), (held - mean) / std, rtol=1e-4, atol=1e-4)
    plain = small_context(tiny_synthetic, tmp_path / "plain", {"categories": ["washer"]})
    assert torch.equal(eval_set(plain, "washer").test_feats, plain.features(plain.dataset.test("washer"), "x"))


def test_feature_standardisation_divides_by_each_channels_std_however_small(monkeypatch):
    import adbench.engine.context as run

    train = torch.zeros(4, 3, 2, 2)
    train[:, 0] = torch.arange(4.0).view(4, 1, 1) * 0.01  # std 0.0129: a small but live channel
    train[:, 1] = 5.0  # a dead channel: std 0, kept finite
    train[:, 2] = torch.arange(4.0).view(4, 1, 1) * 3
    monkeypatch.setattr(run, "training_features", lambda ctx, category: train)
    ctx = context(Path("."), {"noise_net.feature_norm": "standardize"})
    got = run.feature_normaliser(ctx, "c")(torch.ones(1, 3, 1, 1))
    values = train.double().numpy()
    mean, std = values.mean(axis=(0, 2, 3)), values.std(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(got.flatten().numpy(), [(1 - mean[0]) / std[0], (1 - 5) / 1e-6,
                                                       (1 - mean[2]) / std[2]], rtol=1e-5)


def test_a_cell_the_scorer_does_not_apply_to_is_a_row_of_nan_metrics(features, tmp_path):
    """Reconstruction with ratio x S < 1 (InvAD Table 4's n/a cells): no scoring, every metric NaN."""
    ctx = context(tmp_path, {"scoring.protocol": "ader"})
    row = score_cell(ctx, evalset(features), None, {"name": "reconstruction", "ratio": 0.1, "steps": 5})
    assert all(math.isnan(row[k]) for k in (*metric_keys(), "mad", "fps", "scorer_fps"))
    assert (row["nfe"], row["image_score"], row["maps_file"]) == (0, "max", "")  # ader's image score, no maps
    assert row["scorer_label"] == "reconstruction(ratio=0.1,steps=5)" and row["n_test"] == len(features[2])


def test_the_fps_column_is_the_median_of_timed_passes_after_a_warm_up(tiny_synthetic, tmp_path, monkeypatch):
    import adbench.engine.scoring as run

    ctx = small_context(tiny_synthetic, tmp_path, {"categories": ["washer"]})
    data = eval_set(ctx, "washer")
    n = len(data.samples[:2])  # fps_images: 2
    backbone = [9.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # seconds per pass: the first is the warm-up
    scorer = [9.0, 2.0, 2.0, 2.0, 6.0, 2.0]
    times, now = [], 0.0
    for seconds in (*backbone, *scorer):  # the backbone's passes, then the scorer's: a start and an end each
        times += [now, now + seconds]
        now += seconds + 1.0
    ticks = iter(times)
    monkeypatch.setattr(run, "clock", lambda device: next(ticks))
    got = run.pipeline_seconds(ctx, data, None, _FixedScorer())
    per_image_fps = [n / (b + s) for b, s in zip(backbone[1:], scorer[1:], strict=True)]
    assert got[:2] == (3.0 / n, 2.0 / n)  # medians of the timed passes, the warm-up left out
    assert got[2] == pytest.approx(np.subtract(*np.percentile(per_image_fps, [75, 25])))
    assert next(ticks, None) is None  # 1 warm-up + FPS_PASSES timed passes of each, 2 clock reads a pass
    again = iter([0.0, 4.0] * 6)  # another scorer of washer: the scorer alone is timed, from the same features
    monkeypatch.setattr(run, "clock", lambda device: next(again))
    assert run.pipeline_seconds(ctx, data, None, _FixedScorer())[:2] == (3.0 / n, 4.0 / n)
    assert next(again, None) is None


class _FixedScorer:
    """A scorer whose output is a fixed map: the pipeline's timing does not depend on what it computes."""

    def score(self, model, schedule, x0, generator=None):
        from adbench.scorers.scoring import Scored

        return Scored(torch.zeros(len(x0), x0.shape[2], x0.shape[3]), {})


def test_a_random_init_backbone_and_its_features_follow_the_seed(tiny_synthetic, tmp_path):
    """``pretrained: false``: each seed gets the backbone that seed draws (built here directly after
    ``torch.manual_seed``), and its own features, never another seed's from the shared cache."""
    from adbench.data.base import load_batch
    from adbench.registry import BACKBONES

    samples, features = None, []
    for seed in (1, 2):
        ctx = small_context(tiny_synthetic, tmp_path, {"backbone.pretrained": False, "seed": seed})  # one cache
        torch.manual_seed(seed)
        want = BACKBONES.create("efficientnet_lite0", pretrained=False, weights=None, image_size=64).state_dict()
        got = ctx.backbone.state_dict()
        assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want), f"seed {seed}"
        samples = samples or ctx.dataset.test("washer")[:2]
        features.append(ctx.features(samples, "test"))
        with torch.no_grad():
            images = load_batch(samples, ctx.transform)
            np.testing.assert_allclose(features[-1].numpy(), ctx.backbone(images).numpy(), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(features[0], features[1])


def test_the_knn_coreset_is_drawn_from_the_runs_seed(features, tmp_path, monkeypatch):
    import adbench.engine.scoring as run
    from adbench.scorers.knn import greedy_coreset, vectors

    train = torch.from_numpy(np.random.default_rng(5).standard_normal((6, 4, 4, 4))).float()
    monkeypatch.setattr(run, "training_features", lambda ctx, category: train)
    bank = vectors(train)  # 96 vectors: a 0.1 coreset keeps 10, k-center from a seeded first row
    chosen = {seed: greedy_coreset(bank, 10, torch.Generator().manual_seed(seed)) for seed in (0, 3)}
    assert set(chosen[0].tolist()) != set(chosen[3].tolist())  # the case tells the seeds apart
    scorer = SCORERS.create("knn")
    cell_scores(context(tmp_path, {"seed": 3}), evalset(features), None, scorer, "c")
    assert torch.equal(scorer.bank, bank[chosen[3]])


def test_the_fps_column_times_backbone_scorer_and_post_processing(tiny_synthetic, tmp_path, monkeypatch):
    """Every pass of the FPS column: the backbone on ``fps_images`` decoded test images (its passes first, once
    per category), the scorer (noise net inside) on their normalised features, the post-processing of its maps."""
    import adbench.engine.scoring as run
    from adbench.data.base import load_batch
    from adbench.device import scorer_input
    from tests.test_fps import Recording, record_stages

    ctx = small_context(tiny_synthetic, tmp_path, {"categories": ["washer"], "noise_net.feature_norm": "standardize"})
    data, log = eval_set(ctx, "washer"), []
    model = Recording(train_category(ctx, "washer"), "noise net", log)
    ctx = dataclasses.replace(ctx, backbone=Recording(ctx.backbone, "backbone", log))
    scorer = SCORERS.create("osd_irf_mean")
    record_stages(monkeypatch, log, scorer, run, "postprocess_on_device")
    run.pipeline_seconds(ctx, data, model, scorer)
    passes = 1 + run.FPS_PASSES  # a warm-up pass, then the timed ones
    assert len(log) == 4 * passes
    images = load_batch(data.samples[:2], ctx.transform)  # fps_images: 2
    assert [stage for stage, *_ in log[:passes]] == ["backbone"] * passes
    assert all(torch.equal(x, images) for _, x, _ in log[:passes])
    feats = log[passes - 1][2]
    for i in range(passes, len(log), 3):
        assert [stage for stage, *_ in log[i : i + 3]] == ["noise net", "scorer", "post-processing"]
        _, (_, x0, fmap), (_, processed, _) = log[i : i + 3]
        assert torch.equal(x0, data.normalise(scorer_input(feats))) and torch.equal(processed, fmap)


def test_validation_normals_segf1_and_submission_are_refused_where_they_cannot_work(monkeypatch):
    from adbench.engine.preflight import check_held_out_and_submission
    from adbench.errors import ConfigError

    def refused(overrides):
        with pytest.raises(ConfigError) as info:
            check_held_out_and_submission(config_from(overrides))
        return str(info.value)

    assert "'synthetic' has none (mvtec_ad2, mvtec_loco" in refused({"data": {"held_out": "validation"}})
    assert refused({"scoring": {"extra_metrics": ["pixel_segf1"], "submission": True, "protocol": "ader",
                                "normalisation": "test-minmax"}, "data": {"dataset": "mvtec_ad2"}}).startswith(
        "scoring.extra_metrics: pixel_segf1 and scoring.submission binarise at mean + 3 std of held-out normal")
    assert "dataset 'mvtec' has none: use mvtec_ad2" in refused({"scoring": {"submission": True},
                                                                  "data": {"dataset": "mvtec"}})
    monkeypatch.setitem(__import__("sys").modules, "tifffile", None)  # not installed
    assert "pip install 'adbench-uiad[ad2]'" in refused({"scoring": {"submission": True},
                                                          "data": {"dataset": "mvtec_ad2"}})
    check_held_out_and_submission(config_from({"data": {"dataset": "mvtec_loco", "held_out": "validation"}}))


def test_a_category_too_large_for_memory_streams_its_metrics_to_the_same_values(tiny_synthetic, tmp_path,
                                                                                   monkeypatch):
    import adbench.metrics.streaming as streaming
    from adbench.errors import ConfigError

    ctx = small_context(tiny_synthetic, tmp_path, {"categories": ["washer"], "scoring.save_maps": 3,
                                                   "scoring.keep_maps": True})
    model = train_category(ctx, "washer")
    spec = {"name": "osd_irf_mean"}
    kept = score_cell(ctx, eval_set(ctx, "washer"), model, spec)
    kept_maps = dict(np.load(ctx.run_dir / kept["maps_file"]))
    every = dict(np.load(ctx.run_dir / kept["all_maps_file"]))  # every test image's map, for the bootstrap
    assert every["maps"].dtype == np.float32 and len(every["maps"]) == kept["n_test"]
    from_file = pixel_metrics(every["maps"], every["masks"])
    assert all(from_file[k] == kept[k] for k in from_file) and kept["aupro_impl"] == "exact"
    # a configured AU-PRO limit reaches the metric (checked against the brute-force curve) and the row
    limited = small_context(tiny_synthetic, tmp_path, {"categories": ["washer"], "scoring.pro_limit": 0.1})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = score_cell(limited, eval_set(limited, "washer"), model, spec)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    assert row["pro_limit"] == 0.1 and row["pixel_aupro"] != kept["pixel_aupro"]
    assert row["pixel_aupro"] == pytest.approx(brute_aupro(every["maps"], every["masks"], 0.1), abs=1e-12)
    assert row["peak_memory_of"] == "process peak RSS" and before <= row["peak_memory_mb"] <= after  # in MiB
    mvtec3d = small_context(tiny_synthetic, tmp_path, {"categories": ["washer"], "scoring.aupro_impl": "mvtec3d"})
    row = score_cell(mvtec3d, eval_set(mvtec3d, "washer"), model, spec)
    assert row["aupro_impl"] == "mvtec3d" and row["pixel_auroc"] == kept["pixel_auroc"]
    assert row["pixel_aupro"] == aupro_mvtec3d(every["maps"], every["masks"], 0.3) != kept["pixel_aupro"]
    monkeypatch.setattr(streaming, "IN_MEMORY_BYTES_PER_PIXEL", 2**40)  # every category too large for memory
    data = eval_set(ctx, "washer")
    assert isinstance(data.masks, np.memmap) and data.spill.directory == ctx.cache_dir / "spill"
    streamed = score_cell(ctx, data, model, spec)
    assert (kept["metric_pass"], streamed["metric_pass"]) == ("in memory", "streamed")
    for key in ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_f1max"):
        assert streamed[key] == kept[key]
    for key in ("pixel_ap", "pixel_aupro", "mad"):
        assert streamed[key] == pytest.approx(kept[key], abs=1e-12)
    assert streamed["cell_key"] == kept["cell_key"]
    for name, array in np.load(ctx.run_dir / streamed["maps_file"]).items():  # the maps kept from the disk array
        np.testing.assert_array_equal(array, kept_maps[name])
    assert list((ctx.cache_dir / "spill").iterdir()) == []  # nothing left behind
    for name, array in np.load(ctx.run_dir / streamed["all_maps_file"]).items():  # written from the disk arrays
        np.testing.assert_array_equal(array, every[name])
    aupimo = small_context(tiny_synthetic, tmp_path,
                           {"categories": ["washer"], "scoring.extra_metrics": ["pixel_aupimo"]})
    with pytest.raises(ConfigError, match=r"^washer: \d+ test images at 64 px take more than runtime.metric_memory_mb "
                                          r"\(2048 MB\) .* pixel_aupimo need the maps in memory: raise "):
        eval_set(aupimo, "washer")
    with pytest.raises(ConfigError, match="streamed; scoring.aupro_impl mvtec3d need the maps in memory"):
        eval_set(mvtec3d, "washer")


def test_a_submission_folder_is_complete_only_with_every_object_and_both_private_splits(tmp_path):
    from adbench.data.mvtec import AD2_OBJECTS
    from adbench.engine.submission import incomplete

    folder = tmp_path / "submission-abc"
    for obj in AD2_OBJECTS:
        for kind, ext in (("anomaly_images", "tiff"), ("anomaly_images_thresholded", "png")):
            for split in ("test_private", "test_private_mixed"):
                (folder / kind / obj / split).mkdir(parents=True)
                (folder / kind / obj / split / f"000.{ext}").write_bytes(b"x")
    assert incomplete(tmp_path) == []
    (folder / "anomaly_images_thresholded" / "vial" / "test_private_mixed" / "000.png").unlink()  # one split short
    [line] = incomplete(tmp_path)
    assert line.startswith("submission-abc lacks 1 of MVTec AD 2's 8 objects (vial):")
