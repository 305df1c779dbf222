"""``python -m adbench`` runs the command line."""

from adbench.cli import app

if __name__ == "__main__":  # not again in the processes a distributed training spawns
    app()
