"""MVTec-AD folder layout; also serves MPDD, BTAD and any folder laid out the same way.

``<root>/<category>/train/good/*``, ``<root>/<category>/test/<defect>/*`` and
``<root>/<category>/ground_truth/<defect>/<stem>_mask.png`` (``<stem>.png`` is accepted too).
"""

from __future__ import annotations

from pathlib import Path

from adbench.data.base import Sample, list_images, safe_child
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

