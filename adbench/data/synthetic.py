"""The embedded default dataset: generated deterministically from a seed, written in MVTec layout.

Three categories (two textures, one object) and three defect kinds with exact masks:
``scratch`` (a thick line), ``stain`` (a colour-shifted ellipse) and ``hole`` (a patch of
missing structure). The mask is exactly the set of pixels the defect replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from adbench.data.mvtec import MVTecLayout
from adbench.paths import default_cache_dir
from adbench.progress import make_console

GENERATOR_VERSION = 1
CATEGORIES = ("weave", "granite", "washer")
DEFECTS = ("scratch", "stain", "hole")


def _weave(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 2)
    freq = 2 * np.pi / 16
    a = np.sin(freq * xx + phase[0]) * np.sin(freq * yy / 2 + phase[1])
    b = np.sin(freq * yy + phase[1]) * np.sin(freq * xx / 2 + phase[0])
    pattern = np.where(((xx + yy) // 16) % 2 == 0, a, b)
    base = 0.5 + 0.25 * pattern + 0.03 * rng.standard_normal((size, size))
    return np.clip(base[..., None] * np.array([0.9, 0.75, 0.55]), 0, 1)


def _granite(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = gaussian_filter(rng.standard_normal((size, size)), 3.0)
    fine = rng.standard_normal((size, size))
    gray = 0.55 + 0.9 * coarse + 0.05 * fine
    tint = np.array([0.8, 0.8, 0.85])
    return np.clip(gray[..., None] * tint, 0, 1)


def _washer(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.uniform(-6, 6, 2)
    r = np.hypot(yy - cy, xx - cx)
    ring = (r > size * 0.18) & (r < size * 0.36)
    img = np.full((size, size, 3), 0.15) + 0.02 * rng.standard_normal((size, size, 1))
    shade = 0.65 + 0.15 * np.cos(np.arctan2(yy - cy, xx - cx) - rng.uniform(0, 2 * np.pi))
    img[ring] = (shade[ring, None] * np.array([0.75, 0.75, 0.8])) + 0.02 * rng.standard_normal((ring.sum(), 1))
    return np.clip(img, 0, 1), ring


def apply_defect(rng: np.random.Generator, img: np.ndarray, kind: str, support: np.ndarray) -> np.ndarray:
    """Apply one defect in place; return the exact boolean mask of the replaced pixels."""
    h, w = img.shape[:2]
    size = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(support)
    i = rng.integers(len(ys))
    cy, cx = float(ys[i]), float(xs[i])
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(size * 0.15, size * 0.3)
        dy, dx = np.sin(angle), np.cos(angle)
        along = (yy - cy) * dy + (xx - cx) * dx
        across = np.abs(-(yy - cy) * dx + (xx - cx) * dy)
        region = (np.abs(along) < length / 2) & (across < rng.uniform(1.5, 3.0))
        color = np.array([0.95, 0.95, 0.9]) if img[support].mean() < 0.5 else np.array([0.05, 0.05, 0.08])
    elif kind == "stain":
        ry, rx = rng.uniform(size * 0.04, size * 0.09, 2)
        region = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        color = np.array([0.55, 0.2, 0.1]) + 0.1 * rng.uniform(-1, 1, 3)
    else:  # hole: a square of missing structure showing the dark backing
        half = rng.uniform(size * 0.04, size * 0.08)
        region = (np.abs(yy - cy) < half) & (np.abs(xx - cx) < half)
        color = np.array([0.12, 0.12, 0.14])
    region &= support
    img[region] = color
    return region


def generate(root: Path, seed: int = 0, size: int = 256, n_train: int = 40, n_good: int = 10,
             n_per_defect: int = 5) -> None:
    """Write the synthetic dataset in MVTec layout under ``root`` (atomically: temp folder + rename)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    for c_idx, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, c_idx])

        def make(rng: np.random.Generator, category: str = category) -> tuple[np.ndarray, np.ndarray]:
            if category == "washer":
                return _washer(rng, size)
            img = _weave(rng, size) if category == "weave" else _granite(rng, size)
            return img, np.ones((size, size), dtype=bool)

        def save(arr: np.ndarray, path: Path) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)

        for i in range(n_train):
            save(to_uint8(make(rng)[0]), tmp / category / "train" / "good" / f"{i:03d}.png")
        for i in range(n_good):
            save(to_uint8(make(rng)[0]), tmp / category / "test" / "good" / f"{i:03d}.png")
        for defect in DEFECTS:
            for i in range(n_per_defect):
                img, support = make(rng)
                mask = apply_defect(rng, img, defect, support)
                save(to_uint8(img), tmp / category / "test" / defect / f"{i:03d}.png")
                save((mask * 255).astype(np.uint8), tmp / category / "ground_truth" / defect / f"{i:03d}_mask.png")
    meta = dict(seed=seed, size=size, n_train=n_train, n_good=n_good, n_per_defect=n_per_defect,
                version=GENERATOR_VERSION, sha256=file_hashes(tmp))
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
    if root.exists():  # another process finished first
        shutil.rmtree(tmp)
        return
    os.replace(tmp, root)


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every image under ``folder``, by path relative to it."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def changed_file(folder: Path) -> str | None:
    """The first file of a generated dataset that is missing, added or not the bytes it was written with."""
    try:
        written = json.loads((folder / "dataset.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        return "dataset.json"
    now = file_hashes(folder)
    return next((name for name in sorted(written.keys() | now.keys()) if written.get(name) != now.get(name)), None)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def synthetic(root: str | Path | None = None, seed: int = 0, cache_dir: str | Path | None = None,
              **sizes: int) -> MVTecLayout:
    """The synthetic dataset, generated on first use into ``root``, else ``cache_dir``/datasets (the run's
    cache, by default ``$ADBENCH_CACHE``)."""
    base = Path(root) if root else Path(cache_dir or default_cache_dir()) / "datasets"
    suffix = "".join(f"-{k}{v}" for k, v in sorted(sizes.items()))
    folder = base / f"synthetic-v{GENERATOR_VERSION}-seed{seed}{suffix}"
    if (folder / "dataset.json").is_file() and (changed := changed_file(folder)) is not None:
        make_console().print(
            f"warning: {folder / changed} is not the file adbench generated (changed, missing or added); the "
            "synthetic dataset is generated again", markup=False, highlight=False)
        shutil.rmtree(folder)
    if not (folder / "dataset.json").is_file():
        generate(folder, seed=seed, **sizes)
    return MVTecLayout(folder, name="synthetic")
