"""VisA: images and masks listed in ``<root>/split_csv/1cls.csv`` (object,split,label,image,mask)."""

from __future__ import annotations

import csv
from pathlib import Path

from adbench.data.base import Sample, safe_child
from adbench.errors import DataError

REQUIRED_COLUMNS = {"object", "split", "label", "image", "mask"}


class VisA:
    has_masks = True

    def __init__(self, root: str | Path) -> None:
        self.name = "visa"
        self.root = Path(root).expanduser()
        self.csv_path = self.root / "split_csv" / "1cls.csv"
        if not self.csv_path.is_file():
            raise DataError(
                f"VisA split file {self.csv_path} not found. Point --data-root at the VisA folder "
                "that contains split_csv/1cls.csv."
            )
        try:
            with open(self.csv_path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = REQUIRED_COLUMNS - set(reader.fieldnames or [])
                if missing:
                    raise DataError(f"{self.csv_path} lacks columns {sorted(missing)}.")
                self.rows = list(reader)
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.csv_path} is not UTF-8 text (byte {exc.start} cannot be read): not VisA's split "
                            "file, or damaged; VisA ships it as plain CSV.") from None

    def categories(self) -> list[str]:
        return sorted({r["object"] for r in self.rows})

    def _samples(self, category: str, split: str) -> list[Sample]:
        if category not in self.categories():
            raise DataError(f"Category {category!r} not in {self.csv_path}. Available: {self.categories()}")
        out = []
        for r in self.rows:
            if r["object"] != category or r["split"] != split:
                continue
            image = safe_child(self.root, r["image"], "Image path")
            if r["label"] == "normal":
                out.append(Sample(image, None, 0))
            else:
                if not r["mask"]:
                    raise DataError(f"Anomalous image {image} has no mask in {self.csv_path}.")
                out.append(Sample(image, safe_child(self.root, r["mask"], "Mask path"), 1, "anomaly"))
        if not out:
            raise DataError(f"No {split} images for {category!r} in {self.csv_path}.")
        return out

    def train(self, category: str) -> list[Sample]:
        return self._samples(category, "train")

    def test(self, category: str) -> list[Sample]:
        return self._samples(category, "test")
