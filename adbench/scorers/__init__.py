"""Scorers: every module registers its scorers on import."""

from adbench.scorers import invad, knn, osd_irf, reconstruction  # noqa: F401
