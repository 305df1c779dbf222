"""Progress and messages in a log file (stderr not a terminal): plain lines with progress and ETA, never
wrapped, tables without boxes."""

import io

from rich.console import Console
from rich.table import Table

import adbench.progress as progress


def test_a_log_gets_a_line_per_interval_with_eta_and_one_at_completion(monkeypatch):
    clock = iter([0.0, 10.0, 31.0, 40.0, 75.0, 80.0])  # add_task, then one reading per update
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    buffer = io.StringIO()
    with progress.LineProgress(Console(file=buffer, width=40, soft_wrap=True)) as bar:
        task = bar.add_task("multiclass: train", total=100)
        bar.update(task, advance=10)  # 10 s: under 30 s since the start, no line
        bar.update(task, advance=20)  # 31 s: 30 done in 31 s, 70 left -> ETA 72 s
        bar.update(task, advance=10, description="multiclass: train loss 0.5")  # 40 s: 9 s since the last line
        bar.update(task, advance=60)  # 75 s: complete
        bar.update(task, advance=0)  # nothing more once complete
    assert buffer.getvalue().splitlines() == [
        "multiclass: train: 30/100 (30%), 0:00:31 elapsed, ETA 0:01:12",
        "multiclass: train loss 0.5: 100/100 (100%), 0:01:15 elapsed",
    ]


def test_log_messages_and_table_rows_are_never_wrapped(monkeypatch):
    """Under pytest stderr and stdout are no terminal, as in a cluster job's log."""
    buffer = io.StringIO()
    for stderr in (True, False):
        target = progress.make_console(stderr)
        assert not target.is_terminal and target.soft_wrap and target.width == progress.LOG_WIDTH
        monkeypatch.setattr(target, "file", buffer)
        message = "warning: " + "x" * 150
        target.print(message, markup=False)
        table = Table()
        table.add_column("scorer")
        table.add_column("description")
        table.add_row("osd_irf_mean", "one-step inverse residual field, " * 8)
        target.print(table)
    rows = [line for line in buffer.getvalue().splitlines() if "osd_irf_mean" in line]
    assert buffer.getvalue().splitlines().count("warning: " + "x" * 150) == 2
    assert len(rows) == 2 and all(("one-step inverse residual field, " * 8).strip() in row for row in rows)
    assert isinstance(progress.progress_bar(), progress.LineProgress)
