"""Pixel AU-ROC, AP, F1-max and AU-PRO of a category too large for memory: exact, in bounded memory.

Maps and masks are added a few images at a time and written to spill files as 32-bit keys that sort
as the float32 scores do (-0.0 as 0.0), the negatives' and positives' apart, with each positive's
region size. A histogram of the positives' top 16 key bits plans ranges of scores with at most
``budget`` positives each; a bin over budget is split by its low 16 bits (single values), and a single
value with more positives than that is counted without being held. Each range, from the highest, is
one pass over the files: its positives are held and sorted, the negatives counted against them a chunk
at a time, and the metrics continue from the ranges above (``ranking.Curve`` segments, ``pro.ProArea``).
Peak memory depends on ``budget`` and ``chunk``, not on the number of images. The counts, F1-max and
AU-ROC equal ``pixel_metrics``' exactly; AP and AU-PRO are sums split at the ranges (the last bits).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from adbench.atomic import DiskFullError
from adbench.metrics.pro import ProArea, cumulative, region_sizes
from adbench.metrics.ranking import Curve, average_precision, f1_max, u_statistic
from adbench.metrics.summary import check_finite, undefined

STREAMED = ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")  # the pixel metrics this pass computes
BYTES_PER_POSITIVE = 160  # per positive of a range: its key, size, weight, order, and the curve's arrays (~140)
BYTES_PER_READ = 32  # per value of a chunk read: the keys, their comparisons, search results and counts
BYTES_PER_ADDED = 32  # per pixel added: the map and mask, their keys and the selections (~26)
MAX_CHUNK = 1 << 22  # values read at a time: larger chunks gain nothing
IN_MEMORY_BYTES_PER_PIXEL = 20  # ``pixel_metrics``' peak per test pixel with the maps and masks (~19 measured)
LOW = 16  # key bits below the histogram's bins
SIGN = np.uint32(0x80000000)


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort as the float32 ``values`` (finite; -0.0 and 0.0 get one key)."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    return np.where(bits & SIGN, ~bits, bits | SIGN)


def spill_array(directory: Path, shape: tuple[int, ...], dtype: type) -> np.memmap:
    """A zeroed array on an unnamed temporary file in ``directory``: its pages are the kernel's to write out
    and drop, and the file goes with the array (or the process), whatever ends it. Its blocks are reserved
    first (``posix_fallocate``), so a disk too full for it is a clear error here, not a bus error (SIGBUS)
    when a page of the mapping is first written."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with tempfile.TemporaryFile(dir=directory) as fh:  # the mapping outlives the file's name and handle
        if size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fh.fileno(), 0, size)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFullError(f"Disk full in {directory}: the streamed metric pass needs {size / 2**20:.0f} "
                                        "MiB there for this category's maps and masks; free space (or point "
                                        "--cache-dir elsewhere, or raise runtime.metric_memory_mb) and run again "
                                        "(finished cells are kept).") from None
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: mapped lazily
                    raise
        return np.memmap(fh, dtype=dtype, mode="w+", shape=shape)


