"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from adbench.errors import AdbenchError


class DiskFullError(AdbenchError):
    """No space left while writing a result; what was written before is intact."""


def disk_full(path: Path, exc: OSError) -> DiskFullError:
    return DiskFullError(f"Disk full while writing {path} ({exc.strerror}). Nothing already written was changed: "
                         f"free space in {Path(path).parent} and run the same command again to resume.")


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, exc) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda p: torch.save(obj, p))
