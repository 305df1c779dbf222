"""One progress style for all long work, and one way to make consoles: a rich bar on a terminal; in a log
file (stderr not a terminal: a cluster job, a pipe) plain greppable lines with progress and ETA, and
messages and table rows never wrapped at 80 columns."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

LOG_EVERY_S = 30.0  # seconds between two progress lines of one task in a log


LOG_WIDTH = 10_000  # columns of a console writing to a log: a table row stays one line


def make_console(stderr: bool = True) -> Console:
    """A console for messages (stderr) or results (stdout): no emoji codes (":100:" stays text), and lines
    are never wrapped by rich (a terminal wraps them itself); in a log, tables are laid out on a line so
    wide that each row stays one greppable line."""
    target = Console(stderr=stderr, emoji=False, soft_wrap=True)
    if not target.is_terminal:
        target.width = LOG_WIDTH
    return target


def progress_bar(shown: bool = True) -> Progress | LineProgress:
    """A transient bar on stderr when it is a terminal, else ``LineProgress``: stdout carries only results;
    nothing at all unless ``shown`` (the other ranks of a distributed training)."""
    if not shown:
        return Progress(disable=True)
    err = make_console()
    if not err.is_terminal:
        return LineProgress(err)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True, console=err)


def duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class LineProgress:
    """Progress as plain lines (the subset of rich's ``Progress`` adbench uses): a task's description, count,
    percentage, elapsed time and ETA, at most every ``every`` seconds and once when it completes."""

    def __init__(self, target: Console, every: float = LOG_EVERY_S) -> None:
        self.target, self.every = target, every
        self.tasks: list[dict[str, Any]] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0) -> int:
        now = time.monotonic()
        self.tasks.append({"description": description, "total": total, "completed": completed, "start": now,
                           "from": completed, "last": now, "finished": False})
        return len(self.tasks) - 1

    def update(self, task: int, advance: float | None = None, description: str | None = None,
               completed: float | None = None, total: float | None = None) -> None:
        state = self.tasks[task]
        for key, value in (("description", description), ("completed", completed), ("total", total)):
            if value is not None:
                state[key] = value
        state["completed"] += advance or 0
        self.log(state)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def log(self, state: dict[str, Any]) -> None:
        now, total, done = time.monotonic(), state["total"], state["completed"]
        finished = total is not None and done >= total
        if state["finished"] or not (finished or now - state["last"] >= self.every):
            return
        state["last"], state["finished"] = now, finished
        elapsed, made = now - state["start"], done - state["from"]
        line = f"{state['description'] or 'progress'}: {done:g}"
        if total:
            line += f"/{total:g} ({100 * done / total:.0f}%)"
        line += f", {duration(elapsed)} elapsed"
        if total and made > 0 and not finished:
            line += f", ETA {duration(elapsed / made * (total - done))}"
        self.target.print(line, markup=False, highlight=False)
