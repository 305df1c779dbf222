"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adbench.errors import AdbenchError


class DiskFullError(AdbenchError):
    """No space left while writing a result; what was written before is intact."""


def disk_full(path: Path, exc: OSError) -> DiskFullError:
    return DiskFullError(f"Disk full while writing {path} ({exc.strerror}). Nothing already written was changed: "
                         f"free space in {Path(path).parent} and run the same command again to resume.")


class UnwritableError(AdbenchError):
    """A results or cache folder cannot be written (read-only file system, no permission)."""


def unwritable(path: Path, exc: OSError) -> UnwritableError:
    return UnwritableError(f"Cannot write {path}: {exc.strerror}. Choose a writable folder (--results-dir, "
                           "--cache-dir or $ADBENCH_CACHE) or fix the folder's permissions.")


UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
TEMP_MARK = ".adbench-tmp"


def _file_mode() -> int:
    """The mode ``open`` gives a new file under this process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # in the name of every temporary file of an atomic write


def make_dir(path: Path) -> Path:
    """``mkdir -p path``, a read-only or forbidden folder said in one line."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in UNWRITABLE:
            raise unwritable(Path(exc.filename or path), exc) from None
        raise
    return Path(path)


def remove_stale_temporaries(folder: Path, older_than: float = 0.0) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left under ``folder``, those last written more
    than ``older_than`` seconds ago (0: all, only while no other process writes there, e.g. holding its
    ``folder_lock``; a shared cache passes a day); returns them."""
    import time

    now = time.time()
    stale = [p for p in Path(folder).rglob(f".*{TEMP_MARK}*")
             if p.is_file() and now - p.stat().st_mtime >= older_than]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only once it is complete."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK, dir=path.parent)
    except OSError as exc:
        if exc.errno in UNWRITABLE:
            raise unwritable(path, exc) from None
        raise
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide results from colleagues on a shared server
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, exc) from None
        if exc.errno in UNWRITABLE:
            raise unwritable(path, exc) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch  # here, not at the top: the CLI's --help imports this module and needs no torch

    atomic_write(path, lambda p: torch.save(obj, p))


def safe_torch_load(path: Path, what: str = "weights file") -> Any:
    """A torch file's tensors (``weights_only``: no code runs); a file holding other pickled objects, or a
    damaged one, is a ``WeightsError`` that says so (not torch's hint to allow unsafe loading)."""
    import pickle

    import torch

    from adbench.errors import WeightsError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # no forbidden object, just no torch file (garbage, truncated)
            raise WeightsError(f"{path} is not a readable {what} (damaged or truncated?): not a torch "
                               "save file") from None
        raise WeightsError(f"{path} is not a safe {what}: it holds pickled objects other than tensors, and "
                           "loading it could run code. Save a state dict of tensors (or .safetensors).") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a readable {what} (damaged or truncated?): {reason}") from None
