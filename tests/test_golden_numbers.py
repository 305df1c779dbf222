"""How pinned numbers are compared and their tolerances set (tests/golden_numbers.py, benchmarks/golden_spread.py)."""

import json
import sys
from pathlib import Path

import pytest

from tests.golden_numbers import GOLDEN, moves, tolerance_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import golden_spread  # noqa: E402


@pytest.mark.parametrize(("move", "expected"), [(0.0, 1e-9), (1e-12, 1e-9), (6.41e-6, 1e-4), (1e-6, 1e-5),
                                                (9.9e-6, 1e-4), (1e-5, 1e-4), (2.5e-4, 1e-2), (1e-3, 1e-2)])
def test_a_tolerance_is_the_next_power_of_ten_above_ten_times_the_move(move, expected):
    assert golden_spread.tolerance(move) == expected


def test_moves_compare_every_number_and_nan_only_with_nan():
    want = {"a": {"x": 0.5, "y": None}, "b": {"x": 0.25, "y": 1.0}}
    got = {"a": {"x": 0.5 + 3e-7, "y": None}, "b": {"x": 0.2, "y": None}}
    by_number = {(row, metric): move for move, row, metric in moves(got, want)}
    assert by_number == {("a", "x"): pytest.approx(3e-7), ("a", "y"): 0.0, ("b", "x"): pytest.approx(0.05),
                         ("b", "y"): float("inf")}


def test_every_pinned_number_has_a_measured_tolerance():
    table = tolerance_table()
    for path in GOLDEN.glob("*.json"):
        if path.name == "tolerance.json":
            continue
        pinned = json.loads(path.read_text())
        pinned.pop("pinned with")
        assert {metric for row in pinned.values() for metric in row} == set(table[path.stem]), path
