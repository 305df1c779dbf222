"""DDPM schedule, DDIM steps and the noise-net trainer."""
