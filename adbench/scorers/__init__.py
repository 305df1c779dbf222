"""Scorers (declared by name in ``adbench.components``)."""
