"""Metrics against scikit-learn and a brute-force AU-PRO on random data with ties."""

import warnings

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from adbench.metrics import MetricWarning, NonFiniteScoreError, image_metrics, mad, metric_keys, pixel_metrics
from adbench.metrics.pro import aupro_mvtec3d


def sklearn_f1max(y, s):
    p, r, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0)
    return f1.max()


def brute_aupro(maps, masks, limit=0.3, regions=None):
    """Direct definition: every distinct threshold, each region's overlap, trapezoid + interpolation.
    ``regions``: (image index, boolean mask) pairs; by default the 8-connected components."""
    if regions is None:
        regions = []
        for i, m in enumerate(masks):
            lab, n = ndimage.label(m, structure=np.ones((3, 3)))
            regions += [(i, lab == k) for k in range(1, n + 1)]
    neg = ~masks
    fprs, pros = [0.0], [0.0]
    for thr in np.unique(maps)[::-1]:
        pred = maps >= thr
        fprs.append((pred & neg).sum() / neg.sum())
        pros.append(np.mean([(pred[i] & r).sum() / r.sum() for i, r in regions]))
    return area_to_limit(fprs + [1.0], pros + [pros[-1]], limit)


def area_to_limit(fprs, ys, limit):
    """The trapezoid area under the points (FPR ascending) up to ``limit`` (interpolated there), over ``limit``."""
    area = 0.0
    for k in range(1, len(fprs)):
        x0, x1, y0, y1 = fprs[k - 1], fprs[k], ys[k - 1], ys[k]
        if x0 >= limit:
            break
        if x1 > limit:
            y1, x1 = y0 + (limit - x0) / (x1 - x0) * (y1 - y0), limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def random_maps(rng, n=6, h=12, w=12, levels=7):
    masks = np.zeros((n, h, w), bool)
    for i in range(1, n):
        for _ in range(rng.integers(1, 3)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            masks[i, y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
    # few levels -> many ties within and across positives and negatives
    maps = rng.integers(0, levels, (n, h, w)).astype(np.float32) + masks * rng.integers(0, 3, (n, h, w))
    return maps.astype(np.float32), masks


@pytest.mark.parametrize("seed", range(8))
def test_image_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 10, 60).astype(np.float64) + labels * rng.random(60)
    m = image_metrics(scores, labels)
    assert m["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["image_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["image_f1max"] == pytest.approx(sklearn_f1max(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_negatives_tied_with_the_lowest_and_highest_positive_and_beyond_them(seed):
    """The ends of the positives' range: negatives equal to the lowest or the highest positive score, below
    and above them all, counted as scikit-learn counts them (random data rarely ties at the ends)."""
    rng = np.random.default_rng(seed)
    pos = rng.integers(2, 8, 30).astype(np.float32)
    neg = rng.integers(0, 10, 50).astype(np.float32)
    pos[:2], neg[:4] = (2, 7), (2, 7, 0, 9)  # lo = 2, hi = 7; a negative at each, one below, one above
    scores, labels = np.concatenate([pos, neg]), np.r_[np.ones(30, int), np.zeros(50, int)]
    m = image_metrics(scores, labels)
    assert m["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["image_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["image_f1max"] == pytest.approx(sklearn_f1max(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_pixel_metrics_match_sklearn_and_brute_force_pro(seed):
    rng = np.random.default_rng(100 + seed)
    maps, masks = random_maps(rng, levels=3 + seed)
    m = pixel_metrics(maps, masks)
    y, s = masks.ravel(), maps.ravel()
    assert m["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["pixel_f1max"] == pytest.approx(sklearn_f1max(y, s), abs=1e-12)
    for limit in (0.3, 0.05, 1.0):
        got = pixel_metrics(maps, masks, pro_limit=limit)["pixel_aupro"]
        assert got == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-12)


def test_continuous_scores_and_regions_never_merge_across_images():
    rng = np.random.default_rng(7)
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:5, 2:5] = masks[1, 2:5, 2:5] = True  # same place in two images: two regions
    masks[1, 7, 7] = True  # a single pixel touching nothing: third region
    maps = rng.random((2, 8, 8)).astype(np.float32) + masks
    assert pixel_metrics(maps, masks)["pixel_aupro"] == pytest.approx(brute_aupro(maps, masks), abs=1e-12)


def test_monotonic_transform_changes_nothing():
    rng = np.random.default_rng(3)
    maps, masks = random_maps(rng, levels=20)
    maps = maps + rng.random(maps.shape).astype(np.float32)
    labels = masks.any(axis=(1, 2)).astype(int)
    scores = maps.max(axis=(1, 2)).astype(np.float64)
    before = {**image_metrics(scores, labels), **pixel_metrics(maps, masks)}
    after = {**image_metrics(np.exp(scores) * 3 - 1, labels),
             **pixel_metrics(np.exp(maps.astype(np.float64)) * 3 - 1, masks)}
    assert after == pytest.approx(before, abs=1e-12)


def test_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    m = image_metrics(np.array([0.1, 0.2, 0.8, 0.9]), labels)
    assert m == {"image_auroc": 1.0, "image_ap": 1.0, "image_f1max": 1.0}
    assert image_metrics(np.array([0.9, 0.8, 0.2, 0.1]), labels)["image_auroc"] == 0.0


def test_degenerate_inputs_give_nan_with_warning():
    with pytest.warns(MetricWarning, match=r"^image_auroc, image_ap, image_f1max undefined: the test set needs both "
                                           r"normal and anomalous images; reported as NaN\.$"):
        m = image_metrics(np.array([0.1, 0.5]), np.array([0, 0]))
    assert all(np.isnan(v) for v in m.values())
    with pytest.warns(MetricWarning, match=r"^pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro undefined: the masks "
                                           r"need both anomalous and normal pixels; reported as NaN\.$"):
        m = pixel_metrics(np.ones((2, 4, 4)), np.zeros((2, 4, 4), bool))
    assert all(np.isnan(v) for v in m.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(mad({**m, "image_auroc": 1, "image_ap": 1, "image_f1max": 1}))


def test_non_finite_scores_are_named():
    with pytest.raises(NonFiniteScoreError, match=r"Image scores contain 1 non-finite.*index \(1,\)"):
        image_metrics(np.array([0.1, np.nan, 0.3]), np.array([0, 1, 1]))
    maps = np.zeros((2, 3, 3))
    maps[1, 2, 0] = np.inf
    with pytest.raises(NonFiniteScoreError, match=r"^Anomaly maps contain 1 non-finite.*\(1, 2, 0\)"):
        pixel_metrics(maps, maps > 0)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="equal"):
        pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))
    with pytest.raises(ValueError, match="1-D"):
        image_metrics(np.zeros((3, 2)), np.ones((3, 2)))  # equal shapes, but not one score per image
    maps, masks = np.random.default_rng(0).random((2, 4, 4)), np.eye(4, dtype=bool)[None].repeat(2, 0)
    for limit in (0.0, 1.5):
        with pytest.raises(ValueError, match="pro_limit"):
            pixel_metrics(maps, masks, pro_limit=limit)
    assert pixel_metrics(maps, masks, pro_limit=1.0)["pixel_aupro"] == pytest.approx(
        brute_aupro(maps, masks, limit=1.0), abs=1e-12)


def test_a_single_normal_pixel_is_enough():
    maps = np.array([[[0.2, 0.9], [0.4, 0.6]]])
    masks = np.array([[[False, True], [True, True]]])  # one normal pixel, scored 0.2: below every positive
    m = pixel_metrics(maps, masks)
    assert (m["pixel_auroc"], m["pixel_ap"], m["pixel_f1max"], m["pixel_aupro"]) == (1.0, 1.0, 1.0, 1.0)


def test_integration_interpolates_at_the_limit_by_hand():
    from adbench.metrics.pro import integrate_to

    x, y = np.array([0.0, 0.1, 0.2, 0.5]), np.array([0.0, 0.2, 0.4, 1.0])
    # 0.1 * (0 + 0.2) / 2 + 0.1 * (0.2 + 0.4) / 2, then to 0.3 where y = 0.4 + 0.6 / 3 = 0.6
    assert integrate_to(x, y, 0.3) == pytest.approx(0.01 + 0.03 + 0.1 * (0.4 + 0.6) / 2, abs=1e-15)
    assert integrate_to(x, y, 0.2) == pytest.approx(0.04, abs=1e-15)  # the limit on a point
    assert integrate_to(x[:2], y[:2], 0.8) == pytest.approx(0.01, abs=1e-15)  # no extrapolation past the last x


def test_parallel_chunked_path_matches_sklearn(monkeypatch):
    import adbench.metrics.ranking as ranking

    monkeypatch.setattr(ranking, "PARALLEL_SORT_MIN", 10)
    rng = np.random.default_rng(11)
    maps, masks = random_maps(rng, n=5, h=16, w=16, levels=9)
    m = pixel_metrics(maps, masks)
    assert m["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert m["pixel_aupro"] == pytest.approx(brute_aupro(maps, masks), abs=1e-12)


def test_aupro_regions_are_8_connected():
    """A diagonal line of pixels is one defect, not four: regions listed by hand."""
    masks = np.zeros((2, 8, 8), bool)
    diagonal, block = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    diagonal[[1, 2, 3, 4], [1, 2, 3, 4]] = True
    block[5:7, 5:7] = True
    masks[1] = diagonal | block
    maps = np.random.default_rng(3).integers(0, 6, (2, 8, 8)).astype(np.float32)
    maps[1][diagonal] = [9, 2, 3, 1]  # one diagonal pixel found early, the rest late
    maps[1][block] = 4
    hand = [(1, diagonal), (1, block)]
    got = pixel_metrics(maps, masks)["pixel_aupro"]
    assert got == pytest.approx(brute_aupro(maps, masks, regions=hand), abs=1e-12)
    four_connected = [(1, diagonal & (np.arange(8)[:, None] == k)) for k in range(1, 5)] + [(1, block)]
    assert abs(brute_aupro(maps, masks, regions=four_connected) - got) > 0.01  # the test can tell them apart


def test_a_registered_metric_reaches_rows_tables_plots_and_objectives(monkeypatch, tmp_path):
    """Adding a metric is one row in the metric table: image_metrics computes it, tables and plots show it,
    studies accept it as an objective, and mAD stays the mean of the papers' seven."""
    from adbench.engine.study import load_study
    from adbench.metrics import table
    from adbench.reporting import plots
    from adbench.reporting.tables import markdown_table
    from tests.test_report import fake_rows

    monkeypatch.setattr(table, "METRICS", list(table.METRICS))  # registration undone after the test
    table.register_metric(table.Metric("image_pos_share", "Pos", level="image", in_mad=False,
                                       compute=lambda r: r.curve.n_pos / (r.curve.n_pos + r.curve.n_neg)))
    with pytest.raises(ValueError, match="already in the table"):
        table.register_metric(table.Metric("mad", "x", compute=lambda r: 0.0))
    got = image_metrics(np.array([0.1, 0.9, 0.8, 0.3, 0.7]), np.array([0, 1, 1, 0, 0]))
    assert got["image_pos_share"] == 2 / 5 and len(got) == 4
    seven = dict(zip(["image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max",
                      "pixel_aupro"], [0.9, 0.5, 0.7, 0.95, 0.3, 0.4, 0.8], strict=True))
    assert mad({**seven, "image_pos_share": 0.0}) == pytest.approx(np.mean([0.9, 0.5, 0.7, 0.95, 0.3, 0.4, 0.8]))

    frame = fake_rows().assign(image_pos_share=0.25)
    assert "| I-F1max | Pos | P-AUROC |" in markdown_table(frame) and "| **25.0 ± 0.0** |" in markdown_table(frame)
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or [path])
    plots.plot_metrics_vs(frame, "t", tmp_path / "vs_t")
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_visible()]
    assert titles == ["I-AUROC", "I-AP", "I-F1max", "Pos", "P-AUROC", "P-AP", "P-F1max", "AU-PRO", "mAD"]

    study = tmp_path / "s.yaml"
    study.write_text("name: s\nobjective: image_pos_share\nspace: {scorer.t: {type: int, low: 1, high: 9}}\n"
                     "base: {scoring: {scorers: [{name: osd_irf_mean}]}}\n")
    assert load_study(study).objective == "image_pos_share"


def mvtec_official_aupro(maps, masks, limit=0.3):
    """The MVTec AD evaluation's algorithm, re-implemented from its description: every pixel sorted by score
    (descending), cumulative FPR and PRO changes, the last point of each run of equal scores kept, the curve
    closed at (0, 0) and (1, 1), the trapezoid up to ``limit`` with linear interpolation there."""
    structure = np.ones((3, 3), dtype=int)
    fp_change, pro_change, n_ok, n_regions = np.zeros(maps.shape), np.zeros(maps.shape), 0, 0
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure)
        n_regions += n
        fp_change[i][labelled == 0] = 1
        n_ok += int((labelled == 0).sum())
        for k in range(1, n + 1):
            pro_change[i][labelled == k] = 1.0 / (labelled == k).sum()
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fprs = np.cumsum(fp_change.ravel()[order]) / n_ok
    pros = np.cumsum(pro_change.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)
    x = np.concatenate([[0.0], np.minimum(fprs[keep], 1), [1.0]])
    y = np.concatenate([[0.0], np.minimum(pros[keep], 1), [1.0]])
    inside = x <= limit
    area = np.sum((x[inside][1:] - x[inside][:-1]) * (y[inside][1:] + y[inside][:-1]) / 2)
    k = int(inside.sum())
    if k < len(x) and x[k - 1] < limit:
        y_at = y[k - 1] + (y[k] - y[k - 1]) * (limit - x[k - 1]) / (x[k] - x[k - 1])
        area += (limit - x[k - 1]) * (y[k - 1] + y_at) / 2
    return area / limit


@pytest.mark.parametrize("levels", [None, 256, 16])
def test_aupro_equals_the_mvtec_evaluations_algorithm_with_ties_too(levels):
    """Issue 30 asked whether the official algorithm treats tied scores as steps: it keeps the last point of each
    run of equal scores and joins the points by straight lines, the ROC diagonal adbench follows, so both agree
    on continuous and on quantised maps (uint8, 16 levels)."""
    rng = np.random.default_rng(3)
    masks = np.zeros((12, 40, 40), bool)
    for i in range(6):
        y, x = rng.integers(2, 30, 2)
        masks[i, y:y + rng.integers(3, 9), x:x + rng.integers(3, 9)] = True
    maps = rng.random(masks.shape) + 0.7 * masks
    if levels:
        maps = np.floor((maps - maps.min()) / np.ptp(maps) * (levels - 1))
    for limit in (0.05, 0.3, 1.0):
        assert pixel_metrics(maps, masks, limit)["pixel_aupro"] == pytest.approx(
            mvtec_official_aupro(maps, masks, limit), abs=1e-12)


def brute_delong(a, b, labels):
    """DeLong's test from its definition: each structural component by comparing every positive with every
    negative (psi = 1, 1/2 or 0), the AU-ROCs' covariance matrix from those, z and two-sided p."""
    from scipy.stats import norm

    pos, neg = labels.astype(bool), ~labels.astype(bool)

    def psi(x, y):
        return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])

    v10 = np.array([psi(s[pos], s[neg]).mean(axis=1) for s in (a, b)])  # 2 x m
    v01 = np.array([psi(s[pos], s[neg]).mean(axis=0) for s in (a, b)])  # 2 x n
    cov = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = (v10[0].mean() - v10[1].mean()) / se
    return v10[0].mean(), v10[1].mean(), se, z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("seed", range(4))
