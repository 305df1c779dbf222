"""The result-row catalogue: every column of a result row once, with its type, meaning and the value a row
written before the column existed meant.

The engine builds a row with ``make_row`` (every column it declares, none it does not, each of its type,
stamped with ``ROW_VERSION``); whatever reads rows (reports, plots, significance, trackers, the API) reads
them through ``upgrade``, which fills an older row's missing columns once with their ``legacy`` values, so
every results folder ever written still reports. The metric columns come from the metric table
(``adbench.metrics.table``): a registered metric is a column here without another line.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adbench.metrics.streaming import STREAMED
from adbench.metrics.table import FPS, MAD, METRICS, Column, Metric

__all__ = ["GROUPS", "ROW_VERSION", "ResultColumn", "catalogue", "column", "json_schema", "make_row", "upgrade"]

# 1: the rows written before this catalogue (no row_version column); 2: typed and complete; 3: pixel_aupimo is
# the reference's (its snapped FPR bounds), a version-2 row's pixel_aupimo (the exact bounds) is pixel_aupimo_exact
ROW_VERSION = 3
RENAMED = {3: {"pixel_aupimo": "pixel_aupimo_exact"}}  # version -> {column in older rows: its name since}
REQUIRED = object()  # ``legacy`` of a column every row ever written has
GROUPS = {"what": "what was scored", "metric": "quality (the metric table)", "speed": "speed and cost",
          "scoring": "scoring settings", "data": "the test data", "provenance": "provenance",
          "files": "files beside the row (relative to the run folder)", "read": "added when rows are read"}


@dataclass(frozen=True)
class ResultColumn:
    key: str  # the row's column; ``scorer.*``: one per scorer argument
    type: type  # str, int, float, bool or list
    group: str  # a key of GROUPS
    note: str
    legacy: Any = REQUIRED  # what a row without the column meant (a function of the row: derived from it)
    header: str = ""  # the table header of a shown column
    unit: str = ""  # "%" for metrics shown x 100
    in_mad: bool = False
    passes: tuple[str, ...] = ()  # metric passes that compute it (in memory, streamed, bootstrap)
    always: bool = True  # False: only in the rows that asked for it (optional metrics, kinds apart)
    stored: bool = True  # False: not in the results file, added when rows are read

    def legacy_value(self, row: dict[str, Any]) -> Any:
        return self.legacy(row) if callable(self.legacy) else self.legacy


def _metric_column(metric: Column) -> ResultColumn:
    is_metric = isinstance(metric, Metric)
    return ResultColumn(metric.key, float, "metric" if metric is not FPS else "speed", metric.note,
                        float("nan"), metric.header,  # a metric a row lacks: not computed
                        "%" if metric.percent else metric.unit, is_metric and metric.in_mad and not metric.optional,
                        passes_of(metric) if is_metric else (), not (is_metric and metric.optional))


def passes_of(metric: Metric) -> tuple[str, ...]:
    """The metric passes that compute ``metric``: in memory always; the streamed pass and the paired bootstrap
    compute the four pixel metrics of ``STREAMED``."""
    return ("in memory", *(("streamed", "bootstrap") if metric.key in STREAMED else ()))


def _config(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["config"]) if isinstance(row.get("config"), str) else {}


NAN = float("nan")
_COLUMNS: list[ResultColumn] = [
    ResultColumn("row_version", int, "provenance", "The catalogue version the row was written by (1: before it)", 1),
    ResultColumn("dataset", str, "what", "Dataset name (adbench list datasets)"),
    ResultColumn("category", str, "what", "Category scored"),
    ResultColumn("scorer", str, "what", "Scorer name (adbench list scorers)"),
    ResultColumn("scorer_label", str, "what", "The scorer as displayed: name(arg=value,...) with the arguments set",
                 lambda row: row["scorer"]),
    ResultColumn("scorer.*", object, "what",
                 "One column per scorer argument, defaults included (scorer.t, scorer.steps)",
                 always=False),
    ResultColumn("setting", str, "what", "multiclass (one noise net for the categories in trained_on) or singleclass; "
                 "empty: not recorded", ""),
    ResultColumn("trained_on", str, "what", "The categories whose normal images trained the row's noise net", ""),
    ResultColumn("backbone", str, "what", "Backbone name", ""),
    ResultColumn("backbone_weights", str, "what", "The backbone weights' identity (hub tag or file hash)", ""),
    ResultColumn("input_mean", list, "what", "Input normalisation mean per channel", []),
    ResultColumn("input_std", list, "what", "Input normalisation std per channel", []),
    ResultColumn("input_stats", str, "what", "Where input_mean and input_std come from", ""),
    ResultColumn("noise_net", str, "what", "Noise net name; none for a scorer without one (knn)", ""),
    ResultColumn("feature_norm", str, "what", "How features were normalised before the noise net", ""),
    ResultColumn("scorer_fps", float, "speed", "Images/s of the scorer alone (features given)", NAN, unit="images/s"),
    ResultColumn("fps_iqr", float, "speed", "Interquartile range of the timed passes' seconds", NAN, unit="s"),
    ResultColumn("fps_passes", int, "speed", "Timed passes whose median gives fps (after one warm-up)", 1),
    ResultColumn("fps_batch_size", int, "speed", "Test images in the timed batch", 0),
    ResultColumn("nfe", int, "speed", "Network function evaluations per image", 0),
    ResultColumn("score_seconds", float, "speed", "Seconds the cell took to score and evaluate", NAN, unit="s"),
    ResultColumn("peak_memory_mb", float, "speed", "The most memory the cell held (peak_memory_of says which)", NAN,
                 unit="MiB"),
    ResultColumn("peak_memory_of", str, "speed", "cuda allocated, or process peak RSS on the CPU", ""),
    ResultColumn("train_seconds", float, "speed",
                 "Training time of the row's noise net (NaN: none, or not recorded)", NAN,
                 unit="s"),
    ResultColumn("train_world_size", int, "speed", "Processes the noise net trained on (0: not recorded)", 0),
    ResultColumn("train_batch_per_process", int, "speed",
                 "Each process's share of train.batch_size (0: not recorded)", 0),
    ResultColumn("train_precision", str, "speed", "Training precision (empty: not recorded)", ""),
    ResultColumn("n_test", int, "data", "Test images scored", 0),
    ResultColumn("n_anomalous", int, "data", "Anomalous test images", 0),
    ResultColumn("image_scores", list, "data", "Each scored unit's image score, in test order (paired tests)", []),
    ResultColumn("image_labels", list, "data", "Each scored unit's label, in test order", []),
    ResultColumn("n_holdout", int, "data", "Held-out normal training images weighting the image-score components", 0),
    ResultColumn("holdout_below_min", bool, "data", "Fewer held-out normals than wanted (20)", False),
    ResultColumn("n_empty_masks", int, "data", "Anomalous test images whose mask is empty", 0),
    ResultColumn("pixel_metrics", bool, "data", "Whether the data has pixel masks",
                 lambda row: not math.isnan(row["pixel_auroc"])),
    ResultColumn("metrics_by_kind", str, "data", "JSON: each anomaly kind's metrics (MVTec LOCO, kinds scored apart)",
                 always=False),
    ResultColumn("protocol", str, "scoring", "Scoring protocol (invad, ader, ...)", ""),
    ResultColumn("metric_pass", str, "scoring", "in memory, or streamed from disk (runtime.metric_memory_mb)",
                 "in memory"),
    ResultColumn("image_score", str, "scoring", "How the image score is made from the map (e.g. nll+diff)", ""),
    ResultColumn("segf1_threshold", float, "scoring",
                 "The held-out normals' pixel mean + 3 std (SegF1, submissions)", NAN),
    ResultColumn("held_out", str, "scoring", "Which normal images are held out", ""),
    ResultColumn("smoothing_sigma", float, "scoring", "Gaussian smoothing of the maps", 0.0),
    ResultColumn("pool_size", int, "scoring", "Average pooling of the maps", 1),
    ResultColumn("align_corners", bool, "scoring", "Map upsampling's align_corners", False),
    ResultColumn("mask_resize", str, "scoring", "nearest or bilinear", "nearest"),
    ResultColumn("pro_limit", float, "scoring", "FPR up to which AU-PRO is integrated", 0.3),
    ResultColumn("aupro_impl", str, "scoring", "exact, or mvtec3d (MVTec 3D-AD's sampled curve)", "exact"),
    ResultColumn("mask_threshold", float, "scoring", "Mask binarisation after each resize (share of 255)", 0.0),
    ResultColumn("normalisation", str, "scoring", "How image-score components are standardised (train, test, ...)",
                 "train"),
    ResultColumn("transductive", bool, "scoring", "Components min-max normalised over the test set", False),
    ResultColumn("weights_scored", str, "scoring", "ema or raw weights scored; none without a noise net", ""),
    ResultColumn("seed", int, "provenance", "The run's seed", 0),
    ResultColumn("cell_key", str, "provenance",
                 "Key of the cell's config (one category, one scorer); rows without one: "
                 "the hash of their config's JSON",
                 lambda row: hashlib.sha256(row["config"].encode()).hexdigest()[:16]),
    ResultColumn("config_hash", str, "provenance", "Key of the run's config", ""),
    ResultColumn("config", str, "provenance", "JSON: the cell's full config"),
    ResultColumn("versions", str, "provenance", "JSON: package versions", "{}"),
    ResultColumn("git_commit", str, "provenance", "The checkout's commit", ""),
    ResultColumn("device", str, "provenance", "Device that scored (and timed) the cell", ""),
    ResultColumn("precision", str, "provenance", "Scoring precision of the noise net", ""),
    ResultColumn("backbone_precision", str, "provenance", "Precision of the backbone", ""),
    ResultColumn("host_allocator", str, "provenance", "The host memory allocator", ""),
    ResultColumn("deterministic_algorithms", bool, "provenance", "torch deterministic algorithms on", False),
    ResultColumn("cuda_deterministic", bool, "provenance", "Deterministic on CUDA", False),
    ResultColumn("maps_file", str, "files", "A few test images' maps (scoring.save_maps)", ""),
    ResultColumn("all_maps_file", str, "files", "Every test image's map (scoring.keep_maps)", ""),
    ResultColumn("submission_dir", str, "files", "MVTec AD 2's private test sets written for its server", ""),
    ResultColumn("train_log", str, "files", "The noise net's loss log", ""),
    ResultColumn("run_folder", str, "read", "The folder the row was read from", "", stored=False),
    ResultColumn("fps_source", str, "read", "run, or adbench fps (report --fps)", "run", stored=False),
]


def catalogue() -> list[ResultColumn]:
    """Every result column, in row order: identity, the metric table's columns (with any registered since),
    mAD and FPS, then the rest."""
    split = next(i for i, c in enumerate(_COLUMNS) if c.key == "scorer_fps")
    return [*_COLUMNS[:split], *(_metric_column(m) for m in (*METRICS, MAD, FPS)), *_COLUMNS[split:]]


def column(key: str, entries: list[ResultColumn] | None = None) -> ResultColumn:
    """The catalogue's entry of ``key`` (``scorer.t`` is a ``scorer.*`` column), in ``entries`` when given (a
    ``catalogue()`` built once for many lookups)."""
    found = next((c for c in entries or catalogue() if c.key == ("scorer.*" if key.startswith("scorer.") else key)),
                 None)
    if found is None:
        raise KeyError(f"{key!r} is not a result column; see `adbench list columns`")
    return found


def _typed(entry: ResultColumn, key: str, value: Any) -> Any:
    """``value`` as the column's plain Python type (NumPy scalars and lists made plain); a wrong type raises."""
    if entry.type is object:
        return value.item() if hasattr(value, "item") else value
    if entry.type is list:
        if not isinstance(value, list | tuple) and not hasattr(value, "tolist"):
            raise TypeError(f"result column {key}: a list, got {value!r}")
        return [v.item() if hasattr(v, "item") else v for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if entry.type is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if entry.type is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, entry.type) and (entry.type is bool or not isinstance(value, bool)):
        return value
    raise TypeError(f"result column {key}: {entry.type.__name__}, got {value!r}")


