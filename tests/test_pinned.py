"""Pinned numbers: a small deterministic run and grid (synthetic data, tiny nets, CPU) whose seven
metrics and mAD per category and scorer are held in ``tests/golden/*.json`` within tolerances measured
across CPU instruction sets and thread counts (``tests/golden/README.md``).

Any change to the engine, the keys, the split, the seeds, the scorers or the metrics that moves a
published number fails here; re-pin on purpose only (see ``tests/golden_numbers.py``).
"""

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adbench.cli import app
from tests.golden_numbers import assert_matches_golden
from tests.test_end_to_end import only_run_dir, write_config

runner = CliRunner()
TRAIN = {"epochs": 12, "batch_size": 4, "lr": 2e-3, "warmup_epochs": 1}


@pytest.fixture(scope="module")
def pinned_data(tmp_path_factory):
    """128-px synthetic images: 16 training normals, 6 test normals and 6 defects per category."""
    from adbench.data.synthetic import generate

    root = tmp_path_factory.mktemp("pinned") / "data"
    generate(root, seed=0, size=128, n_train=16, n_good=6, n_per_defect=2)
    return root
SCORERS = [{"name": "osd_irf_mean"}, {"name": "osd_irf_noisy", "t": 250}, {"name": "invad", "steps": 2},
           {"name": "invad", "subset": "code"}, {"name": "reconstruction", "ratio": 0.5, "steps": 4}]


@pytest.mark.golden
def test_pinned_run(pinned_data, tmp_path, pinned_threads):
    config = write_config(tmp_path / "c.yaml", {
        "data.root": str(pinned_data), "backbone.image_size": 128, "categories": ["washer", "weave"],
        "scoring.scorers": SCORERS, "seed": 1, "scoring.save_maps": 0, "train": TRAIN})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert_matches_golden("pinned_run", pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet"))


@pytest.mark.golden
def test_pinned_grid_of_scoring_protocols(pinned_data, tmp_path, pinned_threads):
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "pinned",
        "base": yaml.safe_load(write_config(tmp_path / "c.yaml", {
            "data.root": str(pinned_data), "backbone.image_size": 128, "categories": ["granite"],
            "scoring.save_maps": 0, "train": TRAIN,
            "data.setting": "single"}).read_text()),  # the pinned run is multi-class: both settings are pinned
        "axes": {"scoring.protocol": ["invad", "ader"], "scoring.normalisation": ["train", "test-minmax"],
                 "scorer": ["osd_irf_mean:t=250", "invad:steps=2", "reconstruction:ratio=0.5,steps=4"]},
    }))
    result = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "r" / "grid-pinned" / "metrics.parquet")
    assert len(frame) == 12
    assert_matches_golden("pinned_grid", frame, by=("category", "scorer_label", "protocol", "normalisation"))
