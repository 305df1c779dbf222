"""Run folders and result records: one row per (category, scorer), written atomically."""

from __future__ import annotations

import errno
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from adbench.atomic import atomic_write, atomic_write_text, disk_full
from adbench.config import RunConfig, validated
from adbench.engine.keys import cell_key
from adbench.errors import AdbenchError

RESULTS_FILE = "metrics.parquet"


def new_run_dir(results_root: Path, cfg: RunConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(results_root) / f"{cfg.runtime.name}-{stamp}-{cell_key(cfg)[:8]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return run_dir


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AdbenchError(f"{run_dir} is not a run folder: {path} is missing.")
    return validated(yaml.safe_load(path.read_text()), where=str(path))


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


class RecordLog:
    """Append-only JSON-lines log of finished and failed cells; safe against kills mid-write.

    Each record is one line written with a single ``write`` and fsynced. A torn last line (the
    process died while writing it) is ignored on reading and terminated before the next append.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted write
        return records

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, default=_json_default) + "\n").encode()
        with open(self.path, "ab") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                data = b"\n" + data
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise disk_full(self.path, exc) from None  # a torn line is ignored when read
                raise

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def finished(self) -> dict[str, dict]:
        """The successful record of each cell key (the first one, should a cell appear twice)."""
        out: dict[str, dict] = {}
        for r in self.read():
            if r.get("status") == "ok":
                out.setdefault(r["cell_key"], r)
        return out

    def failed(self) -> dict[str, dict]:
        done = self.finished()
        return {r["cell_key"]: r for r in self.read() if r.get("status") == "error" and r["cell_key"] not in done}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
