"""Real-IAD: 30 objects, each photographed from five camera views (C1 to C5), splits from its JSON files.

Layout under ``root``, as Tencent's Real-IAD code reads it: ``realiad_<resolution>/`` (256, 512, 1024 or
``raw``) with one folder per object, and a folder of split files, ``<split set>/<object>.json``, each holding
``meta`` (``prefix``, ``normal_class``) and ``train`` / ``test`` lists of ``{"category", "anomaly_class",
"image_path", "mask_path"}``; a file is ``realiad_<resolution>/<meta.prefix>/<image_path>``. The split sets:
``realiad_jsons`` (the multi-view protocol, default), ``realiad_jsons_sv`` (single view) and
``realiad_jsons_fuiad_<ratio>`` (FUIAD: training sets with unlabelled anomalies); each is found at
``root/<set>`` (the official README) or ``root/realiad_jsons/<set>`` (``realiad_jsons.zip`` unpacked, as
ADer, Dinomaly and anomalib lay it out).

A test sample is normal when its ``mask_path`` is null or its ``anomaly_class`` is ``meta.normal_class``;
every training entry is trained on, as normal (the FUIAD sets' anomalies included: that is the setting).
Under the multi-view sets, ``views: all`` (default) scores objects: an object's image score and label are
the maximum over its views (``Sample.group``, as ADer); ``views: C1`` ... ``C5`` keeps one camera and scores
its images alone, as does the single-view set. Pixel metrics are over every view image either way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from adbench.data.base import Sample, safe_child
from adbench.errors import DataError

RESOLUTIONS = (256, 512, 1024, "raw")
VIEWS = ("all", "C1", "C2", "C3", "C4", "C5")
CAMERA = re.compile(r"_(C[1-5])_")
BUNDLE = "realiad_jsons"  # the folder realiad_jsons.zip unpacks into, holding every split set


class RealIAD:
    """Real-IAD under ``root`` at ``resolution`` px, splits from the split set ``jsons``."""

    has_masks = True

    def __init__(self, root: str | Path, resolution: int | str = 256, views: str = "all",
                 jsons: str = "realiad_jsons", name: str = "real_iad") -> None:
        if resolution not in RESOLUTIONS:
            raise DataError(f"data.args.resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got "
                            f"{resolution!r}")
        if views not in VIEWS:
            raise DataError(f"data.args.views must be one of {', '.join(VIEWS)}, got {views!r}")
        self.name, self.root, self.views = name, Path(root).expanduser(), views
        self.images = self.root / f"realiad_{resolution}"
        if not self.images.is_dir():
            raise DataError(f"{self.images} is missing: Real-IAD's images are <root>/realiad_<resolution>/<object>/ "
                            f"(data.args.resolution: {', '.join(map(str, RESOLUTIONS))})")
        self.jsons = self.split_folder(jsons)
        self.single_view = self.jsons.name.endswith("_sv")

    def split_folder(self, jsons: str) -> Path:
        """The folder of split set ``jsons``: ``root/<jsons>`` holding ``<object>.json`` files, else
        ``root/realiad_jsons/<jsons>``."""
        candidates = [safe_child(self.root, jsons, "data.args.jsons")]
        if Path(jsons).name == jsons:
            candidates.append(self.root / BUNDLE / jsons)
        for folder in candidates:
            if folder.is_dir() and any(folder.glob("*.json")):
                return folder
        raise DataError(f"no split files <object>.json in {' or '.join(map(str, candidates))}: Real-IAD's split "
                        "sets are realiad_jsons, realiad_jsons_sv and realiad_jsons_fuiad_<ratio> (data.args.jsons), "
                        f"at {self.root}/<set> or {self.root}/{BUNDLE}/<set>")

    def categories(self) -> list[str]:
        found = sorted(p.stem for p in self.jsons.glob("*.json") if (self.images / p.stem).is_dir())
        if not found:
            raise DataError(f"No object found: expected {self.jsons}/<object>.json beside {self.images}/<object>/")
        return found

    def read(self, category: str) -> tuple[Path, dict[str, Any]]:
        """``category``'s split file and what it holds (checked to have train and test lists)."""
        path = safe_child(self.jsons, f"{category}.json", "Object")
        try:
            info = json.loads(path.read_text())
            if not isinstance(info, dict) or not all(isinstance(info.get(k), list) for k in ("train", "test")):
                raise ValueError("not an object with train and test lists")
            return path, info
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read its splits ({type(exc).__name__}: {exc})") from None

    def split(self, category: str, which: str) -> list[Sample]:
        path, info = self.read(category)
        meta = info.get("meta") or {}
        folder = safe_child(self.images, str(meta.get("prefix") or category), f"{path.name}: meta.prefix")
        normal_class = meta.get("normal_class", "OK")
        grouped = self.views == "all" and not self.single_view
        samples = []
        for entry in info[which]:
            try:
                image = safe_child(folder, entry["image_path"], f"{path.name}: image")
                camera = CAMERA.search(image.name)
                if self.views != "all" and (camera is None or camera.group(1) != self.views):
                    continue
                normal = which == "train" or entry["mask_path"] is None or entry["anomaly_class"] == normal_class
                mask = None if normal else safe_child(folder, entry["mask_path"], f"{path.name}: mask")
                group = str(image.parent.relative_to(folder)) if grouped else ""
                samples.append(Sample(image, mask, 0 if normal else 1, "good" if normal else entry["anomaly_class"],
                                      group))
            except (KeyError, TypeError) as exc:
                raise DataError(f"{path}: a {which} entry lacks {exc} (each has category, anomaly_class, image_path "
                                f"and mask_path): {entry!r}") from None
        if not samples:
            raise DataError(f"{path}: no {which} image" + (f" of view {self.views}" if self.views != "all" else ""))
        return samples

    def train(self, category: str) -> list[Sample]:
        return self.split(category, "train")

    def test(self, category: str) -> list[Sample]:
        return self.split(category, "test")
