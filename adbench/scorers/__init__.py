"""Scorers: every module registers its scorers on import."""

from adbench.scorers import invad, osd_irf  # noqa: F401
