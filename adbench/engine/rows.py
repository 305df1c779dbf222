"""A cell's result row, as the catalogue of ``adbench.columns`` declares it, and the files beside it (kept maps,
the training cost of its noise net)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adbench.allocator import host_allocator
from adbench.atomic import atomic_write
from adbench.columns import make_row
from adbench.device import (
    device_name,
    precision,
)
from adbench.engine.build import (
    cell_config,
    needs_model,
    scorer_columns,
    scorer_label,
)
from adbench.engine.context import MIN_HOLDOUT, Context, EvalSet
from adbench.engine.keys import backbone_weights, cell_key, input_stats
from adbench.progress import make_console
from adbench.provenance import git_commit, versions
from adbench.scorers.scoring import (
    ImageScores,
)

__all__ = ["FPS_PASSES", "MASK_THRESHOLDS", "image_rows", "keep_maps", "kept_samples", "peak_memory", "result_row",
           "save_maps", "training_cost", "write_npz"]

console = make_console()


FPS_PASSES = 5  # timed passes of the FPS column, after one warm-up; their median is reported


def peak_memory(device: torch.device) -> dict[str, Any]:
    """The most memory the cell held: CUDA memory allocated by torch since the cell began, or on the CPU the
    process's peak resident set (a high-water mark of the whole process, not of the cell alone)."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "peak_memory_of": "cuda allocated"}
    import resource

    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
            "peak_memory_of": "process peak RSS"}