def test_delong_matches_its_definition_and_sklearn_with_ties(seed):
    from adbench.metrics.significance import delong

    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(23, int), np.zeros(31, int)]
    a = np.round(rng.normal(labels * 1.0, 1.0), 1)  # rounded: ties within and across the classes
    b = np.round(0.6 * a + rng.normal(labels * 0.3, 0.8), 1)  # correlated with a, as two methods on one set are
    got = delong(a, b, labels)
    auc_a, auc_b, se, z, p = brute_delong(a, b, labels)
    assert (got.auroc_a, got.auroc_b) == pytest.approx((roc_auc_score(labels, a), roc_auc_score(labels, b)), abs=1e-12)
    assert (got.auroc_a, got.auroc_b, got.std_error, got.z, got.p) == pytest.approx((auc_a, auc_b, se, z, p), abs=1e-12)


def test_delong_on_one_ranking_finds_no_difference_and_refuses_too_few_images():
    from adbench.metrics.significance import delong

    labels = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.4, 0.5, 0.1, 0.2])
    same = delong(scores, 2 * scores + 1, labels)  # a monotone transform: the same ranking
    assert (same.difference, same.p) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least 2 anomalous and 2 normal"):
        delong(scores[1:], scores[1:], labels[1:])


def brute_aupimo(maps, masks, bounds=(1e-5, 1e-4)):
    """AUPIMO from its definition: at every distinct score of the set, the shared FPR as the mean over the
    normal images of each one's share of pixels >= it, each anomalous image's TPR, the points joined by straight
    lines in log(FPR) (points at FPR 0 left out), the area between the bounds (interpolated there) over
    log(high / low)."""
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    normals = maps[~anomalous]
    results = []
    for amap, mask in zip(maps[anomalous], masks[anomalous], strict=True):
        points = []
        for t in np.unique(maps)[::-1]:
            fpr = np.mean([(m >= t).mean() for m in normals])
            if fpr > 0:
                points.append((np.log(fpr), (amap[mask] >= t).mean()))
            if fpr > bounds[1]:  # one point past the upper bound is the last one the area needs
                break
        lo, hi, area = np.log(bounds[0]), np.log(bounds[1]), 0.0
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
            a, b = max(x0, lo), min(x1, hi)
            if b <= a:
                continue
            ya = y0 + (y1 - y0) * (a - x0) / (x1 - x0)
            yb = y0 + (y1 - y0) * (b - x0) / (x1 - x0)
            area += (b - a) * (ya + yb) / 2
        results.append(area / (hi - lo))
    return np.array(results)


