"""The library API: ``adbench.run`` and friends write the folders the CLI writes, with the same numbers."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

import adbench
from adbench.cli import app
from adbench.errors import AdbenchError
from adbench.metrics import metric_keys
from tests.test_end_to_end import only_run_dir

SMALL = {"backbone": {"name": "efficientnet_lite0", "image_size": 64}, "noise_net": {"name": "mlp_tiny"},
         "train": {"epochs": 2, "batch_size": 4, "warmup_epochs": 1}, "categories": ["washer"],
         "scoring": {"scorers": [{"name": "osd_irf_mean"}], "eval_batch_size": 8, "fps_images": 2}}


def small(data_root) -> dict:
    return {**SMALL, "data": {"dataset": "mvtec", "root": str(data_root), "holdout_fraction": 0.3}}


def test_import_adbench_stays_light_and_names_its_api():
    code = "import sys, adbench; print(json.dumps(['torch' in sys.modules, 'pandas' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False]  # the API loads on first use
    assert adbench.run is adbench.api.run
    assert sorted(adbench.__all__) == ["evaluate", "fps", "grid", "load_results", "report", "run", "study", "sweep_t",
                                       "train"]
    with pytest.raises(AttributeError, match="no attribute 'runn'"):
        adbench.runn  # noqa: B018


def test_run_from_python_equals_the_cli_run_and_train_then_evaluate(tiny_synthetic, tmp_path):
    seen = []
    out = adbench.run(small(tiny_synthetic), results_dir=tmp_path / "api", cache_dir=tmp_path / "cache",
                      on_folder=seen.append)
    assert seen == [out.folder] and out.failed == [] and out.n_cells == 1 and out.check() is out
    assert out.folder.parent == tmp_path / "api" and (out.folder / "metrics.parquet").is_file()
    (tmp_path / "c.json").write_text(json.dumps(small(tiny_synthetic)))  # JSON is YAML
    cli = CliRunner().invoke(app, ["run", str(tmp_path / "c.json"), "--results-dir", str(tmp_path / "cli"),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert cli.exit_code == 0, cli.output
    by_cli = pd.read_parquet(only_run_dir(tmp_path / "cli") / "metrics.parquet")
    metrics = [*metric_keys(), "mad"]
    pd.testing.assert_frame_equal(out.results[metrics].reset_index(drop=True), by_cli[metrics], check_exact=True)
    assert list(adbench.load_results(out.folder)["cell_key"]) == list(by_cli["cell_key"])
    trained = adbench.train(tmp_path / "c.json", results_dir=tmp_path / "two", cache_dir=tmp_path / "cache")
    assert trained.results.empty and not (trained.folder / "metrics.parquet").exists()
    scored = adbench.evaluate(trained.folder, cache_dir=tmp_path / "cache")
    assert scored.folder == trained.folder
    pd.testing.assert_frame_equal(scored.results[metrics].reset_index(drop=True), by_cli[metrics], check_exact=True)


def test_a_failed_cell_is_returned_and_check_raises_the_clis_message(tiny_synthetic, tmp_path):
    from adbench.api import Outcome

    out = Outcome(tmp_path, pd.DataFrame(), [{"error": "ValueError: broken"}], 3)
    with pytest.raises(AdbenchError, match=r"^1 of 3 cell\(s\) failed, first: ValueError: broken \(errors in "):
        out.check()
    with pytest.raises(AdbenchError, match="run needs a config, or resume= a run folder"):
        adbench.run()


def test_a_grid_from_python_plans_then_runs_and_resumes(tiny_synthetic, tmp_path):
    from tests.test_grid import tiny_grid

    spec = tiny_grid(tmp_path / "g.yaml", tiny_synthetic)
    plans = []
    dry = adbench.grid(spec, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache", dry_run=True,
                       on_plan=lambda runner, plan: plans.append(plan))
    assert dry.results.empty and not (dry.folder / "cells.jsonl").exists() and plans == [dry.plan]
    out = adbench.grid(spec, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache")
    assert len(out.results) == out.n_cells == dry.plan["cells"] and out.failed == []
    again = adbench.grid(spec, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache")
    assert list(again.results["cell_key"]) == list(out.results["cell_key"])


def test_a_timestep_sweep_from_python_scores_a_trained_run_at_each_t(tiny_synthetic, tmp_path):
    trained = adbench.train(small(tiny_synthetic), results_dir=tmp_path / "r", cache_dir=tmp_path / "cache")
    told = []
    out = adbench.sweep_t(timesteps=[100, 700], scorers=["osd_irf_mean"], from_run=trained.folder,
                          results_dir=tmp_path / "r", cache_dir=tmp_path / "cache",
                          on_shared=lambda shared, left: told.append((len(shared), left)))
    assert told == [(1, 0)]  # the run's one model shared, none trained again
    assert sorted(out.results["scorer.t"]) == [100, 700] and out.failed == []
    with pytest.raises(AdbenchError, match="sweep_t needs a config, or from_run a run or grid folder"):
        adbench.sweep_t()


def test_report_from_python_writes_what_the_cli_writes(tmp_path):
    from tests.test_columns import FROZEN

    done = adbench.report(FROZEN / "run", out=tmp_path / "api" / "table", layout="categories", metric="pixel_aupro",
                          rename={"osd_irf_mean / mlp_tiny": "OSD-IRF"})
    assert done.n_rows == 6 and done.missing_maps == []
    assert [p.name for p in done.written] == ["table.md", "table.tex"]
    cli = CliRunner().invoke(app, ["report", str(FROZEN / "run"), "--out", str(tmp_path / "cli" / "table"),
                                   "--layout", "categories", "--metric", "pixel_aupro", "--rename",
                                   "osd_irf_mean / mlp_tiny=OSD-IRF"])
    assert cli.exit_code == 0, cli.output
    for name in ("table.md", "table.tex"):
        assert (tmp_path / "api" / name).read_text() == (tmp_path / "cli" / name).read_text()
    assert "OSD-IRF" in (tmp_path / "api" / "table.md").read_text()
