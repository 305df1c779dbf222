"""The papers' published numbers (adbench/papers/*.yaml): each transcribed row against the line of the paper's
text it comes from, the papers' own arithmetic (mAD = mean of the columns it averages), and what an ``ours``
criterion names."""

import dataclasses
import re
from pathlib import Path

import pytest

from adbench.errors import AdbenchError
from adbench.registry import SCORERS
from adbench.reporting.papers import paper_table, paper_tables, paper_values, reported_rows

PAPERS = Path(__file__).resolve().parents[1].parent / "shared" / "papers"
NUMBER = re.compile(r"N/A|\d+(?:\.\d+)?")


def printed(line: str, label: str) -> list[float | None]:
    """The numbers a line of the paper's text prints after a row's label (N/A as None)."""
    return [None if n == "N/A" else float(n) for n in NUMBER.findall(line.split(label, 1)[1])]


def differences(table, lines: list[str]) -> list[str]:
    """Each row of ``table`` whose label or numbers differ from its line of the text."""
    found = []
    for row in table.rows:
        line = lines[row.line - 1]
        if row.label not in line:
            found.append(f"{table.key} line {row.line}: {row.label!r} not in {line!r}")
        elif printed(line, row.label) != [None if v is None else float(v) for v in row.values]:
            found.append(f"{table.key} line {row.line}: {list(row.values)} but the text prints {line!r}")
    return found


def text_lines(name: str) -> list[str]:
    path = PAPERS / name
    if not path.is_file():
        pytest.skip(f"the papers' text is not here ({path}; it ships in ../shared/papers)")
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("key", sorted(paper_tables()))
def test_every_transcribed_row_is_its_line_of_the_paper(key):
    table = paper_table(key)
    assert differences(table, text_lines(table.text)) == []


def test_a_changed_number_or_label_is_found():
    table = paper_table("invad/table2")
    lines = text_lines(table.text)
    row = table.rows[8]  # InvAD on MVTec-AD: 99.0 ...
    typo = dataclasses.replace(row, values=(99.1, *row.values[1:]))
    renamed = dataclasses.replace(row, label="InvAD (ours)")
    for wrong in (typo, renamed):
        changed = dataclasses.replace(table, rows=(*table.rows[:8], wrong, *table.rows[9:]))
        assert len(differences(changed, lines)) == 1


def test_all_ten_methods_of_osd_irf_table1_on_three_datasets():
    table = paper_table("osd_irf/table1")
    by_dataset = {d: [r.label.split(" [")[0] for r in table.rows if r.dataset == d] for d in ("mvtec", "visa", "mpdd")}
    methods = ["RD4AD", "UniAD", "SimpleNet", "DeSTSeg", "DiAD", "HVQ-Trans", "MDM", "OmiAD", "InvAD", "OSD-IRF (Ours)"]
    assert by_dataset["mvtec"] == methods
    assert by_dataset["visa"] == by_dataset["mpdd"] == [m for m in methods if m != "MDM"]  # MDM: MVTec-AD only


@pytest.mark.parametrize("key", sorted(k for k, t in paper_tables().items() if t.mean))
def test_each_mean_column_is_the_mean_of_what_it_averages_as_printed(key):
    """Printed to 0.1, a mean can differ from the mean of its printed values by at most 0.05 + 0.05; more is a typo
    (ours or the paper's: the rows the paper prints inconsistently carry the mean of their values)."""
    table = paper_table(key)
    for row in table.rows:
        parts = [table.value(row, c) for c in table.mean["of"]]
        mean, shown = sum(parts) / len(parts), table.value(row, table.mean["is"])
        if row.mean_of_values is None:
            assert abs(mean - shown) <= 0.1 + 1e-9, f"line {row.line} {row.label}: mean {mean:.3f}, printed {shown}"
        else:
            assert round(mean, 1) == row.mean_of_values and abs(mean - shown) > 0.1, (row.line, row.label)


def test_the_inconsistent_means_are_the_two_known_ones():
    flagged = {(k, r.line) for k, t in paper_tables().items() for r in t.rows if r.mean_of_values is not None}
    assert flagged == {("osd_irf/table1", 177), ("invad/table3", 115)}


