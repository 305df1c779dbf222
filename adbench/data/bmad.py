"""BMAD, the medical benchmark of InvAD's BMAD table: one folder per dataset (a category here, named as in
InvAD's table), each with ``train/good``, a labelled validation split and ``test/{good,Ungood}``.

Every published spelling is accepted, found per dataset (``FOLDERS``, ``SPLITS``): BMAD's release and its
README (``Brain``, ``Liver``, ``RESC``, ``OCT2017``, ``camelyon16``), its own loaders (``MKD/data.py``:
``Chest-RSNA``, ``camelyon16_256``, ``val``) and anomalib's ``bmad`` datamodule (``Chest``, ``Histopathology``,
``Retina_OCT2017``, ``Retina_RESC``, ``valid``). Each ``good`` or ``Ungood`` folder holds its images either
in ``img/`` (with ``Ungood/label/``, each mask under its image's file name: Brain, Liver and RESC, pixel
level) or directly (image level: OCT2017, chest X-ray, histopathology); BMAD's loaders and anomalib read
Brain, Liver and RESC training images directly in ``train/good/``, its README shows ``train/good/img/``:
both load.

Grayscale images are read as 3 channels (``load_image``). The validation split is BMAD's own labelled one,
for studies; reported numbers come from ``test`` alone.
"""

from __future__ import annotations

from pathlib import Path

from adbench.data.base import Sample, list_images
from adbench.errors import DataError

# category (InvAD's table) -> the folder names it is published under, in the order they are looked for
FOLDERS = {"Brain": ("Brain",), "Liver": ("Liver",), "RESC": ("RESC", "Retina_RESC"),
           "OCT2017": ("OCT2017", "Retina_OCT2017"), "RSNA": ("Chest-RSNA", "Chest", "chest-rsna/Chest-RSNA", "RSNA"),
           "Camelyon16": ("camelyon16", "Camelyon16", "camelyon16_256", "Histopathology")}
SPLITS = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}  # split -> its folder names


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
            raise DataError(f"{self.root} holds none of BMAD's dataset folders (any of: "
                            f"{', '.join(n for names in FOLDERS.values() for n in names)}).")

    def categories(self) -> list[str]:
        return sorted(self.folders)

    def folder(self, category: str) -> Path:
        if category not in self.folders:
            raise DataError(f"BMAD category {category!r} not found under {self.root}. Available: "
                            f"{self.categories()}")
        return self.folders[category]

    def pixel_level(self, category: str) -> bool:
        """Whether ``category``'s anomalous test images sit in ``test/Ungood/img`` beside their masks."""
        return (self.split_dir(category, "test") / "Ungood" / "img").is_dir()

    def split_dir(self, category: str, split: str) -> Path:
        """The folder of ``split`` (train, valid or test) of ``category``, under any of its spellings."""
        folder = self.folder(category)
        found = next((folder / name for name in SPLITS[split] if (folder / name).is_dir()), None)
        if found is None:
            raise DataError(f"BMAD {category}: no {' or '.join(SPLITS[split])} folder in {folder}.")
        return found

    @staticmethod
    def images(folder: Path) -> list[Path]:
        """The images of a ``good`` or ``Ungood`` folder: in its ``img/`` sub-folder, else directly in it."""
        where = folder / "img" if (folder / "img").is_dir() else folder
        if not where.is_dir():
            raise DataError(f"BMAD folder {where} is missing (images directly in good and Ungood, or in their img/ "
                            "sub-folders with the masks in Ungood/label).")
        return list_images(where)

    def split(self, category: str, split: str, anomalies: bool = True) -> list[Sample]:
        """The samples of ``split`` (train, valid or test); ``anomalies``: with those of ``Ungood``, paired with
        their masks when they sit in ``Ungood/img``."""
        base = self.split_dir(category, split)
        out = [Sample(p, None, 0) for p in self.images(base / "good")]
        if anomalies:
            ungood = base / "Ungood"
            bad = self.images(ungood) if ungood.is_dir() or split == "test" else []  # a split may have no Ungood
            pixel = (ungood / "img").is_dir()
            masks = paired_masks(bad, ungood / "label") if pixel else [None] * len(bad)
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