@pytest.mark.parametrize(("levels", "bounds"), [(None, (1e-3, 1e-2)), (4000, (1e-3, 1e-2))])
def test_aupimo_matches_its_definition_per_anomalous_image(levels, bounds):
    """Bounds the 12,800 normal pixels here can reach (each score level of the quantised maps holds about 3 of
    them, an FPR step of 2.5e-4); the default (1e-5, 1e-4) needs 100,000 normal pixels at least."""
    from adbench.metrics.pimo import aupimo, aupimo_per_image

    rng = np.random.default_rng(5)
    masks = np.zeros((14, 40, 40), bool)  # images 6 to 13 are normal
    for i in range(6):
        y, x = rng.integers(2, 24, 2)
        masks[i, y:y + rng.integers(4, 15), x:x + rng.integers(4, 15)] = True
    maps = rng.random(masks.shape) + 0.15 * masks * rng.random(masks.shape)
    if levels:
        maps = np.floor(maps * levels) / levels  # ties within and across normal and anomalous pixels
    got = aupimo_per_image(maps, masks, bounds, "exact")
    assert got == pytest.approx(brute_aupimo(maps, masks, bounds), abs=1e-12) and len(got) == 6
    assert aupimo(maps, masks, bounds, "exact") == pytest.approx(got.mean(), abs=1e-15)
    assert 0 < got.min() < got.max() < 1
    assert np.isnan(aupimo(maps, masks))  # 12,800 normal pixels cannot reach an FPR of 1e-5: undefined, not 0


