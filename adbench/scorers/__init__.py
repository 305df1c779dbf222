"""Scorers: every module registers its scorers on import."""

from adbench.scorers import invad, osd_irf, reconstruction  # noqa: F401
