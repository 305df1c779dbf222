"""adbench: benchmark and ablation harness for diffusion-based industrial anomaly detection."""

__version__ = "0.1.0"