def reference_aupimo(maps, masks, bounds=(1e-5, 1e-4), n_thresholds=300_000):
    """AUPIMO as the reference implementations compute it (aupimo's pimo_numpy.aupimo_scores, anomalib's
    metrics/pimo), restated: thresholds evenly spaced over the normal images' scores in their precision, the
    shared FPR the mean of the normal images' FPRs (pixels >= the threshold), each image's TPR, the thresholds
    whose FPR is nearest each bound, the trapezoid over log(FPR) between them, over log(high / low), clipped."""
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    normals = maps[~anomalous]
    thresholds = np.linspace(normals.min(), normals.max(), n_thresholds, dtype=maps.dtype)
    fpr = np.mean([[(m >= t).mean() for t in thresholds] for m in normals], axis=0)
    upper, lower = (int(np.argmin(np.abs(fpr - b))) for b in bounds)  # thresholds ascend, FPR descends
    x = np.log(fpr[lower:upper + 1][::-1])
    tpr = np.array([[(a[m] >= t).mean() for t in thresholds[lower:upper + 1][::-1]]
                    for a, m in zip(maps[anomalous], masks[anomalous], strict=True)])
    return np.clip(np.trapezoid(tpr, x, axis=1) / np.log(bounds[1] / bounds[0]), 0, 1)