def make_row(values: dict[str, Any]) -> dict[str, Any]:
    """A result row: every stored column the catalogue requires, each of its type, stamped with
    ``ROW_VERSION``. A column the catalogue lacks, or a required one missing, is a bug in the engine: it
    raises, naming them."""
    stored = [c for c in catalogue() if c.stored and c.key != "row_version"]
    missing = [c.key for c in stored if c.always and c.key not in values and c.key != "scorer.*"]
    unknown = [k for k in values if not k.startswith("scorer.") and k not in {c.key for c in stored}]
    if missing or unknown:
        raise ValueError(f"result row: missing {missing}, not in the catalogue {unknown} (adbench/columns.py)")
    return {"row_version": ROW_VERSION, **{k: _typed(column(k, stored), k, v) for k, v in values.items()}}


def upgrade(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as this version writes them: an older row's missing columns filled with their ``legacy`` values
    (once: a current row is returned as it is); a row that lacks a column every row has is refused, naming it."""
    entries, out = catalogue(), []
    for row in rows:
        if _version(row) == ROW_VERSION:
            out.append(row)
            continue
        lacking = [c.key for c in entries if c.always and c.legacy is REQUIRED and c.key not in row]
        if lacking:
            raise ValueError(f"not an adbench result row: it lacks {', '.join(lacking)}")
        filled = dict(row)
        for version, names in RENAMED.items():
            if _version(row) < version:
                filled = {names.get(k, k): v for k, v in filled.items()}
        for entry in entries:
            if entry.key != "scorer.*" and entry.always and entry.key not in filled:
                filled[entry.key] = entry.legacy_value(filled)
        for arg, value in _scorer_arguments(filled).items():
            filled.setdefault(f"scorer.{arg}", value)
        filled["row_version"] = ROW_VERSION
        out.append(filled)
    return out


def _version(row: dict[str, Any]) -> int:
    version = row.get("row_version")
    return 1 if version is None or (isinstance(version, float) and math.isnan(version)) else int(version)


def _scorer_arguments(row: dict[str, Any]) -> dict[str, Any]:
    """The scorer arguments the row's config sets (rows written before the ``scorer.*`` columns)."""
    config = _config(row)
    scorers = config.get("scoring", config).get("scorers") or [{}]  # sectioned, or flat as before issue 11
    return {k: v for k, v in scorers[0].items() if k != "name"}


JSON_TYPES: dict[type, Any] = {str: "string", int: "integer", float: ["number", "null"], bool: "boolean",
                               list: "array"}


def json_schema() -> dict[str, Any]:
    """JSON Schema of a stored result row (``adbench schema --rows``)."""
    stored = [c for c in catalogue() if c.stored]
    properties = {c.key: {"description": c.note, **({"type": JSON_TYPES[c.type]} if c.type in JSON_TYPES else {})}
                  for c in stored if c.key != "scorer.*"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "adbench result row",
            "description": f"Row version {ROW_VERSION}; rows without row_version are version 1 (upgrade())",
            "type": "object", "properties": properties,
            "patternProperties": {r"^scorer\.": {"description": column("scorer.*").note}},
            "required": [c.key for c in stored if c.always and c.key != "scorer.*"],
            "additionalProperties": False}

