"""Which rows are which method: a row's config flattened, the config keys that differ between rows, and the
method label tables, figures and significance tests group rows by (``with_method_column``)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from adbench.config import noise_net_keys
from adbench.errors import AdbenchError

METHOD = ["dataset", "scorer", "backbone", "noise_net", "protocol"]
SHOWN_BY_METHOD = {"data.dataset", "scoring.scorers", "backbone.name", "noise_net.name", "scoring.protocol"}
NOT_A_METHOD_KEY = {"categories", "seed", "data.root"}  # and the runtime section
TRANSDUCTIVE_MARK = "†"
REFERENCE_MARK = "‡"  # a context row without diffusion (knn)
NONE = "-"  # a cell with no value: a setting or argument a row does not have, a value a paper does not print


def flat_config(d: dict, prefix: str = "") -> dict:
    """A config as dotted keys (``backbone.name``); a component's ``args`` and lists as one readable value."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "args":  # a component's own options: one value
            out |= flat_config(v, key + ".")
        else:
            out[key] = readable(v) if isinstance(v, (dict, list)) else v
    return out


def readable(value: dict | list) -> str:
    """A config value as a table cell: ``width=128, depth=3`` for a mapping, ``a, b`` for a list."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return ", ".join(map(str, value))


def is_model_key(key: str) -> bool:
    """A (flattened) config key of the noise net and its training: meaningless for rows without one (knn)."""
    return key.startswith(noise_net_keys())


@functools.lru_cache(maxsize=4096)
def row_config(config: str) -> dict:
    """A row's ``config`` (JSON) parsed, once however many tables read it (shared: not to be changed)."""
    return json.loads(config)


@functools.lru_cache(maxsize=4096)
def flat_row_config(config: str) -> dict:
    """``row_config`` flattened (``flat_config``; shared: not to be changed)."""
    return flat_config(row_config(config))


def row_configs(frame: pd.DataFrame) -> list[dict]:
    """Each row's flattened config; rows without a noise net show ``NONE`` for its keys."""
    no_model = frame["noise_net"].eq("none")
    return [{k: NONE if flag and is_model_key(k) else v for k, v in flat_row_config(c).items()}
            for c, flag in zip(frame["config"], no_model, strict=True)]


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """Config keys (besides category, seed and the method columns) that differ between rows; a noise
    net's keys count only between rows that have one."""
    configs = row_configs(frame)
    shown = SHOWN_BY_METHOD | NOT_A_METHOD_KEY
    return [k for k in dict.fromkeys(k for c in configs for k in c)
            if k not in shown and not k.startswith("runtime.")
            and len({str(c.get(k)) for c in configs} - {NONE}) > 1]


