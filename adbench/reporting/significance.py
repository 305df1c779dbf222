"""Marks for differences a reviewer can trust: which rows differ from a baseline method's on the same test
images, by DeLong's paired test (image AU-ROC, from the per-image scores every row keeps) and, where both rows
kept every map (``scoring.keep_maps``), a paired bootstrap over test images (pixel metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from adbench.errors import AdbenchError
from adbench.progress import progress_bar
from adbench.reporting.methods import bare_methods

SIGNIFICANT = "§"
ALPHA = 0.05


def significant(frame: pd.DataFrame, baseline: str) -> dict[str, set[Any]]:
    """Metric -> index labels of the rows that differ from ``baseline``'s on the same test images and seed:
    image AU-ROC by DeLong's paired test (p < ``ALPHA``; the per-image scores stored in the rows); the pixel
    metrics, where both rows kept every map (``scoring.keep_maps``), by a paired bootstrap over test images
    (``bootstrap.paired_bootstrap``: the difference's 95% interval excludes 0)."""
    from adbench.metrics.significance import delong

    if not frame["image_scores"].map(len).any():
        raise AdbenchError("--significance needs each test image's score (the image_scores column), which these "
                           "rows were written without (an older adbench): run them again to test differences")
    found: dict[str, set[Any]] = {"image_auroc": set()}
    groups = list(baseline_pairs(frame, baseline_method(baseline, frame)))
    with progress_bar() as bar:
        task = bar.add_task("significance", total=len(groups))
        for ref, others in groups:
            bar.update(task, advance=1)
            if ref is None:
                continue
            ref_ranking = None
            for i, row in others.iterrows():
                labels = np.asarray(row["image_labels"])
                if len(labels) and same_images(row, ref):
                    test = delong(np.asarray(row["image_scores"]), np.asarray(ref["image_scores"]), labels)
                    found["image_auroc"] |= {i} if test.p < ALPHA else set()
                if kept_maps(row) and kept_maps(ref):
                    ref_ranking = ref_ranking or ranking(ref)
                    exact = all(r["aupro_impl"] == "exact" for r in (row, ref))
                    for key, interval in bootstrap(ranking(row), ref_ranking, exact).items():
                        found.setdefault(key, set()).update({i} if interval.significant else set())
    return found


def baseline_pairs(frame: pd.DataFrame, baseline: str) -> Iterator[tuple[pd.Series | None, pd.DataFrame]]:
    """Per dataset, category and seed: the ``baseline`` method's row there (None where it has none) and the other
    methods' rows, which are tested against it."""
    for _, group in frame.assign(_method=bare_methods(frame)).groupby(["dataset", "category", "seed"], sort=False):
        reference = group[group["_method"] == baseline]
        yield (None if reference.empty else reference.iloc[0]), group[group["_method"] != baseline]


def same_images(row: pd.Series, ref: pd.Series) -> bool:
    """Whether two rows were scored on the same test images (the same labels, in order)."""
    return np.array_equal(np.asarray(row["image_labels"]), np.asarray(ref["image_labels"]))


def baseline_method(given: str, frame: pd.DataFrame) -> str:
    """The method ``--significance`` names: a method label as the per-category layout shows it, or a scorer
    label (``osd_irf_mean(t=500)``, or as the layout shows the scorer) that only one method has."""
    bare = bare_methods(frame)
    methods = list(dict.fromkeys(bare))
    if given in methods:
        return given
    scored = set(bare[frame["scorer_label"] == given]) | {m for m in methods if m.split(" / ")[0] == given}
    if len(scored) == 1:
        return scored.pop()
    which = f"names {len(scored)} methods ({', '.join(sorted(scored))}): give one" if scored else "no such method"
    raise AdbenchError(f"--significance {given!r}: {which}; choose from {', '.join(methods)}")


def kept_maps(row: pd.Series) -> bool:
    return bool(row["all_maps_file"])


def ranking(row: pd.Series) -> Any:
    """The pixel ranking of a row's every kept map (``scoring.keep_maps``), for the bootstrap."""
    from adbench.metrics.bootstrap import Ranking
    from adbench.reporting.methods import row_file

    path = row_file(row, "all_maps_file")
    try:
        with np.load(path) as data:
            return Ranking(data["maps"], data["masks"], float(row["pro_limit"]))
    except (OSError, KeyError, ValueError) as exc:
        raise AdbenchError(f"{path}: the maps {row['scorer_label']} kept for {row['category']} cannot be read "
                           f"({exc}); run that cell again with scoring.keep_maps, or leave out --significance"
                           ) from None


def bootstrap(a: Any, b: Any, exact_aupro: bool) -> dict[str, Any]:
    """``paired_bootstrap`` of two rankings (AU-PRO only where both rows report the exact one, which is what it
    resamples); none when their test sets differ (they are not paired)."""
    from adbench.metrics.bootstrap import paired_bootstrap

    try:
        tests = paired_bootstrap(a, b)
    except ValueError:
        return {}
    return tests if exact_aupro else {k: v for k, v in tests.items() if k != "pixel_aupro"}


def significance_note(baseline: str, frame: pd.DataFrame) -> str:
    """What the ``SIGNIFICANT`` mark means, naming the bootstrap where rows kept their maps for it."""
    from adbench.metrics.bootstrap import CONFIDENCE, DRAWS

    text = (f"{SIGNIFICANT} differs from {baseline_method(baseline, frame)}'s on the same test images, in every "
            "seed: image AU-ROC by "
            f"DeLong's paired test (p < {ALPHA:g})")
    if frame["all_maps_file"].astype(bool).any():
        text += (f"; pixel metrics by a paired bootstrap over test images ({DRAWS} draws, the anomalous and the "
                 f"normal images resampled apart; the difference's {CONFIDENCE:.0%} percentile interval excludes 0)")
    untested = untested_rows(frame, baseline_method(baseline, frame))
    if untested:
        text += (f". Not tested: {len(untested)} row(s) with no row of that method on the same category and seed, "
                 "or scored on other test images")
    return text + "."


def untested_rows(frame: pd.DataFrame, baseline: str) -> list[Any]:
    """The rows of other methods that ``significant`` cannot test against ``baseline``: none of its rows on the
    same dataset, category and seed, or one scored on other test images (other labels)."""
    return [i for ref, others in baseline_pairs(frame, baseline) for i, row in others.iterrows()
            if ref is None or not same_images(row, ref)]