@dataclass(frozen=True)
class Spill:
    """A category scored through files: where they go and the memory its metric pass keeps to."""

    directory: Path
    memory_mb: int

    @classmethod
    def needed(cls, n_pixels: int, memory_mb: int, directory: Path) -> Spill | None:
        """A spill when the in-memory pass over ``n_pixels`` test pixels would take more than ``memory_mb``."""
        return cls(Path(directory), memory_mb) if n_pixels * IN_MEMORY_BYTES_PER_PIXEL > memory_mb * 2**20 else None

    def pixel_metrics(self, maps: np.ndarray, masks: np.ndarray, pro_limit: float,
                      index: np.ndarray | None = None) -> dict[str, float]:
        """The streamed pass over ``maps`` and ``masks`` (arrays on disk, read a chunk at a time; only the
        images at ``index``, when given), half the memory for a range's positives, half for the chunks."""
        half = self.memory_mb * 2**20 // 2
        index = np.arange(len(maps)) if index is None else np.asarray(index)
        with StreamedPixelMetrics(self.directory, pro_limit, half // BYTES_PER_POSITIVE,
                                  min(half // BYTES_PER_READ, MAX_CHUNK)) as pass_:
            step = max(1, half // BYTES_PER_ADDED // max(1, int(np.prod(maps.shape[1:]))))
            for i in range(0, len(index), step):
                chunk = index[i : i + step]
                pass_.add(maps[chunk], masks[chunk])
            return pass_.result()


def _read(fh: BinaryIO, dtype: type, chunk: int, reverse: bool = False) -> Iterator[np.ndarray]:
    """The file's values ``chunk`` at a time, from the start or (``reverse``) from the end."""
    item = np.dtype(dtype).itemsize
    n = fh.seek(0, 2) // item
    starts = range(0, n, chunk)
    for start in reversed(starts) if reverse else starts:
        fh.seek(start * item)
        yield np.fromfile(fh, dtype=dtype, count=min(chunk, n - start))


class StreamedPixelMetrics:
    """Add a category's maps and masks in image order (``add``), then ``result``. The spill files are unnamed
    temporary files in ``directory``, gone on ``close`` (or leaving a ``with`` block) or with the process."""

    def __init__(self, directory: Path, pro_limit: float = 0.3, budget: int = 1 << 22, chunk: int = 1 << 22) -> None:
        if not 0 < pro_limit <= 1:
            raise ValueError(f"pro_limit must be in (0, 1], got {pro_limit}")
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.pro_limit, self.budget, self.chunk = pro_limit, max(1, budget), max(1, chunk)
        self.files = {name: tempfile.TemporaryFile(dir=directory) for name in ("neg", "pos", "size")}  # noqa: SIM115
        self.hist = np.zeros(1 << LOW, dtype=np.int64)  # positives per top-16-bit key bin
        self.n_images = self.n_pos = self.n_neg = self.n_regions = 0

    def __enter__(self) -> StreamedPixelMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def add(self, maps: np.ndarray, masks: np.ndarray) -> None:
        """The next images' maps (n x H x W, float32 or float16) and masks."""
        maps, masks = np.asarray(maps), np.asarray(masks).astype(bool)
        if maps.shape != masks.shape or maps.ndim != 3:
            raise ValueError(f"maps {maps.shape} and masks {masks.shape} must be equal n x H x W shapes")
        if maps.dtype not in (np.float32, np.float16):
            raise TypeError(f"the streamed pass takes float32 maps (their keys are 32-bit), got {maps.dtype}")
        check_finite(maps, f"Anomaly maps of images {self.n_images} to {self.n_images + len(maps) - 1}")
        keys = order_keys(maps)
        keys[~masks].tofile(self.files["neg"])
        pos = keys[masks]
        pos.tofile(self.files["pos"])
        for mask in masks:
            if mask.any():
                sizes, n = region_sizes(mask)
                sizes.astype(np.uint32).tofile(self.files["size"])
                self.n_regions += n
        self.hist += np.bincount(pos >> LOW, minlength=1 << LOW)
        self.n_images += len(maps)
        self.n_pos += len(pos)
        self.n_neg += int(masks.size - len(pos))

    def result(self) -> dict[str, float]:
        """The four pixel metrics (``STREAMED``) of everything added; NaN with a warning when the masks lack
        anomalous or normal pixels."""
        if self.n_pos == 0 or self.n_neg == 0:
            return undefined(STREAMED, "the masks need both anomalous and normal pixels")
        u2, ap, f1, area, tp_before = 0, 0.0, 0.0, ProArea(self.pro_limit), 0
        for lo, hi, n in self._ranges():
            values, tp_local, pro = self._tied(lo, area.pro) if lo == hi else self._positives(lo, hi, n, area.pro)
            fp, fp_above = self._negatives(values, lo, hi)
            c = Curve(tp_before + tp_local, fp, fp_above, self.n_pos, self.n_neg, tp_before)
            u2 += u_statistic(c)
            ap += average_precision(c)
            f1 = max(f1, f1_max(c))
            area.add_pro(pro, c)
            tp_before = int(c.tp[-1])
        return {"pixel_auroc": u2 / (2.0 * self.n_pos * self.n_neg), "pixel_ap": ap, "pixel_f1max": f1,
                "pixel_aupro": area.result()}

    def _ranges(self) -> Iterator[tuple[int, int, int]]:
        """Key ranges (lo, hi, positives in them), inclusive, from the highest: each with at most ``budget``
        positives or one value."""
        for top in self._groups(self.hist):
            if self.hist[top[0]] > self.budget:  # one bin over budget (alone in its group): its single values
                low = np.zeros(1 << LOW, dtype=np.int64)
                for keys in _read(self.files["pos"], np.uint32, self.chunk):
                    low += np.bincount(keys[keys >> LOW == top[0]] & 0xFFFF, minlength=1 << LOW)
                base = int(top[0]) << LOW
                yield from ((base + g[-1], base + g[0], int(low[g].sum())) for g in self._groups(low))
            else:
                yield int(top[-1]) << LOW, (int(top[0]) << LOW) | 0xFFFF, int(self.hist[top].sum())

    def _groups(self, counts: np.ndarray) -> Iterator[list[int]]:
        """Runs of non-empty bins from the highest, each with at most ``budget`` positives (or one bin)."""
        group, total = [], 0
        for b in np.flatnonzero(counts)[::-1]:
            n = int(counts[b])
            if group and total + n > self.budget:
                yield group
                group, total = [], 0
            group.append(int(b))
            total += n
        if group:
            yield group

    def _positives(self, lo: int, hi: int, n: int, pro: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The range's distinct positive keys (ascending), and in descending order of value the positives >= each
        and PRO at each (continued from ``pro``, the PRO above the range); ``n``: its positives."""
        keys, sizes, filled = np.empty(n, np.uint32), np.empty(n, np.uint32), 0
        for k, s in self._pos_chunks():
            inside = (k >= lo) & (k <= hi)
            m = int(np.count_nonzero(inside))
            keys[filled : filled + m], sizes[filled : filled + m] = k[inside], s[inside]
            filled += m
        order = np.argsort(keys, kind="stable")
        keys, sizes = keys[order], sizes[order]
        del order
        first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))  # each value's first positive
        values = keys[first]
        del keys
        weights = self._weights(sizes)
        del sizes
        at_least = (n - first)[::-1]
        return values, at_least, cumulative(pro, weights[::-1])[at_least]

    def _tied(self, key: int, pro: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``_positives`` for a range of one value, which may have more than ``budget`` positives: counted
        and summed a chunk at a time, none held."""
        n = 0
        for keys, sizes in self._pos_chunks(reverse=True):  # ties in descending index, as one curve sorts them
            w = self._weights(sizes[keys == key])[::-1]
            n += len(w)
            pro = float(cumulative(pro, w)[-1])
        return np.array([key], dtype=np.uint32), np.array([n]), np.array([pro])

    def _pos_chunks(self, reverse: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return zip(_read(self.files["pos"], np.uint32, self.chunk, reverse),
                   _read(self.files["size"], np.uint32, self.chunk, reverse), strict=True)

    def _weights(self, sizes: np.ndarray) -> np.ndarray:
        """Each positive's 1 / (its region's size x the number of regions), as ``pro.region_weights``."""
        weights = np.divide(1.0, sizes, dtype=np.float64)
        weights /= self.n_regions
        return weights

    def _negatives(self, values: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Negatives >= and > each of the range's ascending ``values``, in descending order of value."""
        at_least = np.zeros(len(values) + 1, dtype=np.int64)  # [j]: negatives with j values <= them
        above = np.zeros(len(values) + 1, dtype=np.int64)  # [j]: negatives with j values < them
        over = 0
        for keys in _read(self.files["neg"], np.uint32, self.chunk):
            over += int(np.count_nonzero(keys > hi))
            inside = keys[(keys >= lo) & (keys <= hi)]
            at_least += np.bincount(np.searchsorted(values, inside, side="right"), minlength=len(values) + 1)
            above += np.bincount(np.searchsorted(values, inside, side="left"), minlength=len(values) + 1)
        fp = over + np.cumsum(at_least[::-1])[:-1]  # descending: negatives >= the value
        fp_above = over + np.cumsum(above[::-1])[:-1]
        return fp, fp_above