def training_cost(ctx: Context, category: str, has_model: bool = True) -> dict[str, Any]:
    """The training time of the noise net that scores ``category`` (its ``.train.json``, written when it was
    trained, in this run or the one it was copied from) and its loss log relative to the run folder; NaN and
    empty when it has none (knn) or was trained before these were kept."""
    path = ctx.model_path(category)
    if not has_model:
        return {"train_seconds": float("nan"), "train_log": "", "train_world_size": 0, "train_batch_per_process": 0,
                "train_precision": ""}
    try:
        record = json.loads(path.with_suffix(".train.json").read_text())
        seconds = float(record["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        record, seconds = {}, float("nan")
    log = path.with_suffix(".train_log.csv")
    # the processes it trained on and each one's share of the global batch (train.batch_size); 0: not recorded
    world = int(record.get("world_size", 0))
    return {"train_seconds": seconds, "train_log": str(log.relative_to(ctx.run_dir)) if log.is_file() else "",
            "train_world_size": world, "train_batch_per_process": int(record.get("batch_per_process", 0)),
            "train_precision": str(record.get("precision", ""))}


MASK_THRESHOLDS = {"nearest": 0.0, "bilinear": 0.5}  # load_mask's binarisation after each resize


def image_rows(scores: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """Each scored unit's score and label (``EvalSet.image_level``): what paired tests between methods read."""
    return {"image_scores": [float(v) for v in scores], "image_labels": [int(v) for v in labels] if len(scores)
            else []}


def result_row(ctx: Context, data: EvalSet, spec: dict[str, Any], scorer: Any, out: ImageScores,
               metrics: dict[str, float], seconds: tuple[float, float, float], cost: dict[str, Any],
               submission: str = "") -> dict[str, Any]:
    """A cell's metrics with its speed and ``cost``, scoring settings, full config and provenance, as the
    result-row catalogue declares them (``adbench.columns``; the maps of a few images are saved alongside when
    ``save_maps`` asks for them; ``submission``: the folder its private test sets were written to)."""
    cfg = ctx.cfg
    scoring = cfg.scoring.resolved()
    cell = cell_config(cfg, data.category, spec)
    key = cell_key(cell)
    mean, std, stats_source = input_stats(cfg)
    maps_file = save_maps(ctx, data, out.maps, out.scores, key) if cfg.scoring.save_maps > 0 and len(out.maps) else ""
    kept = cfg.scoring.keep_maps and data.masks is not None and len(out.maps)
    all_maps = keep_maps(ctx, data, out.maps, key) if kept else ""
    console.print(f"  {data.category:>12} {scorer_label(spec):<28} image AU-ROC {metrics['image_auroc']:.3f}  "
                  f"pixel AU-ROC {metrics['pixel_auroc']:.3f}")
    return make_row({
        "dataset": cfg.data.dataset, "category": data.category, "scorer": spec["name"],
        "scorer_label": scorer_label(spec), **scorer_columns(spec), "setting": cfg.data.setting,
        "trained_on": ",".join(cfg.trained_on(data.category)),
        "backbone": cfg.backbone.name, "backbone_weights": backbone_weights(cfg).identity,
        "input_mean": list(mean), "input_std": list(std), "input_stats": stats_source,
        "noise_net": cfg.noise_net.name if needs_model(spec) else "none",
        "feature_norm": cfg.noise_net.feature_norm, **metrics,
        "fps": 1.0 / (seconds[0] + seconds[1]), "scorer_fps": 1.0 / seconds[1], "fps_iqr": seconds[2],
        "fps_passes": FPS_PASSES,
        "nfe": scorer.nfe, "n_test": len(data.labels), "n_anomalous": int(data.labels.sum()),
        # each test image's score and label, in test order: paired tests between methods (report --significance)
        **image_rows(*data.image_level(out.scores)),
        "n_holdout": len(data.held_feats), "holdout_below_min": 0 < len(data.held_feats) < MIN_HOLDOUT,
        "n_empty_masks": data.empty_masks(),
        "pixel_metrics": data.masks is not None, "protocol": cfg.scoring.protocol_label(),
        # the metric pass: over the maps in memory, or streamed from disk (runtime.metric_memory_mb): same values
        "metric_pass": "streamed" if data.spill else "in memory",
        "image_score": out.image_score,
        # the held-out normals' pixel mean + 3 std: SegF1's and the submission's binarisation (NaN: none held out)
        "segf1_threshold": out.seg_threshold, "held_out": cfg.data.held_out,
        "smoothing_sigma": scoring.smoothing_sigma, "pool_size": scoring.pool_size,
        "align_corners": scoring.align_corners, "mask_resize": scoring.mask_resize, "pro_limit": cfg.scoring.pro_limit,
        "aupro_impl": cfg.scoring.aupro_impl,
        # a mask pixel is anomalous when > 0 in the file; resized bilinearly (ADer), when > this share of 255 after
        "mask_threshold": MASK_THRESHOLDS[scoring.mask_resize],
        "normalisation": scoring.normalisation, "transductive": scoring.transductive,
        "weights_scored": ("ema" if cfg.scoring.use_ema else "raw") if needs_model(spec) else "none",
        "seed": cfg.seed, "cell_key": key, "config_hash": cell_key(cfg),
        "config": json.dumps(cell.to_dict(), sort_keys=True), "versions": json.dumps(versions()),
        "git_commit": git_commit(), "device": device_name(ctx.device),
        "fps_batch_size": min(cfg.scoring.fps_images, len(data.samples)),
        "precision": precision(ctx.device, ctx.cfg.noise_net.precision), "backbone_precision": ctx.backbone_precision,
        "host_allocator": host_allocator(), "maps_file": maps_file, "all_maps_file": all_maps,
        "submission_dir": submission,
        **training_cost(ctx, data.category, needs_model(spec)),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda_deterministic": ctx.device.type == "cuda" and torch.are_deterministic_algorithms_enabled(), **cost,
    })


def kept_samples(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` test images whose maps are kept: anomalous and normal alike (half each, the
    anomalous first, in test order; one kind short, the other fills in)."""
    anomalous, normal = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    n_anomalous = min(len(anomalous), max(n - len(normal), -(-n // 2)))
    return np.concatenate([anomalous[:n_anomalous], normal[: n - n_anomalous]]).astype(int)


def save_maps(ctx: Context, data: EvalSet, maps: np.ndarray, scores: np.ndarray, key: str) -> str:
    """Keep the maps of a few test images (anomalous first) for figures, with their image scores and the share
    of the category's test images scored lower (a score's place on the method's own scale); returns the
    file's path relative to the run folder (the folder may be moved, or reported on from anywhere)."""
    order = kept_samples(data.labels, ctx.cfg.scoring.save_maps)
    masks = data.masks[order] if data.masks is not None else np.zeros((len(order), *maps.shape[1:]), bool)
    return write_npz(ctx, f"{key}.npz", maps=maps[order].astype(np.float16), masks=masks, labels=data.labels[order],
                     scores=scores[order], images=np.array([str(data.samples[i].image_path) for i in order]),
                     score_below=(scores[None, :] < scores[order, None]).mean(axis=1))


def keep_maps(ctx: Context, data: EvalSet, maps: np.ndarray, key: str) -> str:
    """Every test image's map (float32, as scored) and mask (``scoring.keep_maps``), for paired bootstraps of the
    pixel metrics between methods (``report --significance``); the file's path relative to the run folder."""
    return write_npz(ctx, f"{key}-all.npz", maps=maps, masks=data.masks, labels=data.labels)


def write_npz(ctx: Context, name: str, **arrays: np.ndarray) -> str:
    """``arrays`` compressed into the run folder's ``maps/<name>``, atomically; the path relative to the run
    folder (the folder may be moved, or reported on from anywhere)."""
    path = ctx.run_dir / "maps" / name

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: savez would append .npz to a path
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write)
    return str(path.relative_to(ctx.run_dir))