def test_numbers_printed_twice_are_transcribed_the_same():
    osd, invad = paper_table("osd_irf/table1"), paper_table("invad/table2")
    same_method = 0
    for row in osd.rows:
        name = row.label.split(" [")[0]
        twins = [r for r in invad.rows if r.dataset == row.dataset and r.label.split(" [")[0].split(" (")[0] == name]
        for twin in twins:  # OSD-IRF's comparison rows are InvAD's Table 2, InvAD's own row included
            assert twin.values == row.values, (row.line, twin.line)
            same_method += 1
    assert same_method == 25  # 9 methods on MVTec-AD, 8 on VisA and on MPDD
    t4, t9 = paper_table("invad/table4"), paper_table("invad/table9")
    assert t4.rows[-1].values == t9.rows[-1].values  # inversion = NLL + Abs by S, in both tables
    t2_invad = invad.rows[8].values
    for key in ("invad/table7", "invad/table8"):
        assert paper_table(key).rows[-1].values[0] == t2_invad[0]  # EfficientNet-B4 + DiT-gigant: det. 99.0


def result_columns() -> set[str]:
    """The columns of a result row other than the scorer's arguments (the catalogue, ``adbench.columns``)."""
    from adbench.columns import catalogue

    return {c.key for c in catalogue() if c.key != "scorer.*"}


def test_every_ours_criterion_names_a_result_column_and_a_value_it_can_take():
    columns = result_columns()
    assert {"dataset", "category", "scorer", "backbone", "noise_net", "image_score"} <= columns
    for table in paper_tables().values():
        for row in table.rows:
            for column in table.columns:
                ours = {**(row.ours or {}), **column.ours}
                if row.ours is None:
                    continue
                assert ours["scorer"] in SCORERS, (table.key, row.label)
                arguments = SCORERS.arguments(ours["scorer"])
                for key in ours:
                    if key.startswith("scorer."):
                        assert key.removeprefix("scorer.") in arguments, (table.key, row.label, key)
                    else:
                        assert key in columns, (table.key, row.label, key)


def test_a_result_row_finds_its_paper_cells():
    table2 = paper_table("invad/table2")
    facts = {"dataset": "visa", "scorer": "invad", "scorer.steps": 3, "backbone": "efficientnet_b4"}
    label, values = paper_values(table2, facts)
    assert label == "InvAD (Ours)" and values["image_auroc"] == 96.9 and values["fps"] == 74.1
    assert paper_values(table2, {**facts, "scorer.steps": 5}) is None
    assert paper_values(table2, {**facts, "dataset": "bmad"}) is None
    label, values = paper_values(paper_table("invad/table4"), {"dataset": "mvtec", "scorer": "reconstruction",
                                                                "scorer.ratio": 0.2, "scorer.steps": 5})
    assert (label, values) == ("20 %, S = 5", {"image_auroc": 64.7})
    assert paper_values(paper_table("invad/table4"), {"dataset": "mvtec", "scorer": "reconstruction",
                                                       "scorer.ratio": 0.1, "scorer.steps": 3}) is None  # N/A
    bmad = paper_values(paper_table("invad/table3"), {"dataset": "bmad", "category": "RESC", "scorer": "invad",
                                                      "scorer.steps": 3})
    assert bmad == ("InvAD (Ours), RESC det.; InvAD (Ours), RESC loc.", {"image_auroc": 93.6, "pixel_auroc": 96.5})


def test_reported_rows_are_the_other_methods_on_the_datasets_shown():
    rows = reported_rows(paper_table("osd_irf/table1"), {"mpdd"})
    assert [r.label.split(" [")[0] for r, _ in rows] == ["RD4AD", "UniAD", "SimpleNet", "DeSTSeg", "DiAD",
                                                         "HVQ-Trans", "OmiAD"]
    assert rows[2][1] == {"image_auroc": 90.6, "image_ap": 94.1, "image_f1max": 89.7, "pixel_auroc": 97.1,
                          "pixel_ap": 33.6, "pixel_f1max": 35.7, "pixel_aupro": 90.0, "mad": 75.8}  # FPS: N/A


def test_an_unknown_table_is_a_clear_error():
    known = r"known: invad/table2, .*, osd_irf/table1$"
    with pytest.raises(AdbenchError, match=r"no transcribed paper table 'invad/table5'; " + known):
        paper_table("invad/table5")
