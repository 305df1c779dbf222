"""The streamed pixel metric pass: the same values as the in-memory one and as scikit-learn and a brute-force
AU-PRO, in every planning case (ranges, split bins, single values over budget), in memory that does not
grow with the number of images."""

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from adbench.metrics import MetricWarning, NonFiniteScoreError, pixel_metrics
from adbench.metrics.streaming import STREAMED, StreamedPixelMetrics, order_keys
from tests.test_metrics import brute_aupro, random_maps, sklearn_f1max


def streamed(tmp_path, maps, masks, pro_limit=0.3, budget=1 << 22, chunk=1 << 22, batch=4):
    with StreamedPixelMetrics(tmp_path, pro_limit, budget, chunk) as s:
        for i in range(0, len(maps), batch):
            s.add(maps[i : i + batch], masks[i : i + batch])
        return s.result(), [(lo, hi) for lo, hi, _ in s._ranges()]


@pytest.mark.parametrize(("levels", "budget", "chunk", "batch"), [
    (None, 1 << 22, 1 << 22, 4),  # one range, one chunk
    (None, 7, 50, 1),  # many ranges, many chunks
    (5, 3, 37, 3),  # few levels: bins over budget split into values, values over budget counted unheld
    (5, 1, 1, 2),  # every range one value, every chunk one key
])
def test_streamed_equals_the_in_memory_pass_sklearn_and_brute_force(tmp_path, levels, budget, chunk, batch):
    rng = np.random.default_rng(budget + chunk)
    maps, masks = random_maps(rng, n=9, h=10, w=11, levels=levels or 7)
    if levels is None:
        maps = (maps + rng.normal(0, 0.3, maps.shape)).astype(np.float32)
    maps[0, 0, :3] = [-0.0, 0.0, -0.0]  # equal scores with two bit patterns
    for limit in (0.3, 1.0):
        got, ranges = streamed(tmp_path, maps, masks, limit, budget, chunk, batch)
        ref = pixel_metrics(maps, masks, limit)
        assert got["pixel_auroc"] == ref["pixel_auroc"]  # integer counts: bit for bit
        assert got["pixel_f1max"] == ref["pixel_f1max"]
        assert got["pixel_ap"] == pytest.approx(ref["pixel_ap"], abs=1e-12)  # sums split at the ranges
        assert got["pixel_aupro"] == pytest.approx(ref["pixel_aupro"], abs=1e-12)
        y, s = masks.ravel(), maps.ravel().astype(np.float64)
        assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert got["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert got["pixel_f1max"] == pytest.approx(sklearn_f1max(y, s), abs=1e-12)
        assert got["pixel_aupro"] == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-12)
    n_values = len(np.unique(maps[masks]))
    if budget == 1:
        assert len(ranges) == n_values and all(lo == hi for lo, hi in ranges)
    elif budget < 1 << 22:
        assert 1 < len(ranges) <= n_values
    else:
        assert len(ranges) == 1


def test_the_plan_splits_a_bin_over_budget_and_counts_a_value_over_budget_unheld(tmp_path):
    maps = np.full((2, 4, 4), 0.5, np.float32)
    masks = np.zeros((2, 4, 4), bool)
    masks[1, :3, :3] = True
    maps[1, :3, :3] = 2.0  # 9 positives of one value ...
    maps[1, 0, 0] = np.nextafter(np.float32(2.0), np.float32(3.0))  # ... but one: its neighbour, in the same bin
    maps[0, 0, 0] = 2.0  # a negative tied with them
    got, _ = streamed(tmp_path, maps, masks, budget=4)
    two, above = (int(k) for k in order_keys(np.array([2.0, maps[1, 0, 0]], np.float32)))
    assert two >> 16 == above >> 16  # one histogram bin, with 9 > 4 positives: split into its two values
    with StreamedPixelMetrics(tmp_path, budget=4) as s:
        s.add(maps, masks)
        assert list(s._ranges()) == [(above, above, 1), (two, two, 8)]
    # by hand: 1 positive above every negative; 8 tied with 1 of the 23 negatives and above the other 22
    assert got["pixel_auroc"] == pytest.approx((9 * 23 - 8 * 0.5) / (9 * 23), abs=1e-15)
    assert got["pixel_ap"] == pytest.approx(1 / 9 * 1 + 8 / 9 * 9 / 10, abs=1e-15)
    assert got["pixel_f1max"] == pytest.approx(2 * 9 / (9 + 10), abs=1e-15)


