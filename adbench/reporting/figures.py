"""Drawing a report's figures: each one once (a figure whose inputs, arguments and drawing code are unchanged
is kept from the last report into the same folder) and the rest side by side in processes, one per core."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from adbench.atomic import atomic_write_text
from adbench.hashing import file_sha256, stable_hash

MANIFEST = ".figures.json"  # in a figure folder: each figure file's key when it was drawn


@dataclass(frozen=True)
class Figure:
    """One figure to draw: ``draw(*args)`` (a module-level function, so a process can run it) returns the files it
    wrote, ``outputs``; ``inputs`` are the files it reads (their bytes key it, as its arguments and the drawing
    code do)."""

    draw: Callable[..., list[Path]]
    args: tuple
    outputs: tuple[Path, ...]
    inputs: tuple[Path, ...]

    def key(self, code: str) -> str:
        """Its key, with ``code`` the hash of the drawing code (a change in how figures are drawn draws them
        again)."""
        return stable_hash([self.draw.__qualname__, [str(a) for a in self.args], code,
                            [file_sha256(p) for p in self.inputs]])


class Drawer:
    """Figures queued with ``add`` and drawn by ``finish``: kept when their key (``Figure.key``) is the one in the
    folder's ``MANIFEST`` and their files exist, else drawn, in ``workers`` processes when more than one is
    due (``workers`` None: one per core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.queued: list[Figure] = []

    def add(self, figure: Figure) -> list[Path]:
        self.queued.append(figure)
        return list(figure.outputs)

    def finish(self) -> list[Path]:
        """Draw what is due; the files of every queued figure."""
        from adbench.reporting import plots

        manifests = {f.outputs[0].parent: read_manifest(f.outputs[0].parent) for f in self.queued}
        code = file_sha256(plots.__file__)  # once for all the figures
        keys = [f.key(code) for f in self.queued]
        due = [(f, k) for f, k in zip(self.queued, keys, strict=True)
               if any(manifests[f.outputs[0].parent].get(p.name) != k or not p.is_file() for p in f.outputs)]
        if len(due) > 1 and self.workers > 1:
            with ProcessPoolExecutor(min(self.workers, len(due)), mp_context=get_context("spawn")) as pool:
                for drawn in [pool.submit(f.draw, *f.args) for f, _ in due]:
                    drawn.result()
        else:
            for f, _ in due:
                f.draw(*f.args)
        for f, k in due:
            manifests[f.outputs[0].parent] |= {p.name: k for p in f.outputs}
        for folder, manifest in manifests.items():
            atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        written = [p for f in self.queued for p in f.outputs]
        self.queued = []
        return written


def read_manifest(folder: Path) -> dict[str, Any]:
    """The figure keys recorded in ``folder`` (none when it has no readable manifest: everything is drawn)."""
    try:
        found = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
