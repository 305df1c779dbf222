"""ELPV solar-cell electroluminescence images from the ``elpv-dataset`` PyPI package.

Image-level only: normal = defect probability 0, anomalous = probability >= ``threshold``
(default 0.67, i.e. the 2/3 and 1.0 classes: the labels are stored as thirds, 0.666..., so the
threshold is compared with a tolerance of 0.005); cells in between are left out.
Categories are the cell types ``mono`` and ``poly``. A fixed quarter of each type's normal
cells (chosen by a hash of the file name) is held out for test.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from adbench.data.base import Sample
from adbench.errors import DataError

THIRDS_TOLERANCE = 0.005


def _package_root() -> Path:
    try:
        import elpv_dataset
    except ImportError:
        raise DataError("The elpv dataset needs the package: pip install 'adbench-uiad[elpv]'.") from None
    return Path(elpv_dataset.__file__).parent / "data"


class ELPV:
    has_masks = False

    def __init__(self, root: str | Path | None = None, threshold: float = 0.67) -> None:
        self.name = "elpv"
        self.root = Path(root) if root else _package_root()
        labels = self.root / "labels.csv"
        if not labels.is_file():
            raise DataError(f"ELPV labels file {labels} not found.")
        self.threshold = threshold
        self.rows = []
        for line in labels.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                raise DataError(f"{labels}: malformed line {line!r} (expected: path probability type).")
            self.rows.append((self.root / parts[0], float(parts[1]), parts[2]))

    def categories(self) -> list[str]:
        return sorted({r[2] for r in self.rows})

    def _split(self, category: str) -> tuple[list[Sample], list[Sample]]:
        if category not in self.categories():
            raise DataError(f"ELPV has no category {category!r}; available: {self.categories()}.")
        train, test = [], []
        for path, prob, kind in self.rows:
            if kind != category:
                continue
            if prob == 0:
                held_out = zlib.crc32(path.name.encode()) % 4 == 0
                (test if held_out else train).append(Sample(path, None, 0))
            elif prob >= self.threshold - THIRDS_TOLERANCE:
                test.append(Sample(path, None, 1, "defect"))
        return train, test

    def train(self, category: str) -> list[Sample]:
        return self._split(category)[0]

    def test(self, category: str) -> list[Sample]:
        return self._split(category)[1]

