"""What every result row records about where it came from."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "adbench-uiad"  # this project's name on the package index ("adbench" is another project)
PACKAGES = {"adbench": DISTRIBUTION, **{p: p for p in ("torch", "timm", "numpy", "scikit-learn", "optuna")}}


@cache
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for key, distribution in PACKAGES.items():
        try:
            out[key] = version(distribution)
        except PackageNotFoundError:
            out[key] = "absent"
    return out


@cache
def git_commit() -> str:
    """Commit of the adbench checkout (with ``+dirty`` when it has uncommitted changes)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