def test_aupimo_by_default_is_the_reference_implementations(monkeypatch):
    """Between the FPRs of the reference's grid nearest the bounds, not the bounds themselves (its 300,000
    thresholds here 3,000: over the maps' 1,000 levels, 3 a level, so the grid passes every step of the curve
    and its trapezoid is the curve itself: equal to float rounding)."""
    from adbench.metrics import pimo
    from adbench.metrics.pimo import aupimo, aupimo_per_image

    rng = np.random.default_rng(7)
    masks = np.zeros((14, 40, 40), bool)
    for i in range(6):
        y, x = rng.integers(2, 24, 2)
        masks[i, y:y + rng.integers(4, 15), x:x + rng.integers(4, 15)] = True
    maps = (np.floor((rng.random(masks.shape) + 0.15 * masks * rng.random(masks.shape)) * 1000) / 1000)
    maps = maps.astype(np.float32)
    bounds = (1e-2, 1e-1)  # the top level holds about 13 of the 12,800 normal pixels: an FPR of 1e-3
    monkeypatch.setattr(pimo, "REFERENCE_THRESHOLDS", 3000)
    got = aupimo_per_image(maps, masks, bounds)
    expected = reference_aupimo(maps, masks, bounds, 3000)
    assert got == pytest.approx(expected, abs=1e-12) and len(got) == 6
    exact = aupimo_per_image(maps, masks, bounds, "exact")
    assert np.abs(exact - got).min() > 4e-5  # the bounds rule is the difference (here 5e-5 to 1e-4 an image)
    assert np.isnan(aupimo(maps, masks))  # a bound no FPR of the grid reaches: the reference refuses, NaN here


