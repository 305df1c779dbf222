"""A report from stored rows: the tables a layout asks for, the paper's rows under ours, FPS records, figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adbench.errors import AdbenchError

if TYPE_CHECKING:
    import pandas as pd

    from adbench.reporting.papers import PaperTable
    from adbench.reporting.tables import Style

__all__ = ["read_fps_records", "Report", "write_report"]


@dataclass(frozen=True)
class Report:
    """The files a report wrote, the kept-map files its figures lacked, and how many rows it read."""

    written: list[Path]
    missing_maps: list[Path]
    n_rows: int
    unused_renames: list[str]  # --rename names that matched nothing shown
    notices: list[str]  # what the tables do not show that was asked for (a paper none of the rows reproduces)


def read_fps_records(paths: list[Path]) -> list[dict]:
    """The records of ``adbench fps`` files (JSON, read as YAML with its clear errors)."""
    from adbench.config import read_yaml

    records = []
    for path in paths:
        data = read_yaml(path, "FPS records")
        if not isinstance(data.get("records"), list):
            raise AdbenchError(f"{path} is not an `adbench fps` records file (no 'records' list)")
        records += data["records"]
    return records


def write_report(results: list[Path], out: Path, formats: str, layout: str, metric: str, per_category: bool,
                 caption: str | None, label: str | None, paper: str | None, reported: bool, fps_records: list[Path],
                 figures: bool, figure_width: str, page: str, notes: str, rename: dict[str, str],
                 metrics: tuple[str, ...], significance: str) -> Report:
    """``adbench.report``'s work (its docstring says what each argument does); options are checked before any
    row is read."""
    from adbench.reporting.latex import parse_page
    from adbench.reporting.papers import grid_paper, paper_table
    from adbench.reporting.tables import Style, with_fps_records, write_tables
    from adbench.results import load_rows

    style = Style(parse_page(page), notes, rename, metrics, significance)
    if figure_width not in ("column", "page"):
        raise AdbenchError(f"--figure-width must be column or page, got {figure_width!r}")
    frame = load_rows(results)
    paper_key = grid_paper([p.parent if p.suffix == ".parquet" else p for p in results]) if paper is None else \
        "" if paper == "none" else paper
    if reported and not paper_key:
        raise AdbenchError("--reported needs a paper table: --paper osd_irf/table1, invad/table2, ...")
    if fps_records:
        frame = with_fps_records(frame, read_fps_records(fps_records))
    table = paper_table(paper_key) if paper_key else None
    written = write_tables(frame, out, formats, per_category, caption, label, layout, metric, table, reported, style)
    notices = [] if table is None else paper_notices(frame, table, reported, style)
    missing: list[Path] = []
    if figures:
        from adbench.reporting.figures import Drawer
        from adbench.reporting.methods import varying_scorer_args
        from adbench.reporting.plots import plot_comparisons, plot_kept_maps, plot_metrics_vs

        if not frame["maps_file"].astype(bool).any():
            notices.append("--figures: no row kept anomaly maps (scoring.save_maps 0, or rows written without "
                           "them): no map figures")
        maps_dir, drawer = out.parent / f"{out.stem}_maps", Drawer()
        missing = plot_kept_maps(frame, maps_dir, drawer)[1]
        plot_comparisons(frame, maps_dir, figure_width, style.page, style.name, drawer)
        written += drawer.finish()
        if "t" in varying_scorer_args(frame):
            written += plot_metrics_vs(frame, "t", out.parent / f"{out.stem}_metrics_vs_t", "t sensitivity",
                                       figure_width, style.page, style.metrics, style.name)
    return Report(written, missing, len(frame), style.unused_names(), notices)


def paper_notices(frame: pd.DataFrame, table: PaperTable, reported: bool, style: Style) -> list[str]:
    """A line when ``table`` (a paper's) adds nothing to the methods layout of ``frame``: no row reproduces one of
    its cells, none averages its full category set, and (with ``reported``) it has no other method on these
    datasets (the averaged table the methods layout showed, ``style``'s)."""
    probe = style.averaged(frame, table, reported)
    if set(probe.kinds) & {"paper", "reported"} or probe.uncompared:
        return []
    datasets = ", ".join(sorted({r.dataset for r in table.rows}))
    return [f"--paper {table.key}: no row of these results reproduces one of its cells (its rows are on {datasets}; "
            f"`ours` in adbench/papers/{table.key.split('/')[0]}.yaml says which scorer and arguments do): the tables "
            "show none of its values" + ("" if reported else "; --reported adds its other methods on those datasets")]
