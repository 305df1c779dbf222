"""The README's example table is exactly what `adbench report` makes of the rows stored beside it."""

from pathlib import Path

import pandas as pd

from adbench.reporting.tables import markdown_table
from adbench.results import upgraded

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_what_report_writes_from_its_stored_rows():
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- report:begin -->\n")[1].split("\n<!-- report:end -->")[0]
    rows = upgraded(pd.read_parquet(ROOT / "reports" / "readme" / "sweep-t-demo-quick.parquet"))  # older rows
    assert shown + "\n" == markdown_table(rows, per_category=False)
    body = shown.split("### Mean over categories\n\n")[1]  # the guide shows it too, under its own heading
    assert body in (ROOT / "docs" / "grids.md").read_text()
    assert (ROOT / "reports" / "readme" / "sweep-t-demo-quick_metrics_vs_t.png").stat().st_size > 10_000
