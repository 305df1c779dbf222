"""Every spec of a config checked before any work starts (no training hours lost to a typo): the
dataset, backbone and noise net by name and arguments, each scorer built and run once on a
one-position input under the noise schedule it will score with, the device, and the data (every test
image and mask)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adbench.config import RunConfig
from adbench.data.base import Dataset, check_mask_size, image_size_of
from adbench.device import prepare_cuda_determinism, resolve_device
from adbench.diffusion.schedule import Schedule
from adbench.diffusion.train import training_schedule
from adbench.engine.build import build_scorer, scorer_label
from adbench.errors import AdbenchError, ConfigError
from adbench.progress import progress_bar
from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS
from adbench.scorers.base import FitsFeatures


class StandIn(nn.Module):
    """A noise net predicting its input: enough for a scorer to walk its whole schedule."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x


def check_scorer(spec: dict[str, Any], schedule: Schedule) -> None:
    """Build the scorer of ``spec`` and score one 1 x 1 feature map with it: wrong names, unknown or
    mistyped arguments and timesteps outside ``schedule`` fail here, by the scorer's label."""
    label = scorer_label(spec)
    SCORERS.check(spec["name"], f"scorer {label}", **{k: v for k, v in spec.items() if k != "name"})
    try:
        scorer = build_scorer(spec)
        x = torch.zeros(2, 1, 1, 1)
        if isinstance(scorer, FitsFeatures):
            scorer.fit(x, torch.Generator().manual_seed(0), x.device)
        if scorer.applicable:
            scorer.score(StandIn(), schedule, x, torch.Generator().manual_seed(0))
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"scorer {label}: {exc}") from None


def preflight(cfg: RunConfig) -> None:
    """Refuse ``cfg`` before anything is loaded or trained if a component it names cannot be built; for a
    deterministic config, set cuBLAS up for determinism while no CUDA work has run yet."""
    if cfg.deterministic:
        prepare_cuda_determinism()
    schedule = training_schedule(cfg.train)
    checks = [lambda: check_dataset(cfg), lambda: BACKBONES.get(cfg.backbone.name),
              lambda: NOISE_NETS.check(cfg.noise_net.name, "noise_net.args", in_channels=1, **cfg.noise_net.args),
              *(lambda spec=spec: check_scorer(spec, schedule) for spec in cfg.scoring.scorers),
              lambda: check_extra_metrics(cfg.scoring.extra_metrics, cfg.data.dataset),
              lambda: check_held_out_and_submission(cfg)]
    errors = []
    for check in checks:  # every wrong name and argument at once
        try:
            check()
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    check_device(cfg.runtime.device)


def check_extra_metrics(keys: list[str], dataset: str) -> None:
    """Refuse an unknown optional metric, and AU-sPRO on a dataset without annotated defect regions."""
    from adbench.metrics import SPRO_PREFIX, optional_metrics

    known = [m.key for m in optional_metrics()]
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigError(f"scoring.extra_metrics: unknown {', '.join(unknown)}; the optional metrics are "
                          f"{', '.join(known)}")
    spro = [k for k in keys if k.startswith(SPRO_PREFIX)]
    if spro and not dataset_has(dataset, "defect_regions"):
        raise ConfigError(f"scoring.extra_metrics: {', '.join(spro)} need each defect's own mask and saturation "
                          f"(MVTec LOCO's defects_config.json); dataset {dataset!r} has none: use mvtec_loco")


def dataset_has(name: str, ability: str) -> bool:
    """Whether dataset ``name``'s card declares ``ability`` (True for an unknown name: check_dataset names it)."""
    return name not in DATASETS or DATASETS.can(name, ability)


def check_held_out_and_submission(cfg: RunConfig) -> None:
    """Refuse validation normals a dataset lacks, and SegF1 or a submission without held-out normals (their
    threshold) or on a dataset without private test sets."""
    data, scoring = cfg.data, cfg.scoring
    if data.held_out == "validation" and not dataset_has(data.dataset, "validation_normals"):
        raise ConfigError(f"data.held_out: validation needs the dataset's own normal validation images; "
                          f"{data.dataset!r} has none (mvtec_ad2, mvtec_loco and MVTec-layout folders with "
                          "validation/good do)")
    asks = (("scoring.extra_metrics: pixel_segf1", "pixel_segf1" in scoring.extra_metrics),
            ("scoring.submission", scoring.submission))
    needs_threshold = [k for k, asked in asks if asked]
    if needs_threshold and scoring.resolved().transductive:
        raise ConfigError(f"{' and '.join(needs_threshold)} binarise at mean + 3 std of held-out normal images, "
                          "which transductive (test-minmax) normalisation does not hold out: use normalisation train")
    if scoring.submission:
        if not dataset_has(data.dataset, "private_tests"):
            raise ConfigError(f"scoring.submission writes MVTec AD 2's private test sets; dataset {data.dataset!r} "
                              "has none: use mvtec_ad2")
        require_tifffile()


def check_dataset(cfg: RunConfig) -> None:
    data = cfg.data
    try:
        DATASETS.check(data.dataset, "data.args", **({"root": data.root} if data.root else {}), **data.args)
    except ConfigError as exc:
        if "missing a required argument: 'root'" not in str(exc):
            raise
        raise ConfigError(f"dataset {data.dataset!r} is read from a folder: give data.root (--data-root), the "
                          "folder that holds its categories") from None


def check_data(dataset: Dataset, categories: list[str], train_categories: list[str], regions: bool = False,
               private: bool = False) -> None:
    """Before any training: every scored category's test images readable (their headers), each anomalous one
    with a mask of its size, every training category with training images (its listing), with ``regions``
    (AU-sPRO asked) each scored category's saturation areas (MVTec LOCO's ``defects_config.json``), and with
    ``private`` (``scoring.submission``) its private test sets (MVTec AD 2's)."""
    for category in train_categories:
        dataset.train(category)
    for category in categories:  # preflight refuses these options on datasets without them
        if regions:
            dataset.saturations(category)  # type: ignore[attr-defined]
        if private:
            dataset.private_tests(category)  # type: ignore[attr-defined]
    samples = [s for category in categories for s in dataset.test(category)]
    with progress_bar() as bar:
        task = bar.add_task("checking test images and masks", total=len(samples))
        for sample in samples:
            image_size_of(sample.image_path)
            check_mask_size(sample)
            bar.update(task, advance=1)


def check_device(name: str) -> None:
    """Refuse a device this machine does not have, naming what it has."""
    try:
        device = resolve_device(name)
    except RuntimeError:
        raise ConfigError(f"runtime.device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AdbenchError(f"runtime.device {name!r}: CUDA is not available here (torch {torch.__version__}, "
                           f"{'no GPU or driver found' if torch.version.cuda else 'a CPU-only build'}); "
                           "use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise AdbenchError(f"runtime.device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"runtime.device {name!r}: adbench runs on cpu, cuda or mps")


TIFF_HINT = "pip install 'adbench-uiad[ad2]'"


def require_tifffile() -> Any:
    """The TIFF writer the float16 maps of ``scoring.submission`` need (an optional dependency), or a one-line
    install hint."""
    try:
        import tifffile
    except ImportError:
        raise ConfigError(f"scoring.submission writes float16 TIFF maps with tifffile: {TIFF_HINT}") from None
    return tifffile
