"""MVTec-AD folder layout; also serves MPDD, BTAD and any folder laid out the same way.

``<root>/<category>/train/good/*``, ``<root>/<category>/test/<defect>/*`` and
``<root>/<category>/ground_truth/<defect>/<stem>_mask.png`` (``<stem>.png`` is accepted too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adbench.data.base import (
    DefectRegion,
    Sample,
    image_size_of,
    list_images,
    mask_files,
    read_mask,
    resize_mask,
    safe_child,
)
from adbench.errors import DataError

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg")


class MVTecLayout:
    """A dataset in MVTec-AD layout under ``root``."""

    has_masks = True

    def __init__(self, root: str | Path, name: str = "mvtec") -> None:
        self.name = name
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(
                f"Dataset root {self.root} does not exist or is not a folder. "
                f"Set data.root (--data-root) to the folder that holds the {name} categories."
            )

    def categories(self) -> list[str]:
        cats = sorted(p.name for p in self.root.iterdir() if (p / "train").is_dir())
        if not cats:
            raise DataError(
                f"No category found in {self.root}: expected sub-folders <category>/train/good "
                "(MVTec-AD layout)."
            )
        return cats

    def _category_dir(self, category: str) -> Path:
        folder = safe_child(self.root, category, "Category")
        if not folder.is_dir():
            raise DataError(
                f"Category {category!r} not found: {folder} is missing. "
                f"Available: {', '.join(self.categories())}."
            )
        return folder

    def train(self, category: str) -> list[Sample]:
        folder = self._category_dir(category) / "train" / "good"
        images = list_images(folder) if folder.is_dir() else []
        if not images:
            raise DataError(f"Empty training set: no images in {folder}.")
        return [Sample(p, None, 0) for p in images]

    def validation_normals(self, category: str) -> list[Sample]:
        """The normal validation images ``<category>/validation/good`` (MVTec AD 2's and LOCO's), which
        ``data.held_out: validation`` holds out in place of training images."""
        folder = self._category_dir(category) / "validation" / "good"
        images = list_images(folder) if folder.is_dir() else []
        if not images:
            raise DataError(f"data.held_out: validation reads {folder}, which is missing or empty (the dataset's "
                            "own normal validation images; data.held_out: train holds out training images).")
        return [Sample(p, None, 0) for p in images]

    def test(self, category: str) -> list[Sample]:
        cat_dir = self._category_dir(category)
        test_dir = cat_dir / "test"
        if not test_dir.is_dir():
            raise DataError(f"Test folder missing: {test_dir}.")
        samples = []
        for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for image in list_images(defect_dir):
                if defect == "good":
                    samples.append(Sample(image, None, 0, defect))
                else:
                    mask = find_mask(cat_dir / "ground_truth" / defect, image.stem)
                    if mask is None:
                        raise DataError(
                            f"Anomalous test image {image} has no mask: expected "
                            f"{cat_dir / 'ground_truth' / defect / (image.stem + '_mask.png')}."
                        )
                    samples.append(Sample(image, mask, 1, defect))
        if not samples:
            raise DataError(f"Empty test set: no images under {test_dir}/<defect>/.")
        return samples


def find_mask(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask", stem):
        for suffix in MASK_SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


LOCO_KINDS = {"logical": "logical_anomalies", "structural": "structural_anomalies"}
LOCO_ANOMALIES = ("both", "pooled", *LOCO_KINDS)


class MVTecLOCO(MVTecLayout):
    """MVTec LOCO AD under ``root``: ``<category>/train/good``, ``test/{good,logical_anomalies,
    structural_anomalies}``, and for each anomalous image a folder ``ground_truth/<kind>/<stem>/`` of masks
    (one per defect) whose union is scored. ``anomalies``: ``both`` kinds, each scored beside the good test
    images and the two averaged, as MVTec's ``evaluate_experiment.py`` reports LOCO (default); ``pooled``, both
    in one curve (not comparable with published LOCO numbers); or only ``logical`` or ``structural`` ones."""

    def __init__(self, root: str | Path, anomalies: str = "both", name: str = "mvtec_loco") -> None:
        super().__init__(root, name)
        if anomalies not in LOCO_ANOMALIES:
            raise DataError(f"data.args.anomalies must be one of {', '.join(LOCO_ANOMALIES)}, got {anomalies!r}")
        self.kinds = [LOCO_KINDS[anomalies]] if anomalies in LOCO_KINDS else list(LOCO_KINDS.values())
        self.kinds_apart = tuple(self.kinds) if anomalies == "both" else ()  # the engine averages their metrics

    def test(self, category: str) -> list[Sample]:
        cat_dir = self._category_dir(category)
        samples = [Sample(p, None, 0) for p in self._images(cat_dir / "test" / "good")]
        for kind in self.kinds:
            for image in self._images(cat_dir / "test" / kind):
                masks = cat_dir / "ground_truth" / kind / image.stem
                if not masks.is_dir():
                    raise DataError(f"Anomalous test image {image} has no mask folder: expected {masks}/000.png "
                                    "(MVTec LOCO layout: one folder of masks per image).")
                samples.append(Sample(image, masks, 1, kind))
        return samples

    def defect_regions(self, category: str, samples: list[Sample], size: int, resize: str = "nearest"
                       ) -> list[DefectRegion]:
        """Every annotated defect of ``samples`` at ``size`` px: each mask of an image's mask folder, its
        pixel value naming the defect type in the category's ``defects_config.json``, whose saturation
        is ``saturation_threshold`` x the region's area when ``relative_saturation``, floored to whole pixels as
        MVTec LOCO's evaluation does (``int``; at least 1: where the floor is 0, MVTec's code divides 0 by 0,
        adbench counts the defect found once one pixel is), else ``saturation_threshold`` pixels of the full
        image, scaled to the resized one and capped at the area."""
        saturation = self.saturations(category)
        regions = []
        for index, sample in enumerate(samples):
            if sample.mask_path is None:
                continue
            full = image_size_of(sample.image_path)
            for path in mask_files(sample):
                values = read_mask(sample, path)
                for value in np.unique(values[values > 0]).tolist():
                    if value not in saturation:
                        raise DataError(f"Mask {path} has pixel value {value}, which no defect of "
                                        f"{self._category_dir(category) / 'defects_config.json'} names "
                                        f"(its pixel values: {sorted(saturation)}).")
                    mask = resize_mask(values == value, size, resize)
                    threshold, relative = saturation[value]
                    area = float(mask.sum())
                    sat = float(max(1, int(threshold * area))) if relative else \
                        min(threshold * size * size / (full[0] * full[1]), area)
                    regions.append(DefectRegion(index, mask, sat))
        return regions

    def saturations(self, category: str) -> dict[int, tuple[float, bool]]:
        """pixel value -> (saturation_threshold, relative_saturation) from ``defects_config.json``."""
        path = self._category_dir(category) / "defects_config.json"
        try:
            entries = json.loads(path.read_text())
            found = {int(e["pixel_value"]): (float(e["saturation_threshold"]), bool(e["relative_saturation"]))
                     for e in entries}
        except FileNotFoundError:
            raise DataError(f"{path} is missing: AU-sPRO reads each defect's saturation from it (MVTec LOCO ships "
                            "one per category).") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(f"{path} is not a list of defects with pixel_value, saturation_threshold and "
                            f"relative_saturation ({type(exc).__name__}: {exc}).") from None
        for value, (threshold, relative) in found.items():
            if not (0 < threshold <= 1 if relative else threshold > 0):  # NaN fails both
                raise DataError(f"{path}: the defect of pixel value {value} has saturation_threshold {threshold:g}; "
                                f"it must be {'in (0, 1], a share of the defect' if relative else '> 0 pixels'} "
                                f"(relative_saturation {str(relative).lower()}).")
        return found

    @staticmethod
    def _images(folder: Path) -> list[Path]:
        if not folder.is_dir():
            raise DataError(f"{folder} is missing: not the MVTec LOCO layout (test/good, test/logical_anomalies, "
                            "test/structural_anomalies).")
        return list_images(folder)


AD2_PRIVATE = ("test_private", "test_private_mixed")
AD2_OBJECTS = ("can", "fabric", "fruit_jelly", "rice", "sheet_metal", "vial", "wallplugs", "walnuts")


class MVTecAD2(MVTecLayout):
    """MVTec AD 2 under ``root``: ``<category>/train/good``, ``validation/good`` and the public test set
    ``test_public/{good,bad}`` with ``test_public/ground_truth/bad/<stem>_mask.png``. The private test sets
    (``test_private``, ``test_private_mixed``) have no labels: never scored, only written for MVTec's
    evaluation server (``scoring.submission``)."""

    def __init__(self, root: str | Path, name: str = "mvtec_ad2") -> None:
        super().__init__(root, name)

    def test(self, category: str) -> list[Sample]:
        public = self._category_dir(category) / "test_public"
        if not (public / "good").is_dir() or not (public / "bad").is_dir():
            raise DataError(f"{public}/good and {public}/bad must exist (MVTec AD 2 layout; the private test sets "
                            "have no labels and are not scored).")
        samples = [Sample(p, None, 0) for p in list_images(public / "good")]
        for image in list_images(public / "bad"):
            mask = find_mask(public / "ground_truth" / "bad", image.stem)
            if mask is None:
                raise DataError(f"Anomalous test image {image} has no mask: expected "
                                f"{public / 'ground_truth' / 'bad' / (image.stem + '_mask.png')}.")
            samples.append(Sample(image, mask, 1, "bad"))
        return samples

    def private_tests(self, category: str) -> dict[str, list[Sample]]:
        """split -> its unlabelled images (label 0 stands for unknown), for ``test_private`` and
        ``test_private_mixed``."""
        out = {}
        for split in AD2_PRIVATE:
            folder = self._category_dir(category) / split
            if not folder.is_dir():
                raise DataError(f"{folder} is missing: MVTec AD 2's private test sets ({', '.join(AD2_PRIVATE)}) "
                                "are what scoring.submission writes; unpack them beside test_public.")
            out[split] = [Sample(p, None, 0, "unknown") for p in list_images(folder)]
        return out
