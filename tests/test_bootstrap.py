"""The paired bootstrap of pixel metrics: each replicate equal to the metrics of the images actually repeated,
the interval equal to one built from such explicit replicates, and the test's verdict on known cases."""

import numpy as np
import pytest

from adbench.metrics import pixel_metrics
from adbench.metrics.bootstrap import Ranking, draws, paired_bootstrap
from adbench.metrics.streaming import STREAMED
from tests.test_metrics import random_maps


def repeated(maps, masks, w):
    """The replicate's images, each repeated as often as it was drawn: its metrics by the in-memory pass."""
    return pixel_metrics(np.repeat(maps, w, axis=0), np.repeat(masks, w, axis=0), 0.3)


@pytest.mark.parametrize("levels", [4, 30, None])
def test_a_replicate_equals_the_metrics_of_its_repeated_images(levels):
    rng = np.random.default_rng(levels or 0)
    maps, masks = random_maps(rng, n=8, h=9, w=10, levels=levels or 7)
    if levels is None:
        maps = (maps + rng.normal(0, 0.3, maps.shape)).astype(np.float32)
    ranking = Ranking(maps, masks)
    for w in [np.ones(8, int), *draws(masks.any(axis=(1, 2)), 6, seed=levels or 0)]:
        got, ref = ranking.metrics(w), repeated(maps, masks, w)
        assert got["pixel_auroc"] == ref["pixel_auroc"] and got["pixel_f1max"] == ref["pixel_f1max"]
        for k in ("pixel_ap", "pixel_aupro"):
            assert got[k] == pytest.approx(ref[k], abs=1e-12)


def test_draws_resample_the_anomalous_and_the_normal_images_apart():
    anomalous = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    w = draws(anomalous, 500, seed=3)
    assert (w[:, anomalous].sum(axis=1) == 3).all() and (w[:, ~anomalous].sum(axis=1) == 4).all()
    assert np.array_equal(w, draws(anomalous, 500, seed=3))  # seeded
    assert abs(w.mean() - 1) < 0.05  # each image drawn once on average


def test_the_interval_is_that_of_explicitly_repeated_images():
    rng = np.random.default_rng(5)
    maps, masks = random_maps(rng, n=7, h=8, w=8, levels=9)
    other = (maps + rng.normal(0, 2, maps.shape)).astype(np.float32)
    got = paired_bootstrap(Ranking(maps, masks), Ranking(other, masks), n=40, seed=11)
    w = draws(masks.any(axis=(1, 2)), 40, seed=11)
    for k in STREAMED:
        d = np.array([repeated(maps, masks, r)[k] - repeated(other, masks, r)[k] for r in w])
        low, high = np.quantile(d, [0.025, 0.975])
        assert got[k].low == pytest.approx(low, abs=1e-12) and got[k].high == pytest.approx(high, abs=1e-12)
        assert got[k].p == pytest.approx(min(1.0, 2 * min(np.mean(d <= 1e-12), np.mean(d >= -1e-12))))
        point = pixel_metrics(maps, masks)[k] - pixel_metrics(other, masks)[k]
        assert got[k].difference == pytest.approx(point, abs=1e-12)


def test_a_method_against_itself_differs_in_nothing_and_a_perfect_one_differs_from_noise():
    rng = np.random.default_rng(6)
    masks = np.zeros((12, 16, 16), bool)
    masks[6:, 4:9, 4:9] = True
    noise = rng.normal(size=masks.shape).astype(np.float32)
    same = paired_bootstrap(Ranking(noise, masks), Ranking(noise, masks), n=200)
    assert all((i.difference, i.low, i.high, i.p, i.significant) == (0, 0, 0, 1, False) for i in same.values())
    perfect = paired_bootstrap(Ranking(masks.astype(np.float32) + noise / 10, masks), Ranking(noise, masks), n=200)
    assert all(i.significant and i.low > 0 and i.p < 0.05 for i in perfect.values())


def test_unpaired_or_one_sided_test_sets_are_refused():
    masks = np.zeros((4, 5, 5), bool)
    masks[2:, 1, 1] = True
    maps = np.random.default_rng(0).normal(size=masks.shape).astype(np.float32)
    with pytest.raises(ValueError, match="same test images"):
        paired_bootstrap(Ranking(maps, masks), Ranking(maps[:3], masks[:3]))
    all_anomalous = masks.copy()
    all_anomalous[:, 0, 0] = True
    with pytest.raises(ValueError, match="anomalous and normal test images"):
        paired_bootstrap(Ranking(maps, all_anomalous), Ranking(maps, all_anomalous))
