"""BMAD, the medical benchmark of InvAD's BMAD table: one folder per dataset (a category here), each with
``train/good``, ``valid/{good,Ungood}`` and ``test/{good,Ungood}``, in one of two layouts, found per
category:

- image-level (OCT2017, RSNA, Camelyon16): the images directly in ``good/`` and ``Ungood/``;
- image- and pixel-level (Brain, Liver, RESC): ``good/img/``, ``Ungood/img/``, and ``Ungood/label/`` with
  each image's mask under the image's file name.

Grayscale images are read as 3 channels (``load_image``). ``valid`` is BMAD's own labelled validation set,
for studies; reported numbers come from ``test`` alone.
"""

from __future__ import annotations

from pathlib import Path

from adbench.data.base import Sample, list_images
from adbench.errors import DataError

# the release's dataset folders; the histopathology one is named either way
FOLDERS = {"Brain": ("Brain",), "Liver": ("Liver",), "RESC": ("RESC",), "OCT2017": ("OCT2017",),
           "RSNA": ("RSNA",), "Camelyon16": ("Camelyon16", "camelyon16", "Histopathology")}
PIXEL_LEVEL = ("Brain", "Liver", "RESC")  # the categories BMAD gives masks for


def paired_masks(images: list[Path], labels: Path) -> list[Path]:
    """Each anomalous image's mask: the file of the same name in ``labels``; a mask without its image is
    refused too (a sign of a broken copy)."""
    if not images and not labels.is_dir():  # an empty Ungood (BMAD's valid split may have none)
        return []
    if not labels.is_dir():
        raise DataError(f"BMAD mask folder {labels} is missing (pixel-level layout: Ungood/img and Ungood/label).")
    masks = {p.name: p for p in list_images(labels)}
    names = {p.name for p in images}
    orphans = sorted(set(masks) - names)
    if orphans:
        more = f" ({len(orphans)} such masks)" if len(orphans) > 1 else ""
        raise DataError(f"BMAD mask {labels / orphans[0]} has no image of that name in {labels.parent / 'img'}{more}.")
    missing = [p for p in images if p.name not in masks]
    if missing:
        raise DataError(f"BMAD image {missing[0]} has no mask {labels / missing[0].name} (a mask has its "
                        "image's file name).")
    return [masks[p.name] for p in images]


class BMAD:
    has_masks = True  # for the pixel-level categories; the others' anomalous samples carry no mask
    mad_over_available = True  # a row's mAD: the mean of the metrics that exist (image-level datasets: 3)

    def __init__(self, root: str | Path) -> None:
        self.name = "bmad"
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"BMAD folder {self.root} not found: give data.root (--data-root), the folder that "
                            f"holds {', '.join(FOLDERS)}.")
        found = {name: next((self.root / o for o in options if (self.root / o).is_dir()), None)
                 for name, options in FOLDERS.items()}
        self.folders = {name: folder for name, folder in found.items() if folder is not None}
        if not self.folders:
            raise DataError(f"{self.root} holds none of BMAD's dataset folders ({', '.join(FOLDERS)}; the "
                            "histopathology one may be named camelyon16 or Histopathology).")

    def categories(self) -> list[str]:
        return sorted(self.folders)

    def folder(self, category: str) -> Path:
        if category not in self.folders:
            raise DataError(f"BMAD category {category!r} not found under {self.root}. Available: "
                            f"{self.categories()}")
        return self.folders[category]

    def pixel_level(self, category: str) -> bool:
        """Whether ``category`` is in the image- and pixel-level layout (``test/Ungood/img``)."""
        return (self.folder(category) / "test" / "Ungood" / "img").is_dir()

    def images(self, folder: Path, pixel_level: bool) -> list[Path]:
        where = folder / "img" if pixel_level else folder
        if not where.is_dir():
            layout = "good/img, Ungood/img and Ungood/label" if pixel_level else "images directly in good and Ungood"
            raise DataError(f"BMAD folder {where} is missing (this category's layout: {layout}).")
        return list_images(where)

    def split(self, category: str, split: str, anomalies: bool = True) -> list[Sample]:
        """The samples of ``split`` (train, valid or test); ``anomalies``: with those of ``Ungood``."""
        pixel = self.pixel_level(category)
        base = self.folder(category) / split
        out = [Sample(p, None, 0) for p in self.images(base / "good", pixel)]
        if anomalies:
            bad = self.images(base / "Ungood", pixel)
            masks = paired_masks(bad, base / "Ungood" / "label") if pixel else [None] * len(bad)
            out += [Sample(p, m, 1, "Ungood") for p, m in zip(bad, masks, strict=True)]
        if not out:
            raise DataError(f"BMAD {category}: no images in {base}.")
        return out

    def train(self, category: str) -> list[Sample]:
        return self.split(category, "train", anomalies=False)

    def valid(self, category: str) -> list[Sample]:
        return self.split(category, "valid")

    def test(self, category: str) -> list[Sample]:
        return self.split(category, "test")