def test_optional_metrics_are_computed_only_when_asked_and_never_in_mad():
    from adbench.metrics import optional_metrics
    from adbench.metrics.pimo import aupimo

    rng = np.random.default_rng(1)
    masks = np.zeros((20, 100, 100), bool)  # 14 normal images: 140,000 pixels reach an FPR of 1e-5
    masks[:6, 10:30, 12:32] = True
    maps = rng.random(masks.shape) + 0.3 * masks
    plain = pixel_metrics(maps, masks)
    asked = pixel_metrics(maps, masks, extra=("pixel_aupimo", "pixel_aupimo_exact"))
    assert "pixel_aupimo" not in plain and [m.key for m in optional_metrics()] == [
        "pixel_aupimo", "pixel_aupimo_exact", "pixel_miou_max", "pixel_segf1",
        *(f"pixel_auspro_{p}pct" for p in (1, 5, 10, 30, 100))]
    assert asked["pixel_aupimo"] == aupimo(maps, masks) and 0 < asked["pixel_aupimo"] < 1
    # the default FPR bounds are AUPIMO's published ones, 1e-5 to 1e-4
    assert asked["pixel_aupimo_exact"] == pytest.approx(brute_aupimo(maps, masks, (1e-5, 1e-4)).mean(), abs=1e-12)
    assert {k: asked[k] for k in plain} == plain
    assert mad({**plain, **dict.fromkeys(metric_keys("image"), 0.5), "pixel_aupimo": 0.0}) == pytest.approx(
        np.mean([0.5] * 3 + [plain[k] for k in metric_keys("pixel")]), abs=1e-15)  # AUPIMO not in mAD


