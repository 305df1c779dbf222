"""A validation split for studies, carved from the training normals: the test set is never used.

A fraction of each category's training images is removed from training. Half of them stay normal
validation images; the other half get one synthetic defect each (scratch, stain or hole, cycled;
the exact mask is written) and become the anomalous validation images. Files are generated once
into the cache in MVTec layout. Alternatively a user folder in MVTec layout supplies the
validation images (its ``test/`` and ``ground_truth/`` folders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from adbench.atomic import atomic_write
from adbench.data.base import Dataset, Sample
from adbench.data.mvtec import MVTecLayout
from adbench.data.synthetic import DEFECTS, apply_defect, to_uint8
from adbench.errors import DataError
from adbench.hashing import stable_hash


def save_png(array: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


class CarvedValidation:
    """``train`` minus the carved images; ``test`` = carved normals + carved images with defects."""

    def __init__(self, base: Dataset, cache_dir: Path, fraction: float = 0.2, seed: int = 0) -> None:
        self.base, self.name, self.has_masks = base, f"{base.name}-val", True
        self.cache_dir, self.fraction, self.seed = Path(cache_dir), fraction, seed

    def categories(self) -> list[str]:
        return self.base.categories()

    def _carved(self, category: str) -> tuple[list[Sample], list[Sample]]:
        samples = self.base.train(category)
        n_val = max(4, round(self.fraction * len(samples)))
        if len(samples) - n_val < 3:
            raise DataError(f"{category}: {len(samples)} training images are too few to carve {n_val} for "
                            "validation; lower validation.fraction or give a validation folder.")
        order = np.random.default_rng([self.seed, 7]).permutation(len(samples))
        val = set(order[:n_val].tolist())
        return ([s for i, s in enumerate(samples) if i not in val], [samples[i] for i in sorted(val)])

    def train(self, category: str) -> list[Sample]:
        return self._carved(category)[0]

    def test(self, category: str) -> list[Sample]:
        _, val = self._carved(category)
        key = stable_hash({"files": [str(s.image_path.resolve()) for s in val], "seed": self.seed})
        root = self.cache_dir / "validation" / key
        normals, to_break = val[: len(val) // 2], val[len(val) // 2 :]
        out = [Sample(s.image_path, None, 0, "good") for s in normals]
        for i, sample in enumerate(to_break):
            kind = DEFECTS[i % len(DEFECTS)]
            image_path = root / f"{i:03d}_{kind}.png"
            mask_path = root / f"{i:03d}_{kind}_mask.png"
            if not mask_path.is_file():
                with Image.open(sample.image_path) as img:
                    arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
                rng = np.random.default_rng([self.seed, 11, i])
                mask = apply_defect(rng, arr, kind, np.ones(arr.shape[:2], dtype=bool))
                save_png(to_uint8(arr), image_path)
                save_png(mask.astype(np.uint8) * 255, mask_path)  # mask last: its presence marks the pair done
            out.append(Sample(image_path, mask_path, 1, kind))
        return out


class FolderValidation:
    """Training images from ``base``; validation images from a user folder in MVTec layout."""

    def __init__(self, base: Dataset, folder: str | Path) -> None:
        self.base, self.folder = base, MVTecLayout(folder, name=f"{base.name}-val")
        self.name, self.has_masks = self.folder.name, True

    def categories(self) -> list[str]:
        return self.base.categories()

    def train(self, category: str) -> list[Sample]:
        return self.base.train(category)

    def test(self, category: str) -> list[Sample]:
        return self.folder.test(category)


class OwnValidation(FolderValidation):
    """A dataset's own labelled validation split (BMAD's ``valid``): training images from ``base``,
    validation images from ``base.valid``; preferred to carving when the dataset has one."""

    def __init__(self, base: Dataset) -> None:
        self.base, self.name, self.has_masks = base, f"{base.name}-valid", base.has_masks

    def test(self, category: str) -> list[Sample]:
        return self.base.valid(category)