def test_order_keys_sort_as_the_floats_do():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1e3, 500), [0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.0, 1.0]])
    values = values.astype(np.float32)
    keys = order_keys(values)
    order = np.argsort(values, kind="stable")
    assert np.array_equal(np.argsort(keys, kind="stable"), order)  # -0.0 and 0.0 tie, in index order
    assert np.array_equal(keys[:, None] == keys[None, :], values[:, None] == values[None, :])


def test_float16_maps_stream_and_the_rest_are_refused_clearly(tmp_path):
    rng = np.random.default_rng(1)
    maps, masks = random_maps(rng, levels=30)
    maps = (maps / 7).astype(np.float16)
    got, _ = streamed(tmp_path, maps, masks)
    assert got["pixel_auroc"] == pixel_metrics(maps.astype(np.float32), masks)["pixel_auroc"]
    with StreamedPixelMetrics(tmp_path) as s, pytest.raises(TypeError, match="float32 maps .* got float64"):
        s.add(maps.astype(np.float64), masks)
    bad = maps.astype(np.float32)
    bad[5, 2, 3] = np.nan
    with StreamedPixelMetrics(tmp_path) as s:
        s.add(bad[:4], masks[:4])
        with pytest.raises(NonFiniteScoreError, match=r"images 4 to 5 contain 1 non-finite .* index \(1, 2, 3\)"):
            s.add(bad[4:], masks[4:])
    assert list(tmp_path.iterdir()) == []  # the spill folders are gone


def test_masks_without_both_kinds_of_pixel_give_nan_with_a_warning(tmp_path):
    with pytest.warns(MetricWarning, match="pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro undefined"):
        got, _ = streamed(tmp_path, np.ones((2, 4, 4), np.float32), np.zeros((2, 4, 4), bool))
    assert list(got) == list(STREAMED) and all(np.isnan(v) for v in got.values())


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Four times the images: the in-memory pass holds about four times more, the streamed one the same."""
    rng = np.random.default_rng(2)

    def category(n):
        maps = rng.normal(size=(n, 32, 32)).astype(np.float32)
        masks = np.zeros(maps.shape, bool)
        masks[::2, 8:14, 8:14] = True
        return maps + masks, masks

    def stream(n):
        with StreamedPixelMetrics(tmp_path, budget=2000, chunk=4096) as s:
            for _ in range(n // 8):  # images made and added 8 at a time, as the engine's batches
                s.add(*category(8))
            s.result()

    small, large = peak_bytes(lambda: stream(64)), peak_bytes(lambda: stream(256))
    assert large < 1.1 * small
    in_small, in_large = (peak_bytes(lambda n=n: pixel_metrics(*category(n))) for n in (64, 256))
    assert in_large > 3.5 * in_small


def test_a_spill_scores_only_the_images_at_its_index(tmp_path):
    """Spill.pixel_metrics over the images at an index (one LOCO kind beside the good images) equals
    scikit-learn and the brute-force AU-PRO on those images alone."""
    from adbench.metrics.streaming import Spill, spill_array

    rng = np.random.default_rng(5)
    maps, masks = random_maps(rng, n=7, h=6, w=5, levels=11)
    on_disk = spill_array(tmp_path / "spill", maps.shape, np.float32)
    on_disk[:] = maps
    index = np.array([0, 2, 3, 6])
    got = Spill(tmp_path / "pass", 1).pixel_metrics(on_disk, masks, 0.3, index)
    y, s = masks[index].ravel(), maps[index].ravel().astype(np.float64)
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert got["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert got["pixel_aupro"] == pytest.approx(brute_aupro(maps[index], masks[index], 0.3), abs=1e-12)


def test_a_disk_too_full_for_the_spilled_arrays_is_said_before_any_page_is_written(tmp_path, monkeypatch):
    """The spilled maps' blocks are reserved first: a full disk is one clear error, not a bus error (SIGBUS,
    exit 135) when the mapping's first page is written."""
    import errno
    import os

    from adbench.atomic import DiskFullError
    from adbench.metrics import streaming

    held = streaming.spill_array(tmp_path, (3, 64, 64), np.float32)
    assert held.shape == (3, 64, 64) and not held.any()  # zeroed, reserved
    if hasattr(os, "posix_fallocate"):
        def full(fd, offset, length):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(streaming.os, "posix_fallocate", full)
        with pytest.raises(DiskFullError, match=r"Disk full in .*: the streamed metric pass needs 1 MiB there"):
            streaming.spill_array(tmp_path, (4, 256, 256), np.float32)
