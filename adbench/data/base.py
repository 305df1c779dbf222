"""Samples, the dataset interface, and image/mask loading with specific errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from adbench.errors import DataError
from adbench.protocols import MASK_RESIZES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".JPG", ".PNG"}


@dataclass(frozen=True)
class Sample:
    """One image: its path, its mask path (None for normal or unannotated; a folder of masks whose union is
    the image's, as MVTec LOCO's several masks per image), label 0/1 and defect kind."""

    image_path: Path
    mask_path: Path | None
    label: int
    defect: str = "good"
    group: str = ""  # the object this image is one view of (Real-IAD): image metrics score objects, max over views


@runtime_checkable
class Dataset(Protocol):
    name: str
    has_masks: bool

    def categories(self) -> list[str]: ...

    def train(self, category: str) -> list[Sample]: ...

    def test(self, category: str) -> list[Sample]: ...


@dataclass(frozen=True)
class Transform:
    """Resize to a square size and normalise channels (ImageNet statistics by default)."""

    size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES and p.is_file())


def safe_child(root: Path, name: str, what: str) -> Path:
    """``root / name``, refusing names that leave ``root`` lexically (absolute, or climbing with ``..``); a
    symlink inside ``root`` is followed wherever it points (the user put it there)."""
    normal = os.path.normpath(name) if name else ""
    if normal in ("", ".") or os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        raise DataError(f"{what} {name!r} is not a path inside {root}")
    return root / normal


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (PIL mode ``I;16*``, or ``I`` with values above 255) scaled to 8 bits
    (65535 -> 255); PIL's own conversion clips it instead, so most of the image turns white."""
    if not img.mode.startswith("I"):
        return img
    values = np.asarray(img, dtype=np.float64)
    scale = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.round(values / scale * 255.0), 0, 255).astype(np.uint8), "L")


def _open(path: Path, mode: str | None) -> Image.Image:
    """The decoded image, converted to ``mode`` (None: as stored; high-bit-depth grayscale scaled to 8 bits)."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_8bit(img).convert(mode) if mode else img.copy()
    except FileNotFoundError:
        raise DataError(f"Image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"Cannot read image {path}: {exc}. Replace or remove the file.") from None


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    try:
        with Image.open(path) as img:
            return img.size
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise DataError(f"Cannot read image {path}: {exc}") from None


def load_image(path: Path, transform: Transform) -> torch.Tensor:
    """RGB image as a normalised float tensor 3 x size x size."""
    img = _open(path, "RGB").resize((transform.size, transform.size), Image.BILINEAR)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(transform.mean).view(3, 1, 1)
    std = torch.tensor(transform.std).view(3, 1, 1)
    return (arr - mean) / std


def mask_files(sample: Sample) -> list[Path]:
    """The mask file(s) of a sample: its mask, or every image in its mask folder (none: refused)."""
    if sample.mask_path is None:
        return []
    if not sample.mask_path.is_dir():
        return [sample.mask_path]
    files = list_images(sample.mask_path)
    if not files:
        raise DataError(f"Mask folder {sample.mask_path} of {sample.image_path} holds no mask image.")
    return files


def check_mask_size(sample: Sample, mask_wh: tuple[int, int] | None = None) -> None:
    """Refuse a sample whose mask (of size ``mask_wh``, read from its header if not given; every mask of a
    mask folder) is not its image's pixel size; all files must be readable."""
    image_wh = None
    for path in mask_files(sample):
        wh = mask_wh or image_size_of(path)
        image_wh = image_wh or image_size_of(sample.image_path)
        if wh != image_wh:
            raise DataError(
                f"Mask {path} is {wh[0]}x{wh[1]} but its image "
                f"{sample.image_path} is {image_wh[0]}x{image_wh[1]}. Masks must match their image size."
            )


def load_mask(sample: Sample, size: int, resize: str = "nearest") -> np.ndarray:
    """Binary mask (bool, size x size) of a sample; all False for a normal image.

    Every value > 0 is anomalous (VisA masks hold defect-class ids, MVTec's 255; a palette PNG counts
    by its indices), as the official InvAD code binarises. The mask must have its image's pixel size.
    ``resize``: ``nearest`` (InvAD) or ``bilinear`` on the 0/255 mask, then > 0.5 (ADer).
    """
    if sample.mask_path is None:
        return np.zeros((size, size), dtype=bool)
    union = None
    for path in mask_files(sample):  # a mask folder: the union of its masks
        values = read_mask(sample, path) > 0
        union = values if union is None else union | values
    return resize_mask(union, size, resize)


def read_mask(sample: Sample, path: Path) -> np.ndarray:
    """The values of one mask file of ``sample`` (checked to have its image's size), one channel."""
    mask = _open(path, None)
    check_mask_size(Sample(sample.image_path, path, sample.label), mask.size)
    values = np.asarray(mask)
    return values.max(axis=2) if values.ndim == 3 else values


def resize_mask(binary: np.ndarray, size: int, resize: str = "nearest") -> np.ndarray:
    """A boolean mask resized to size x size: ``nearest``, or ``bilinear`` on 0/255 then > 0.5."""
    image = Image.fromarray(binary.astype(np.uint8) * 255)
    if resize == "nearest":
        return np.asarray(image.resize((size, size), Image.NEAREST)) > 0
    if resize == "bilinear":
        return np.asarray(image.resize((size, size), Image.BILINEAR)) > 127  # v / 255 > 0.5
    raise ValueError(f"mask resize must be one of {MASK_RESIZES}, got {resize!r}")


@dataclass(frozen=True)
class DefectRegion:
    """One annotated defect of a test image at the scored size: its pixels and its saturation area, the
    overlap in pixels at which it counts as fully found (AU-sPRO)."""

    image: int  # index of its image among the scored test images
    mask: np.ndarray  # bool size x size
    saturation: float


def load_batch(samples: list[Sample], transform: Transform) -> torch.Tensor:
    return torch.stack([load_image(s.image_path, transform) for s in samples])


class _Images(torch.utils.data.Dataset):
    """Decoded images of ``samples``; a bad file comes back as its DataError, not a worker traceback."""

    def __init__(self, samples: list[Sample], transform: Transform) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> torch.Tensor | DataError:
        try:
            return load_image(self.samples[i].image_path, self.transform)
        except DataError as exc:
            return exc


def _stack_or_error(items: list[torch.Tensor | DataError]) -> torch.Tensor | DataError:
    errors = [x for x in items if isinstance(x, DataError)]
    return errors[0] if errors else torch.stack(items)


def image_batches(samples: list[Sample], transform: Transform, batch_size: int, device: torch.device,
                  workers: int | None = None) -> Iterator[torch.Tensor]:
    """Batches of decoded images, in order. For CUDA, ``workers`` processes (default: up to 8) decode
    ahead into pinned memory, so host-to-device copies are asynchronous; on CPU the backbone already
    uses every core and images are decoded in this process (``workers`` 0)."""
    cuda = device.type == "cuda"
    if workers is None:
        workers = min(8, os.cpu_count() or 1) if cuda else 0
    loader = torch.utils.data.DataLoader(_Images(samples, transform), batch_size=batch_size, num_workers=workers,
                                         collate_fn=_stack_or_error, pin_memory=cuda,
                                         generator=torch.Generator())  # leaves the global RNG alone
    for batch in loader:
        if isinstance(batch, DataError):
            raise batch
        yield batch