def test_miou_max_by_hand_and_against_aders_formula():
    """ADer: maps min-max normalised together, IoU of (norm > th) over the category at th = 0, 0.05, ..., 1."""
    from adbench.metrics.segmentation import miou_max

    maps = np.array([[[0, 0.6], [1, 0.3]], [[0.8, 0.1], [0.1, 0.1]]])  # image 2 is normal
    masks = np.array([[[0, 1], [1, 0]], [[0, 0], [0, 0]]], bool)
    # th 0.3 to 0.55 keeps 0.6, 1 and the normal 0.8: intersection 2, union 3, the best of the 21 thresholds
    assert miou_max(maps, masks) == pytest.approx(2 / (3 + 1e-8), abs=1e-15)
    assert miou_max(7 * maps + 3, masks) == pytest.approx(2 / (3 + 1e-8), abs=1e-15)  # normalised first
    assert np.isnan(miou_max(np.ones_like(maps), masks))
    rng = np.random.default_rng(4)
    for levels in (5, 40, None):
        maps, masks = random_maps(rng, levels=levels or 7)
        maps = maps if levels else maps + rng.random(maps.shape).astype(np.float32)
        norm = (maps - maps.min()) / (maps.max() - maps.min())
        ious = [np.logical_and(masks, norm > th).sum() / (np.logical_or(masks, norm > th).sum() + 1e-8)
                for th in np.arange(0.0, 1.0 + 1e-3, 0.05)]
        assert miou_max(maps, masks) == pytest.approx(max(ious), abs=1e-12)


def brute_auspro(maps, regions, limit):
    """sPRO from its definition at every distinct threshold: FPR over every pixel outside all defects of its
    image (MVTec LOCO's evaluation: anomalous images' background included), each region min(overlap /
    saturation, 1), averaged; the polyline's area up to the limit (interpolated there)."""
    defect_free = np.ones(maps.shape, bool)
    for r in regions:
        defect_free[r.image] &= ~r.mask
    neg = maps[defect_free]
    fprs, spros = [0.0], [0.0]
    for thr in np.unique(maps)[::-1]:
        fprs.append((neg >= thr).mean())
        spros.append(np.mean([min(((maps[r.image] >= thr) & r.mask).sum() / r.saturation, 1) for r in regions]))
    return area_to_limit(fprs + [1.0], spros + [spros[-1]], limit)


def test_auspro_counts_false_alarms_on_the_background_of_anomalous_images():
    """Three anomalous 2 x 2 images, each a found defect (0.5) and a false alarm on its own background (1.0),
    beside one good image of zeros: 3 of the 13 defect-free pixels fire before any defect is found, so sPRO
    jumps from 0 to 1 at FPR 3/13; AU-sPRO is (limit - 3/13) / limit, 0 below 3/13 (over the good image's
    pixels alone it would be 1 at every limit)."""
    from adbench.data.base import DefectRegion

    maps, regions = np.zeros((4, 2, 2)), []
    for i in range(3):
        maps[i, 0, 0], maps[i, 1, 1] = 0.5, 1.0
        mask = np.zeros((2, 2), bool)
        mask[0, 0] = True
        regions.append(DefectRegion(i, mask, 1.0))
    masks = np.zeros(maps.shape, bool)
    masks[:3, 0, 0] = True
    keys = ("pixel_auspro_5pct", "pixel_auspro_30pct", "pixel_auspro_100pct")
    got = pixel_metrics(maps, masks, extra=keys, regions=regions)
    assert got["pixel_auspro_5pct"] == 0.0
    assert got["pixel_auspro_30pct"] == pytest.approx(1 - (3 / 13) / 0.3, abs=1e-12)
    assert got["pixel_auspro_100pct"] == pytest.approx(10 / 13, abs=1e-12)


