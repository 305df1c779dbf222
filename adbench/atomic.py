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


class LinkedFileError(AdbenchError):
    """A file adbench writes in place in its own folders is a symbolic link."""


def linked(path: Path) -> LinkedFileError:
    return LinkedFileError(f"{path} is a symbolic link (to {os.readlink(path)}): adbench never writes through a "
                           "link in its results and cache folders. Remove the link and run again.")


def refuse_link(path: Path) -> Path:
    """``path``, refused when it is a symbolic link (a file written in place must not land elsewhere)."""
    if Path(path).is_symlink():
        raise linked(Path(path))
    return Path(path)


def open_append(path: Path) -> Any:
    """``path`` opened for appending bytes, created if missing, never through a symbolic link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise linked(Path(path)) from None
        if exc.errno in UNWRITABLE:
            raise unwritable(Path(path), exc) from None
        raise
    return os.fdopen(fd, "ab")
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


FULL_BELOW = 1 << 20  # bytes free under which a failed write is taken for a full disk


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through ``atomic_write``. torch reports a full disk as its own RuntimeError ("enforce fail
    at inline_container.cc ... unexpected pos"): with the folder's free space gone, it is said as a full disk."""
    import shutil

    import torch  # here, not at the top: the CLI's --help imports this module and needs no torch

    try:
        atomic_write(path, lambda p: torch.save(obj, p))
    except RuntimeError as exc:
        if shutil.disk_usage(Path(path).parent).free >= FULL_BELOW:
            raise
        raise disk_full(Path(path), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from exc


def damaged_entry(path: Path) -> str | None:
    """The first entry of a torch file (a zip archive) whose bytes fail the CRC-32 stored with it, or None.
    torch itself never checks them, so a changed byte inside a tensor would load silently."""
    import zipfile

    if not zipfile.is_zipfile(path):  # the legacy torch format, or no archive at all: torch.load decides
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"(the archive: {exc})"


def safe_torch_load(path: Path, what: str = "weights file") -> Any:
    """A torch file's tensors (``weights_only``: no code runs), its checksums verified first; a file holding
    other pickled objects, or a damaged one, is a ``WeightsError`` that says so (not torch's hint to allow
    unsafe loading)."""
    import pickle

    import torch

    from adbench.errors import WeightsError

    bad = damaged_entry(path)
    if bad is not None:
        raise WeightsError(f"{path} is not a readable {what} (damaged): {bad} fails its checksum")
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


def load_cached(path: Path, what: str) -> Any | None:
    """A torch file adbench wrote to reuse (features, a model, a training checkpoint): its tensors, or None
    when it is missing or damaged; a damaged one is removed with a warning naming it, and the caller
    computes it again."""
    from adbench.errors import WeightsError
    from adbench.progress import make_console

    if not Path(path).is_file():
        return None
    try:
        return safe_torch_load(path, what)
    except WeightsError as exc:
        make_console().print(f"warning: {exc}; removed, computing it again", markup=False, highlight=False)
        Path(path).unlink(missing_ok=True)
        return None
