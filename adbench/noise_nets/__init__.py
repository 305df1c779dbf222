"""Noise nets eps_theta(x_t, t): every module registers its presets on import."""

from adbench.noise_nets import dit, mlp, unet  # noqa: F401