@pytest.mark.parametrize("levels", [4, 9, None])
def test_auspro_matches_its_definition_with_saturation_ties_and_overlapping_regions(levels):
    from adbench.data.base import DefectRegion

    rng = np.random.default_rng(levels or 0)
    maps = rng.random((7, 10, 10))
    if levels:
        maps = np.floor(maps * levels) / levels  # ties within and across regions and normal pixels
    regions = []
    for i in range(4):  # images 4 to 6 are normal
        for _ in range(2):
            mask = np.zeros((10, 10), bool)
            y, x = rng.integers(0, 6, 2)
            mask[y:y + rng.integers(2, 5), x:x + rng.integers(2, 5)] = True  # two regions may overlap
            maps[i][mask] += 0.3 * rng.random(int(mask.sum()))
            saturation = [float(mask.sum()), 0.5 * mask.sum(), min(3.0, mask.sum())][rng.integers(0, 3)]
            regions.append(DefectRegion(i, mask, saturation))
    masks = np.zeros(maps.shape, bool)
    for r in regions:
        masks[r.image] |= r.mask
    keys = [f"pixel_auspro_{p}pct" for p in (1, 5, 10, 30, 100)]
    got = pixel_metrics(maps, masks, extra=tuple(keys), regions=regions)
    for key, limit in zip(keys, (0.01, 0.05, 0.1, 0.3, 1.0), strict=True):
        assert got[key] == pytest.approx(brute_auspro(maps, regions, limit), abs=1e-12), key
    full = [DefectRegion(r.image, r.mask, float(r.mask.sum())) for r in regions]
    assert 0 < pixel_metrics(maps, masks, extra=(keys[3],), regions=full)[keys[3]] < got[keys[3]]  # saturation helps
    with pytest.raises(ValueError, match="AU-sPRO needs the dataset's defect regions"):
        pixel_metrics(maps, masks, extra=(keys[1],))


def test_seg_f1_at_a_threshold_from_normal_images_by_hand():
    from adbench.metrics.segmentation import normal_threshold, seg_f1

    normals = np.array([[[1.0, 3.0], [1.0, 3.0]]])  # mean 2, population std 1
    assert normal_threshold(normals) == 5.0 and normal_threshold(normals, k=1) == 3.0
    maps = np.array([[[6, 5], [9, 1]], [[7, 0], [0, 0]]], np.float32)  # > 5: (0,0,0), (0,1,0), (1,0,0)
    masks = np.array([[[1, 1], [1, 0]], [[0, 0], [0, 0]]], bool)
    # TP 2 ((0,0,0), (0,1,0)), FP 1 ((1,0,0)), FN 1 ((0,0,1): 5 is not > 5): F1 = 4 / (4 + 2)
    assert seg_f1(maps, masks, 5.0) == pytest.approx(4 / 6, abs=1e-15)
    assert seg_f1(maps, np.zeros_like(masks), 10.0) == 1.0  # nothing to find, nothing found
    rng = np.random.default_rng(2)
    maps, masks = random_maps(rng, levels=50)
    t = 20.5
    y, p = masks.ravel(), maps.ravel() > t
    from sklearn.metrics import f1_score

    assert pixel_metrics(maps, masks, extra=("pixel_segf1",), seg_threshold=t)["pixel_segf1"] == pytest.approx(
        f1_score(y, p), abs=1e-15)
    with pytest.raises(ValueError, match="SegF1 needs a threshold from held-out normal images"):
        pixel_metrics(maps, masks, extra=("pixel_segf1",))


@pytest.mark.parametrize("levels", [None, 256, 16])
def test_mvtec3d_aupro_equals_mvtec3d_ads_code_as_adeval_ships_it(levels):
    """``aupro_impl: mvtec3d`` against MVTec 3D-AD's ``calculate_au_pro`` (adeval's copy): the same curve, with
    tied normal scores as steps, so it differs from the exact AU-PRO most on quantised maps."""
    au_pro = pytest.importorskip("adeval.au_pro")
    rng = np.random.default_rng(levels or 0)
    maps, masks = random_maps(rng, n=8, h=20, w=20, levels=7)
    maps = maps + rng.normal(0, 1, maps.shape)
    if levels:
        maps = np.round((maps - maps.min()) / (maps.max() - maps.min()) * (levels - 1))
    maps = maps.astype(np.float32)
    for limit, n in ((0.3, 100), (0.05, 1000), (1.0, 7)):
        reference = au_pro.calculate_au_pro(list(masks.astype(np.uint8)), list(maps), limit, n)[0]
        assert aupro_mvtec3d(maps, masks, limit, n) == pytest.approx(reference, abs=1e-12)
    got = pixel_metrics(maps, masks, aupro_impl="mvtec3d")["pixel_aupro"]
    assert got == pytest.approx(au_pro.calculate_au_pro(list(masks.astype(np.uint8)), list(maps))[0], abs=1e-12)
    with pytest.raises(ValueError, match=r"aupro_impl must be one of \('exact', 'mvtec3d'\), got 'steps'"):
        pixel_metrics(maps, masks, aupro_impl="steps")
