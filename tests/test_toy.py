import json

import pytest
from typer.testing import CliRunner

from adbench.cli import app


@pytest.mark.slow
def test_toy_study_reproduces_the_papers_qualitative_result(tmp_path):
    result = CliRunner().invoke(app, ["toy", "--json", "--out", str(tmp_path / "toy.png")])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("{"))
    aurocs = json.loads(line)
    assert aurocs["mean_auroc"] >= 0.95
    assert aurocs["mean_auroc"] > aurocs["noisy_auroc"] + 0.2
    assert (tmp_path / "toy.png").stat().st_size > 10_000 and (tmp_path / "toy.pdf").is_file()
