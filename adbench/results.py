"""Run folders and result records: one row per (category, scorer), written atomically."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from adbench.atomic import atomic_write, atomic_write_text
from adbench.config import RunConfig, from_dict
from adbench.errors import AdbenchError

RESULTS_FILE = "metrics.parquet"


def new_run_dir(results_root: Path, cfg: RunConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(results_root) / f"{cfg.name}-{stamp}-{cfg.hash()[:8]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return run_dir


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AdbenchError(f"{run_dir} is not a run folder: {path} is missing.")
    return from_dict(RunConfig, yaml.safe_load(path.read_text()), where=str(path))


def write_rows(run_dir: Path, rows: list[dict]) -> pd.DataFrame:
    """Write all rows as Parquet and CSV (each atomically); return them as a frame."""
    frame = pd.DataFrame(rows)
    atomic_write(Path(run_dir) / RESULTS_FILE, lambda p: frame.to_parquet(p, index=False))
    atomic_write(Path(run_dir) / "metrics.csv", lambda p: frame.to_csv(p, index=False))
    return frame


def read_rows(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise AdbenchError(f"No results in {run_dir}: {path} is missing (run `adbench evaluate` first).")
    return pd.read_parquet(path)
