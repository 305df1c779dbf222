"""``python -m adbench`` runs the command line."""

from adbench.cli import app

app()