def with_variant_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` as tables show it, and its label columns: the method columns (``METHOD``; a scorer argument
    that differs between rows of one scorer, such as t in a sweep, in a column of its own after the scorer;
    the dataset by ``dataset_names``), then each config key that differs between rows."""
    frame = frame.copy()
    keys = varying_keys(frame)
    configs = row_configs(frame)
    for k in keys:
        frame[k] = [NONE if c.get(k) is None else str(c.get(k)) for c in configs]
    args = varying_scorer_args(frame)
    labels = scorer_labels(frame)
    for arg in args:
        values = frame[f"scorer.{arg}"]
        frame[arg] = [NONE if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v) for v in values]
        labels = labels.str.replace(rf"(?<=[(,]){re.escape(arg)}=[^,)]*,?", "", regex=True)
    labels = labels.str.replace(",)", ")").str.replace("()", "")
    mark = frame["transductive"] & ~frame["transductive"].all()  # every row: said once, in the notes
    frame["scorer"] = (labels + np.where(mark, TRANSDUCTIVE_MARK, "")
                       + np.where(reference_scorers(frame["scorer"]), REFERENCE_MARK, ""))
    frame["dataset"] = dataset_names(frame)
    at = METHOD.index("scorer") + 1
    return frame, [*METHOD[:at], *args, *METHOD[at:], *keys]


def varying_scorer_args(frame: pd.DataFrame) -> list[str]:
    """Scorer arguments (``scorer.<arg>`` columns) whose value differs between rows of one scorer."""
    columns = [c for c in frame.columns if c.startswith("scorer.")]
    return [c.removeprefix("scorer.") for c in columns
            if (frame.groupby("scorer")[c].nunique(dropna=True) > 1).any()]


def dataset_names(frame: pd.DataFrame) -> pd.Series:
    """The name tables give each row's data: ``data.args.name`` when the config sets it (a folder of one's own
    read by the MVTec-layout loader), else the loader's (``mvtec``: what a paper's rows beside it are called)."""
    names = [(row_config(config).get("data", {}).get("args") or {}).get("name") or dataset
             for dataset, config in zip(frame["dataset"], frame["config"], strict=True)]
    return pd.Series(names, index=frame.index)


def label_header(column: str) -> str:
    """A label column's header: a config key by its last part (``noise_net.feature_norm``: feature norm; a
    component's ``args``: noise net args)."""
    section, _, key = column.rpartition(".")
    return (f"{section.rpartition('.')[2]} {key}" if key == "args" and section else key).replace("_", " ")


def method_value(column: str, value: str) -> str:
    """A label cell in a method's name: a config key's or scorer argument's value with its key (``epochs=20``),
    a component's name or arguments as they are."""
    plain = column in METHOD or column.endswith(".args") or value == NONE
    return value if plain else f"{label_header(column).replace(' ', '_')}={value}"


def scorer_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's scorer as displayed, ``name(arg=value,...)``."""
    return frame["scorer_label"]


def row_file(row: pd.Series, column: str) -> Path:
    """A file a row names in ``column`` (``maps_file``, ``all_maps_file``): relative to its ``run_folder``
    (older rows: absolute); one that leads outside the run folder (``../..``) is refused, naming it."""
    folder, name = Path(row["run_folder"] or "."), Path(str(row[column]))
    path = folder / name
    if not name.is_absolute() and not path.resolve().is_relative_to(folder.resolve()):
        raise AdbenchError(f"a row of {folder} names {column} {str(row[column])!r}, which leads outside its run "
                           "folder: an edited or foreign results file? (adbench writes it inside, e.g. maps/...)")
    return path


def with_method_column(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``method`` column: the scorer and what else differs between methods, config values
    with their keys (``osd_irf_mean / t=500 / efficientnet_lite0 / feature_norm=none``)."""
    frame, method = with_variant_columns(frame)
    varying = [c for c in method if frame[c].astype(str).nunique() > 1] or ["scorer"]
    named = pd.DataFrame({c: [method_value(c, str(v)) for v in frame[c]] for c in varying}, index=frame.index)
    return frame.assign(method=named.agg(" / ".join, axis=1))


def bare_methods(frame: pd.DataFrame) -> pd.Series:
    """Each row's method label (``with_method_column``) without its marks: what figures and significance tests
    name a method by."""
    return with_method_column(frame)["method"].str.replace(TRANSDUCTIVE_MARK, "").str.replace(REFERENCE_MARK, "")


def is_reference(method: str) -> bool:
    """A method label (``with_method_column``) of a reference row (knn): never ranked."""
    return REFERENCE_MARK in str(method)


def reference_scorers(scorers: pd.Series) -> pd.Series:
    """Which of ``scorers`` (names, or labels as tables show them: arguments and marks after the name) are
    references without diffusion (their cards' ability ``reference``): marked, never ranked."""
    from adbench.registry import SCORERS

    names = scorers.astype(str).str.extract(r"^([^(\s‡†*§]+)", expand=False).fillna("")
    return names.map(lambda name: SCORERS.can(name, "reference")).astype(bool)
