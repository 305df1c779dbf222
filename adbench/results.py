"""Run folders and result records: one row per (category, scorer), written atomically."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from filelock import FileLock, Timeout

from adbench.atomic import (
    UNWRITABLE,
    atomic_write,
    atomic_write_text,
    disk_full,
    linked,
    make_dir,
    open_append,
    refuse_link,
    unwritable,
)
from adbench.columns import ROW_VERSION, ResultColumn, catalogue, upgrade
from adbench.config import RunConfig, validated
from adbench.errors import AdbenchError

__all__ = ["KEY_FILE", "RESULTS_FILE", "folder_lock", "load_rows", "new_run_dir", "read_results_file", "read_rows",
           "read_run_config", "RecordLog", "upgraded", "write_rows"]

RESULTS_FILE = "metrics.parquet"


KEY_FILE = "config.key"  # the key of the config a run folder was made for


def new_run_dir(results_root: Path, cfg: RunConfig) -> Path:
    """A new run folder with its config and the config's key; nothing is left if writing them fails."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    from adbench.engine.keys import cell_key  # it imports torch (through the backbones): not for reading rows

    key = cell_key(cfg)
    run_dir = make_dir(results_root) / f"{cfg.runtime.name}-{stamp}-{key[:8]}"
    run_dir.mkdir(exist_ok=False)
    try:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_write_text(run_dir / KEY_FILE, key + "\n")
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def read_run_config(run_dir: Path) -> RunConfig:
    """The config of a run folder; refused if its config.yaml was edited into another configuration since
    the run started (its results would silently mix two configurations)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AdbenchError(f"{run_dir} is not a run folder: {path} is missing.")
    cfg = validated(yaml.safe_load(path.read_text()), where=str(path))
    from adbench.engine.keys import cell_key

    key_file = Path(run_dir) / KEY_FILE
    if key_file.is_file() and key_file.read_text().strip() != cell_key(cfg):
        raise AdbenchError(f"{path} was edited since the run started: it is now another configuration, and "
                           f"the run's models and results belong to the first. Restore it, or start a new run "
                           f"from it: adbench run {path}")
    return cfg


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s advisory lock while the block runs: a second process on the same grid or run folder
    is refused, naming the first. The OS releases it when the holder dies (kill -9 too)."""
    lock = FileLock(refuse_link(make_dir(folder) / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid_file = Path(folder) / ".lock.pid"
        pid = pid_file.read_text().strip() if pid_file.is_file() and not pid_file.is_symlink() else "unknown"
        raise AdbenchError(f"{folder} is in use by another adbench process (PID {pid}); wait for it to finish "
                           "or stop it, then run this again (finished cells are kept).") from None
    try:
        atomic_write_text(Path(folder) / ".lock.pid", f"{os.getpid()}\n")  # replaces a link, never writes through
        for entry in Path(folder).iterdir():  # models/, maps/, submission-<key>/ ...: written into, never through
            if entry.is_symlink() and entry.is_dir():
                raise linked(entry)
        yield
    finally:
        lock.release()


def write_rows(run_dir: Path, rows: list[dict]) -> pd.DataFrame:
    """Write all rows (older ones upgraded) as Parquet and CSV (each atomically); return them as they are read
    back (``read_rows``)."""
    read_only = {c.key for c in catalogue() if not c.stored}  # run_folder, fps_source: added when read
    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in read_only} for r in upgrade(rows)])
    atomic_write(Path(run_dir) / RESULTS_FILE, lambda p: frame.to_parquet(p, index=False))
    atomic_write(Path(run_dir) / "metrics.csv", lambda p: frame.to_csv(p, index=False))
    return upgraded(frame.assign(run_folder=str(run_dir)), run_dir)


