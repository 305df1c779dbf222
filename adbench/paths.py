"""Where adbench keeps what it reuses: one cache root for features and generated datasets."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ADBENCH_CACHE``, else ``~/.cache/adbench``; a command's ``--cache-dir`` overrides it."""
    return Path(os.environ.get("ADBENCH_CACHE", Path.home() / ".cache" / "adbench"))
