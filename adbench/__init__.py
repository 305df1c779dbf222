"""adbench: benchmark and ablation harness for diffusion-based industrial anomaly detection.

The library API (``adbench.api``) is importable from here: ``adbench.run(cfg)``, ``train``, ``evaluate``,
``grid``, ``sweep_t``, ``study``, ``report``, ``fps`` and ``load_results``; it is loaded on first use, so
``import adbench`` (and the CLI) stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "fps", "grid", "load_results", "report", "run", "study", "sweep_t", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from adbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'adbench' has no attribute {name!r}")
