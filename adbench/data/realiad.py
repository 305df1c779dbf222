"""Real-IAD: 30 objects, each photographed from five camera views (C1 to C5), splits from its JSON files.

Layout under ``root``: ``realiad_<resolution>/<object>/{OK,NG/<defect>}/<sample>/<name>_C<k>_<time>.jpg``
with ``..._mask.png`` beside anomalous views, and ``<jsons>/<object>.json`` holding ``train`` and ``test``
lists of ``{"image_path", "mask_path", "anomaly_class"}`` (paths relative to the object's folder;
``anomaly_class`` ``OK`` for normal). ``views: all`` (default) scores objects: an object's image score and
label are the maximum over its views (``Sample.group``, as ADer); ``views: C1`` ... ``C5`` keeps one camera
and scores its images alone. Pixel metrics are over every view image either way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from adbench.data.base import Sample, safe_child
from adbench.errors import DataError

RESOLUTIONS = (256, 512, 1024)
VIEWS = ("all", "C1", "C2", "C3", "C4", "C5")
CAMERA = re.compile(r"_(C[1-5])_")


class RealIAD:
    """Real-IAD under ``root`` at ``resolution`` px, splits from ``jsons`` (relative to ``root``)."""

    has_masks = True

    def __init__(self, root: str | Path, resolution: int = 256, views: str = "all",
                 jsons: str = "realiad_jsons/realiad_jsons", name: str = "real_iad") -> None:
        if resolution not in RESOLUTIONS:
            raise DataError(f"data.args.resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        if views not in VIEWS:
            raise DataError(f"data.args.views must be one of {', '.join(VIEWS)}, got {views!r}")
        self.name, self.root, self.views = name, Path(root).expanduser(), views
        self.images, self.jsons = self.root / f"realiad_{resolution}", self.root / jsons
        for folder in (self.images, self.jsons):
            if not folder.is_dir():
                raise DataError(f"{folder} is missing: Real-IAD's layout is <root>/realiad_<resolution>/<object>/ and "
                                f"<root>/{jsons}/<object>.json (data.args.jsons names the split folder)")

    def categories(self) -> list[str]:
        found = sorted(p.stem for p in self.jsons.glob("*.json") if (self.images / p.stem).is_dir())
        if not found:
            raise DataError(f"No object found: expected {self.jsons}/<object>.json beside {self.images}/<object>/")
        return found

    def split(self, category: str, which: str) -> list[Sample]:
        path = safe_child(self.jsons, f"{category}.json", "Object")
        folder = safe_child(self.images, category, "Object")
        try:
            entries = json.loads(path.read_text())[which]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: cannot read its {which!r} list ({type(exc).__name__}: {exc})") from None
        samples = []
        for entry in entries:
            image = safe_child(folder, entry["image_path"], f"{path.name}: image")
            camera = CAMERA.search(image.name)
            if self.views != "all" and (camera is None or camera.group(1) != self.views):
                continue
            normal = entry.get("anomaly_class", "OK") == "OK"
            mask = safe_child(folder, entry["mask_path"], f"{path.name}: mask") if entry.get("mask_path") and \
                not normal else None
            if not normal and mask is None:
                raise DataError(f"{path}: anomalous image {entry['image_path']} has no mask_path")
            group = str(image.parent.relative_to(folder)) if self.views == "all" else ""
            samples.append(Sample(image, mask, 0 if normal else 1, "good" if normal else entry["anomaly_class"],
                                  group))
        if not samples:
            raise DataError(f"{path}: no {which} image" + (f" of view {self.views}" if self.views != "all" else ""))
        return samples

    def train(self, category: str) -> list[Sample]:
        return [Sample(s.image_path, None, 0) for s in self.split(category, "train") if s.label == 0]

    def test(self, category: str) -> list[Sample]:
        return self.split(category, "test")