def read_rows(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file() and (Path(run_dir) / "trials.jsonl").is_file():
        raise AdbenchError(f"{run_dir} is a study folder: its trials are scored on validation data, not the test "
                           "set. Evaluate the best trial with `adbench study STUDY.yaml --evaluate-best` and "
                           "report that run's folder.")
    if not path.is_file():
        raise AdbenchError(f"No results in {run_dir}: {path} is missing (run `adbench evaluate` first).")
    return read_results_file(path)


def read_results_file(path: Path) -> pd.DataFrame:
    """A ``metrics.parquet`` file's rows as this version writes them (``columns.upgrade``), with their
    ``run_folder``; a file that is no results file is refused, naming it."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise AdbenchError(f"{path} cannot be read as a results file ({exc}); it is no `adbench` metrics.parquet, "
                           "or it was cut short: run `adbench evaluate` on its run folder again.") from None
    return upgraded(frame.assign(run_folder=str(Path(path).parent)), path)


def upgraded(frame: pd.DataFrame, where: Path | str = "rows") -> pd.DataFrame:
    """``frame``'s rows upgraded to this version's columns (a current frame row by row only when it is older),
    with the columns added when rows are read (``run_folder``, ``fps_source``) it lacks."""
    current = frame.empty or ("row_version" in frame and frame["row_version"].eq(ROW_VERSION).all())
    if not current:
        try:
            frame = pd.DataFrame(upgrade(frame.to_dict("records")))
        except ValueError as exc:
            raise AdbenchError(f"{where}: {exc}") from None
    checked_values(frame, where)
    return frame.assign(**{c.key: c.legacy for c in catalogue() if not c.stored and c.key not in frame})


def checked_values(frame: pd.DataFrame, where: Path | str) -> None:
    """Refuse, in one line naming the file, rows no adbench run writes: a column every row has missing, a
    metric that is no number, outside [0, 1] or infinite, an FPS that is negative or infinite (a hand-edited
    or foreign file would otherwise be printed, and ranked best)."""
    if frame.empty:
        return
    entries = catalogue()
    lacking = [c.key for c in entries if c.always and c.stored and c.key != "scorer.*" and c.key not in frame]
    if lacking:
        raise AdbenchError(f"{where}: not adbench result rows: they lack {', '.join(lacking[:5])}"
                           f"{' ...' if len(lacking) > 5 else ''} (an edited or foreign results file?)")
    for c in bounded_columns():
        if c.key not in frame:
            continue
        values = pd.to_numeric(frame[c.key], errors="coerce")
        bad = frame[c.key][values.isna() & frame[c.key].notna()]
        out = values[(values < 0) | (values > upper_bound(c)) | np.isinf(values)]
        if len(bad) or len(out):
            value = bad.iloc[0] if len(bad) else out.iloc[0]
            value = value.item() if isinstance(value, np.generic) else value
            raise AdbenchError(f"{where}: column {c.key} holds {value!r} (row {(bad if len(bad) else out).index[0]}"
                               f"); it must be {allowed(c)}: an edited or foreign results file?")


def bounded_columns() -> list[ResultColumn]:
    """The result columns whose values have bounds: the metrics (in [0, 1]) and the speed figures (>= 0)."""
    return [c for c in catalogue() if c.group in ("metric", "speed") and c.type is float]


def upper_bound(column: ResultColumn) -> float:
    """The highest value a bounded column (``bounded_columns``) may hold: 1 for a metric, none for a speed."""
    return 1.0 if column.group == "metric" else math.inf


def allowed(column: ResultColumn) -> str:
    return "a number in [0, 1] or NaN" if column.group == "metric" else "a number >= 0 or NaN"


def impossible_value(record: dict) -> str:
    """What no adbench run writes in a cell record (``checked_values``' rule for one record); empty if none."""
    for c in bounded_columns():
        value = record.get(c.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= upper_bound(c) \
                or math.isinf(value):
            return f"holds {c.key} {value!r}; it must be {allowed(c)}"
    return ""


def load_rows(paths: list[Path]) -> pd.DataFrame:
    """The rows of run or grid folders (or ``metrics.parquet`` files), each with its ``run_folder``."""
    if not paths:
        raise AdbenchError("no run folder given")
    frames = [read_results_file(p) if p.suffix == ".parquet" else read_rows(p) for p in map(Path, paths)]
    return pd.concat(frames, ignore_index=True)


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
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted write
            if isinstance(record, dict) and isinstance(record.get("cell_key"), str):
                records.append(record)
            elif line.strip():
                warnings.warn(f"{self.path}:{number} is not a cell record (a JSON object with a cell_key); "
                              "skipped", stacklevel=2)
        return records

    def append(self, record: dict) -> None:
        make_dir(self.path.parent)
        data = (json.dumps(record, default=_json_default) + "\n").encode()
        with open_append(self.path) as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                data = b"\n" + data
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise disk_full(self.path, exc) from None  # a torn line is ignored when read
                if exc.errno in UNWRITABLE:
                    raise unwritable(self.path, exc) from None
                raise

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def finished(self) -> dict[str, dict]:
        """The successful record of each cell key (the first one, should a cell appear twice)."""
        out: dict[str, dict] = {}
        for r in self.read():
            if r.get("status") == "ok" and r["cell_key"] not in out:
                problem = impossible_value(r)
                if problem:  # an edited log: the cell is not done, it runs again
                    warnings.warn(f"{self.path}: cell {r['cell_key']} {problem}: not counted as finished, it runs "
                                  "again", stacklevel=2)
                    continue
                out[r["cell_key"]] = r
        return out

    def failed(self) -> dict[str, dict]:
        done = self.finished()
        return {r["cell_key"]: r for r in self.read() if r.get("status") == "error" and r["cell_key"] not in done}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
