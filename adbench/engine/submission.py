"""MVTec AD 2's private test sets, scored without labels and written in the layout its evaluation server
takes (that of MVTec's public evaluation code).

One folder per method (a cell's config without its category), ``submission-<key>/`` in the run folder:
``anomaly_images/<category>/<split>/<stem>.tiff``, the pixel map resized bilinearly to the image's own
size, float16; ``anomaly_images_thresholded/<category>/<split>/<stem>.png``, 255 where that float16 map
is > the cell's SegF1 threshold (mean + 3 std of the held-out normals' pixel scores), else 0; for the
splits ``test_private`` and ``test_private_mixed``. Pack the folder's two subfolders to upload them.
MVTec's ``check_and_prepare_data_for_upload.py`` and its server take a submission only when all eight
objects are in it: ``incomplete`` names what a folder still lacks (a run over some objects warns; run the
others into the same folder, e.g. ``--resume``, before packing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from adbench.atomic import atomic_write, make_dir
from adbench.data.base import Sample, image_size_of
from adbench.data.mvtec import AD2_OBJECTS, AD2_PRIVATE
from adbench.engine.build import cell_config
from adbench.engine.keys import cell_key
from adbench.engine.preflight import require_tifffile

if TYPE_CHECKING:
    from adbench.engine.context import Context, EvalSet

def submission_folder(ctx: Context, spec: dict[str, Any]) -> Path:
    """``submission-<key>``: the method's folder, the same for each of its categories."""
    return ctx.run_dir / f"submission-{cell_key(cell_config(ctx.cfg, '*', spec))}"


def full_size(amap: np.ndarray, sample: Sample) -> np.ndarray:
    """A square pixel map resized bilinearly to its image's width x height, as float16."""
    width, height = image_size_of(sample.image_path)
    resized = Image.fromarray(amap.astype(np.float32)).resize((width, height), Image.BILINEAR)
    return np.asarray(resized).astype(np.float16)


def export_private(ctx: Context, data: EvalSet, spec: dict[str, Any], threshold: float,
                   maps_of: Callable[[torch.Tensor], np.ndarray]) -> str:
    """Score the category's private test sets (``maps_of``: features -> the cell's post-processed pixel maps)
    and write them; returns the method's folder relative to the run folder."""
    tifffile = require_tifffile()
    folder = submission_folder(ctx, spec)
    for split, samples in ctx.dataset.private_tests(data.category).items():
        maps = maps_of(data.normalise(ctx.features(samples, f"{data.category}: {split} features")))
        continuous = make_dir(folder / "anomaly_images" / data.category / split)
        binary = make_dir(folder / "anomaly_images_thresholded" / data.category / split)
        for sample, amap in zip(samples, maps, strict=True):
            full = full_size(amap, sample)
            stem = sample.image_path.stem
            atomic_write(continuous / f"{stem}.tiff", lambda p, a=full: tifffile.imwrite(p, a))
            mask = Image.fromarray(((full.astype(np.float64) > threshold) * 255).astype(np.uint8))
            atomic_write(binary / f"{stem}.png", lambda p, m=mask: m.save(p, format="PNG"))
    return str(folder.relative_to(ctx.run_dir))


def incomplete(run_dir: Path) -> list[str]:
    """One line per submission folder of ``run_dir`` that lacks some of MVTec AD 2's objects or splits."""
    lines = []
    for folder in sorted(run_dir.glob("submission-*")):
        objects = [o for o in AD2_OBJECTS if not all(any((folder / kind / o / split).glob("*")) for split in AD2_PRIVATE
                                                     for kind in ("anomaly_images", "anomaly_images_thresholded"))]
        if objects:
            lines.append(f"{folder.name} lacks {len(objects)} of MVTec AD 2's {len(AD2_OBJECTS)} objects "
                         f"({', '.join(objects)}): MVTec's upload checker and evaluation server take a submission "
                         "only with all of them; score the others into this folder (--resume) before packing it.")
    return lines
