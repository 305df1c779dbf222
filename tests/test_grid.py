"""Grids: expansion, reuse, resume after SIGKILL, failures recorded; presets run with --quick."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adbench.cli import app
from adbench.config import with_overrides
from adbench.engine.grid import GridSpec, expand, load_grid
from adbench.errors import ConfigError
from adbench.metrics import metric_keys
from adbench.results import RecordLog

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def tiny_grid(path, data_root, **extra):
    spec = {
        "name": "tiny",
        "base": {"data": {"dataset": "mvtec", "root": str(data_root), "holdout_fraction": 0.2},
                 "backbone": {"name": "efficientnet_lite0", "image_size": 64}, "noise_net": {"name": "mlp_tiny"},
                 "categories": ["washer", "weave"], "scoring": {"eval_batch_size": 8, "fps_images": 2},
                 "train": {"epochs": 3, "batch_size": 4, "lr": 0.001, "warmup_epochs": 1}},
        "axes": {"scorer": ["osd_irf_mean", "osd_irf_noisy"], "scorer.t": [250, 500]},
    }
    spec.update(extra)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_expansion_overrides_and_quick(tmp_path):
    scorers = [{"name": "invad"}, {"name": "osd_irf_mean"}]
    spec = GridSpec("g", base={"categories": ["a"], "scoring": {"scorers": scorers}},
                    axes={"seed": [0, 1], "train.epochs": [1, 2]})
    cells = expand(spec)
    assert len(cells) == 2 * 2 * 2 and len({c.key for c in cells}) == 8
    assert {c.cfg.train.epochs for c in cells} == {1, 2}
    assert {c.spec["name"] for c in cells} == {"invad", "osd_irf_mean"}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "base": {"categories": ["a"]},
                                    "axes": {"seed": [0, 1, 2], "scorer": ["invad"]},
                                    "quick": {"train.epochs": 1}}))
    fixed = load_grid(path, sets=["seed=5"], quick=True)
    assert fixed.name == "g-quick" and "seed" not in fixed.axes and fixed.base["seed"] == 5
    assert [c.cfg.train.epochs for c in expand(fixed)] == [1]
    path.write_text("name: g\naxis: {seed: [1]}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['axis'\]"):
        load_grid(path)


def test_grid_trains_once_resumes_and_records_failures(tiny_synthetic, tmp_path):
    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic)
    dry = runner.invoke(app, ["grid", str(grid), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert dry.exit_code == 0 and not (tmp_path / "r" / "grid-tiny").exists()
    first = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert first.exit_code == 0, first.output
    grid_dir = tmp_path / "r" / "grid-tiny"
    assert [p.name.split("-")[0] for p in (grid_dir / "models").glob("*.pt")] == ["multiclass"]  # for 8 cells
    frame = pd.read_parquet(grid_dir / "metrics.parquet")
    assert len(frame) == 8 and set(frame["scorer_label"]) == {
        "osd_irf_mean(t=250)", "osd_irf_mean(t=500)", "osd_irf_noisy(t=250)", "osd_irf_noisy(t=500)"}
    assert "scorers" not in frame.columns and (frame["cell_key"].str.len() == 16).all()
    before = (grid_dir / "cells.jsonl").read_text()
    again = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert again.exit_code == 0 and (grid_dir / "cells.jsonl").read_text() == before  # nothing recomputed
    # a scorer that cannot score (t outside the schedule) refuses the grid before any work, dry run too
    bad = tiny_grid(tmp_path / "g.yaml", tiny_synthetic, axes={"scorer": ["osd_irf_mean:t=5000", "knn"]})
    for dry in ([], ["--dry-run"]):
        result = runner.invoke(app, ["grid", str(bad), "--results-dir", str(tmp_path / "r"), *dry])
        assert result.exit_code == 2 and "scorer osd_irf_mean(t=5000): timestep t=5000 is outside [0, 999]" in \
            result.output
    assert (grid_dir / "cells.jsonl").read_text() == before
    # a cell the scorer does not apply to (reconstruction with ratio x steps < 1, as in InvAD Table 4) is a
    # row of n/a metrics
    na_grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic, axes={"scorer": ["reconstruction:ratio=0.1,steps=5"]})
    assert runner.invoke(app, ["grid", str(na_grid), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    na = pd.read_parquet(grid_dir / "metrics.parquet")  # this grid's finished cells
    assert len(na) == 2 and na[list(metric_keys())].isna().all().all() and (na["nfe"] == 0).all()


def test_a_grid_on_a_loco_look_alike_writes_au_spro_columns(tmp_path):
    from tests.test_data import loco_like

    loco_like(tmp_path / "loco", size=64, n_train=10)
    keys = [f"pixel_auspro_{p}pct" for p in (1, 5, 10, 30, 100)]
    grid = tiny_grid(tmp_path / "g.yaml", tmp_path / "loco", axes={"scorer": ["osd_irf_mean", "osd_irf_noisy"]})
    spec = yaml.safe_load(grid.read_text())
    spec["base"]["data"]["dataset"], spec["base"]["categories"] = "mvtec_loco", ["box"]
    spec["base"]["scoring"]["extra_metrics"] = [*keys, "pixel_miou_max"]
    grid.write_text(yaml.safe_dump(spec))
    config = tmp_path / "loco" / "box" / "defects_config.json"
    good = config.read_text()
    config.write_text(good.replace('"saturation_threshold": 0.5', '"saturation_threshold": -0.5'))
    bad = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "saturation_threshold -0.5; it must be in (0, 1]" in " ".join(bad.output.split())
    assert not list((tmp_path / "bad").rglob("*.pt"))  # refused before any training
    config.write_text(good)
    result = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "r" / "grid-tiny" / "metrics.parquet")
    assert len(frame) == 2 and frame[[*keys, "pixel_miou_max"]].notna().all().all()
    assert ((frame[keys] >= 0) & (frame[keys] <= 1)).all().all()
    seven = frame[list(metric_keys())].mean(axis=1)
    assert frame["mad"].tolist() == pytest.approx(seven.tolist(), abs=1e-12)  # the optional ones are not in mAD
    for _, row in frame.iterrows():  # each kind beside the good images, the row their mean (MVTec's evaluation)
        by_kind = json.loads(row["metrics_by_kind"])
        assert sorted(by_kind) == ["logical_anomalies", "structural_anomalies"]
        for key in (*metric_keys(), *keys):
            assert row[key] == pytest.approx(np.mean([m[key] for m in by_kind.values()]), abs=1e-12), key
    report = runner.invoke(app, ["report", str(tmp_path / "r" / "grid-tiny"), "--format", "md", "--out",
                                 str(tmp_path / "table"), "--metrics", "pixel_aupro,pixel_auspro_5pct,pixel_miou_max"])
    table = (tmp_path / "table.md").read_text()
    assert report.exit_code == 0 and "AU-sPRO@0.05" in table and "mIoU-max" in table, report.output
    spec["base"]["data"]["dataset"] = "mvtec"
    grid.write_text(yaml.safe_dump(spec))
    refused = runner.invoke(app, ["grid", str(grid), "--dry-run", "--results-dir", str(tmp_path / "r2")])
    assert refused.exit_code != 0 and "need each defect's own mask and saturation" in refused.output


def test_a_cell_out_of_gpu_memory_fails_alone(tiny_synthetic, tmp_path, dit_out_of_memory):
    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic, axes={"noise_net.name": ["mlp_tiny", "dit_tiny"]},
                     base=with_overrides(yaml.safe_load(tiny_grid(tmp_path / "b.yaml", tiny_synthetic).read_text())[
                         "base"], {"data.setting": "single", "scorer": "osd_irf_mean"}))
    result = runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    log = RecordLog(tmp_path / "r" / "grid-tiny" / "cells.jsonl")
    failed = log.failed().values()
    assert len(failed) == 2 and {r["config"]["noise_net"]["name"] for r in failed} == {"dit_tiny"}
    assert all(r["error"].startswith("OutOfMemoryError: CUDA out of memory") for r in failed)
    assert len(dit_out_of_memory) == 2  # memory released after each failed category (one training each)
    frame = pd.read_parquet(tmp_path / "r" / "grid-tiny" / "metrics.parquet")
    assert sorted(frame["category"]) == ["washer", "weave"] and set(frame["noise_net"]) == {"mlp_tiny"}


@pytest.mark.slow
def test_killed_grid_resumes_without_losing_or_duplicating_cells(tiny_synthetic, tmp_path):
    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic)
    cmd = [sys.executable, "-m", "adbench", "grid", str(grid), "--results-dir", str(tmp_path / "r")]
    log_path = tmp_path / "r" / "grid-tiny" / "cells.jsonl"
    kept = []
    rng = random.Random(0)
    # kill after the first cell, at two random moments, then after the fifth cell
    for wait_for, at_most in ((1, 120), (99, rng.uniform(0.5, 6)), (99, rng.uniform(0.5, 6)), (5, 120)):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + at_most
        while time.time() < deadline and proc.poll() is None:
            if log_path.exists() and len(RecordLog(log_path).finished()) >= wait_for:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = RecordLog(log_path).finished()
        assert all(finished[k] == r for k, r in kept)  # nothing finished is lost or changed
        kept = list(finished.items())
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    keys = [r["cell_key"] for r in records if r["status"] == "ok"]
    errors = [r["error"] + "\n" + r["traceback"] for r in records if r["status"] == "error"]
    assert len(keys) == len(set(keys)) == 8, "\n".join(errors) or done.stdout
    assert all(RecordLog(log_path).finished()[k] == r for k, r in kept)
    # and the killed-and-resumed grid measured exactly what an uninterrupted one measures
    assert runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "clean")]).exit_code == 0
    resumed, clean = (pd.read_parquet(d / "grid-tiny" / "metrics.parquet").set_index("cell_key").sort_index()
                      for d in (tmp_path / "r", tmp_path / "clean"))
    assert resumed[list(metric_keys())].equals(clean[list(metric_keys())])


def test_torn_last_line_is_ignored_and_terminated(tmp_path):
    log = RecordLog(tmp_path / "cells.jsonl")
    log.append({"status": "ok", "cell_key": "a"})
    with open(log.path, "a") as fh:
        fh.write('{"status": "ok", "cell_k')  # killed mid-write
    assert list(log.finished()) == ["a"]
    log.append({"status": "ok", "cell_key": "b"})
    assert list(log.finished()) == ["a", "b"]


@pytest.mark.parametrize(("preset", "rows"), [("t_sensitivity", 2), ("invad_table4", 30)])
def test_presets_run_quick_on_the_embedded_dataset(preset, rows, tmp_path):
    args = ["grid", str(ROOT / "registry" / f"{preset}.yaml"), "--quick", "--results-dir", str(tmp_path),
            "--set", "categories=[washer]", "--set", "data.args={n_train: 8, n_good: 2, n_per_defect: 1}",
            "--set", "backbone.image_size=64"]
    if preset == "t_sensitivity":
        args += ["--set", "scorer.t=250"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (grid_dir,) = tmp_path.iterdir()
    frame = pd.read_parquet(grid_dir / "metrics.parquet")
    assert len(frame) == rows and (frame["setting"] == "multiclass").all()
    assert [p.name.split("-")[0] for p in (grid_dir / "models").glob("*.pt")] == ["multiclass"]
    if preset == "invad_table4":  # ratio x S < 1: S = 3 with ratios 0.1, 0.2 and S = 5 with 0.1
        na = frame[frame["image_auroc"].isna()]["scorer_label"]
        assert sorted(na) == ["reconstruction(ratio=0.1,steps=3)", "reconstruction(ratio=0.1,steps=5)",
                              "reconstruction(ratio=0.2,steps=3)"]


@pytest.mark.parametrize(("preset", "scorers"), [
    ("osd_irf_table1", ["osd_irf_mean(t=500)", "osd_irf_noisy(t=500)", "invad(steps=3)", "knn"]),
    ("invad_table2", ["invad(steps=3)", "knn"])])
def test_paper_presets_report_the_papers_numbers_beside_ours(preset, scorers, tiny_synthetic, tmp_path):
    """A paper preset on an MVTec look-alike: `adbench report` takes the paper its grid names, shows the paper's
    other methods with --reported and ranks neither them nor knn; one category of the 15 the paper averages gets no
    Δ, and the notes say so (the Δ rows under a full category set: tests/test_report.py)."""
    result = runner.invoke(app, ["grid", str(ROOT / "registry" / f"{preset}.yaml"), "--quick", "--results-dir",
                                 str(tmp_path), "--set", "data.dataset=mvtec", "--set", f"data.root={tiny_synthetic}",
                                 "--set", "categories=[washer]", "--set", "backbone.image_size=64"])
    assert result.exit_code == 0, result.output
    (grid_dir,) = tmp_path.iterdir()
    frame = pd.read_parquet(grid_dir / "metrics.parquet")
    assert len(frame) == len(scorers) and (frame["setting"] == "multiclass").all()
    report = runner.invoke(app, ["report", str(grid_dir), "--reported", "--out", str(tmp_path / "t")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "t.md").read_text()
    mean_table = text.split("### Per category")[0]
    lines = [line.split(" | ") for line in mean_table.splitlines() if line.startswith("| ")][1:]  # under the header
    shown = [cells[0].removeprefix("| ").rstrip("†‡") for cells in lines]  # knn: a reference (‡)
    assert "- All rows: dataset: mvtec; backbone: efficientnet_lite0; protocol: invad+test-minmax." in text
    assert not [label for label in shown if label.startswith("↳")]
    compared = {"osd_irf_table1": "osd_irf_mean(t=500), invad(steps=3)", "invad_table2": "invad(steps=3)"}[preset]
    assert f": {compared} average 1 of the 15 mvtec categories the paper's means are over (missing bottle," in text
    knn = lines[shown.index("knn")]
    assert not [c for c in knn if "**" in c or c.startswith("_")]  # a reference: never best or second
    assert "RD4AD [CVPR’22] (reported)" in shown and "not ranked" in text
    none = runner.invoke(app, ["report", str(grid_dir), "--paper", "none", "--out", str(tmp_path / "n")])
    assert none.exit_code == 0 and "↳" not in (tmp_path / "n.md").read_text()


def test_component_ablation_preset_runs_quick(tmp_path):
    """InvAD Table 6 on the embedded data: A1-A4 and OSD-IRF beside them, a model per feature space."""
    result = runner.invoke(app, ["grid", str(ROOT / "registry" / "invad_components.yaml"), "--quick",
                                 "--results-dir", str(tmp_path), "--set", "categories=[washer]",
                                 "--set", "data.args={n_train: 8, n_good: 2, n_per_defect: 1}",
                                 "--set", "backbone.image_size=64"])
    assert result.exit_code == 0, result.output
    (grid_dir,) = tmp_path.iterdir()
    frame = pd.read_parquet(grid_dir / "metrics.parquet").set_index(["backbone", "scorer_label"])
    paper = {"A1": ("efficientnet_lite0", "invad(steps=0)"), "A2": ("pixels", "invad(steps=1)"),
             "A3": ("efficientnet_lite0", "invad(steps=1)"), "A4": ("efficientnet_lite0", "invad(steps=3)")}
    osd_irf = [(b, "osd_irf_mean") for b in ("efficientnet_lite0", "pixels")]
    assert set(paper.values()) | set(osd_irf) <= set(frame.index) and len(frame) == 8
    assert [frame.loc[paper[a], "nfe"] for a in sorted(paper)] == [0, 1, 1, 3]
    assert frame[list(metric_keys())].notna().all().all()  # pixel metrics too: maps back at image size
    assert frame.xs("pixels")["feature_norm"].eq("standardize").all()
    assert frame.xs("efficientnet_lite0")["feature_norm"].eq("none").all()
    assert (frame["noise_net"] == "mlp_tiny").all()  # A1 names the trained model it does not call
    assert sorted(p.name.split("-")[0] for p in (grid_dir / "models").glob("*.pt")) == ["multiclass"] * 2


def test_quick_axes_replace_axis_values_and_must_be_axes(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"name": "g", "axes": {"backbone.name": ["efficientnet_b4", "pixels"]},
                                    "quick_axes": {"backbone.name": ["efficientnet_lite0", "pixels"]}}))
    assert load_grid(grid).axes == {"backbone.name": ["efficientnet_b4", "pixels"]}
    assert load_grid(grid, quick=True).axes == {"backbone.name": ["efficientnet_lite0", "pixels"]}
    assert load_grid(grid, quick=True, sets=["backbone.name=pixels"]).axes == {}  # --set still fixes it
    grid.write_text(yaml.safe_dump({"name": "g", "axes": {"seed": [0, 1]}, "quick_axes": {"backbone.name": ["x"]}}))
    with pytest.raises(ConfigError, match=r"quick_axes \['backbone.name'\] are not axes"):
        load_grid(grid)


def test_an_override_fixes_one_field_of_an_axis_over_whole_sections():
    """InvAD Table 7: ViTs at 224 px, B4 at 256; --set backbone.image_size=256 puts every row at 256."""
    table7 = ROOT / "registry" / "invad_table7.yaml"
    cfgs = [c.cfg.backbone for c in expand(load_grid(table7, sets=["categories=[washer]"]))]
    assert sorted({(b.name, b.image_size) for b in cfgs}) == [("dino_vitb16", 224), ("efficientnet_b4", 256),
                                                             ("vit_base", 224)]
    fixed = load_grid(table7, sets=["categories=[washer]", "backbone.image_size=256"])
    assert {(c.cfg.backbone.name, c.cfg.backbone.image_size) for c in expand(fixed)} == {
        ("vit_base", 256), ("dino_vitb16", 256), ("efficientnet_b4", 256)}
    sizes = load_grid(table7, sets=["backbone.name=vit_base"])  # the sizes stay an axis; equal values merge
    assert sizes.axes == {"backbone": [{"image_size": 224}, {"image_size": 256}]}
    assert load_grid(table7, quick=True).axes == {"backbone": [{"name": "efficientnet_lite0"}]}


def test_every_preset_expands(tmp_path):
    from adbench.engine.study import config_for, load_study

    for path in sorted((ROOT / "registry").glob("*.yaml")):
        for quick in (False, True):  # a data root, for the presets of datasets read from a folder (BMAD)
            spec = load_grid(path, quick=quick, sets=["categories=[a]", f"data.root={tmp_path}"])
            assert expand(spec), path
    for path in sorted((ROOT / "registry" / "studies").glob("*.yaml")):
        for quick in (False, True):
            spec = load_study(path, quick=quick)
            assert config_for(spec, {k: d.get("low", (d.get("choices") or [None])[0]) for k, d in spec.space.items()})


def test_the_reproduction_grids_run_the_papers_networks_and_recipe():
    """benchmarks/reproduce/: both nets of the papers, the recipe's 300 epochs (ELPV: the 15 that fit), hazelnut at
    batch 8 and 64 with raw and EMA weights, every scorer. CI runs these grids only under --quick."""
    from adbench.engine.build import needs_model

    def plan(name: str, sets: tuple[str, ...] = ()) -> tuple[int, set]:
        cells = expand(load_grid(ROOT / "benchmarks" / "reproduce" / f"{name}.yaml", sets=list(sets)))
        return len(cells), {(c.cfg.noise_net.name, c.cfg.train.batch_size, c.cfg.train.epochs, c.cfg.scoring.use_ema)
                            for c in cells if needs_model(c.spec)}

    # 2 nets x 2 batches x 2 weights scored x 5 scorers, + the knn reference; a cell a category
    assert plan("hazelnut") == (41, {(net, batch, 300, ema) for net in ("dit_gigant", "mlp_large") for batch in (8, 64)
                                     for ema in (False, True)})
    elpv = {("dit_gigant", 64, 15, False), ("mlp_large", 64, 15, False)}  # (2 nets x 5 scorers + knn) x 2 categories
    assert plan("elpv", ("categories=[mono, poly]",)) == (22, elpv)


def test_sweep_t_scores_one_model_per_category_and_plots(tiny_synthetic, tmp_path):
    from adbench.cli import parse_timesteps

    assert parse_timesteps("50:350:100") == [50, 150, 250, 350] and parse_timesteps("5,7") == [5, 7]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "runtime": {"name": "sw"}, "data": {"dataset": "mvtec", "root": str(tiny_synthetic), "holdout_fraction": 0.2},
        "categories": ["washer"], "backbone": {"name": "efficientnet_lite0", "image_size": 64},
        "noise_net": {"name": "mlp_tiny"},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.001, "warmup_epochs": 1}}))
    result = runner.invoke(app, ["sweep-t", str(config), "--quick", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    grid_dir = tmp_path / "r" / "grid-sweep-t-sw-quick"  # --quick: 20 epochs, 3 timesteps, its own folder
    frame = pd.read_parquet(grid_dir / "metrics.parquet")
    assert {json.loads(c)["train"]["epochs"] for c in frame["config"]} == {20}
    assert sorted(zip(frame["scorer"], frame["scorer.t"], strict=True)) == [
        ("osd_irf_mean", 250), ("osd_irf_mean", 500), ("osd_irf_mean", 750), ("osd_irf_noisy", 250),
        ("osd_irf_noisy", 500), ("osd_irf_noisy", 750)]
    assert len(list((grid_dir / "models").glob("*.pt"))) == 1
    assert (grid_dir / "metrics_vs_t.png").stat().st_size > 10_000 and (grid_dir / "metrics_vs_t.pdf").exists()


def test_sweep_t_from_a_run_scores_its_trained_model(tiny_synthetic, tmp_path, monkeypatch):
    from adbench.engine import training as run
    from tests.test_end_to_end import only_run_dir, write_config

    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                "scoring.scorers": [{"name": "osd_irf_mean"}]})
    assert runner.invoke(app, ["train", str(config), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    run_dir = only_run_dir(tmp_path / "r")
    monkeypatch.setattr(run, "train_noise_net", lambda *a, **k: pytest.fail("the run's model was trained again"))
    result = runner.invoke(app, ["sweep-t", "--from-run", str(run_dir), "--t", "100,500", "-s", "osd_irf_mean",
                                 "--results-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "1 trained model(s) of" in result.output and "0 to train" in result.output
    frame = pd.read_parquet(tmp_path / "s" / f"grid-sweep-t-{run_dir.name.split('-')[0]}" / "metrics.parquet")
    assert sorted(frame["scorer.t"]) == [100, 500]
    trained = json.loads(next((run_dir / "models").glob("*.train.json")).read_text())["seconds"]
    assert (frame["train_seconds"] == trained).all()  # the shared model's training time comes along with it
    both = runner.invoke(app, ["sweep-t", str(config), "--from-run", str(run_dir)])
    assert both.exit_code == 2 and "a config file or --from-run RUN_DIR (one of them)" in both.output


def test_every_command_that_trains_takes_quick_with_one_meaning(tmp_path):
    from adbench.cli import QUICK_HELP
    from adbench.config import RunConfig, quick

    for command in ("run", "train", "demo", "grid", "study", "sweep-t"):
        shown = runner.invoke(app, [command, "--help"], terminal_width=200).output
        assert "--quick" in shown, command
    assert "20 epochs (2 of warm-up)" in QUICK_HELP
    cfg = quick(RunConfig(runtime={"name": "mine"}, train={"epochs": 300, "warmup_epochs": 40}))
    assert (cfg.train.epochs, cfg.train.warmup_epochs, cfg.runtime.name) == (20, 2, "mine-quick")
    assert quick(cfg) == cfg and quick(RunConfig(train={"warmup_epochs": 0})).train.warmup_epochs == 0
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nbase: {train: {epochs: 300}}\naxes: {seed: [0, 1]}\n")
    assert load_grid(grid, quick=True).base["train"] == {"epochs": 20, "warmup_epochs": 2}  # no quick of its own


def test_sweep_t_from_a_grid_folder_scores_the_grids_trained_model_of_the_cell_asked(tiny_synthetic, tmp_path,
                                                                                     monkeypatch):
    from adbench.engine import training

    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic, axes={"scorer": ["osd_irf_mean", "knn"],
                                                                 "train.epochs": [2, 3]})
    assert runner.invoke(app, ["grid", str(grid), "--results-dir", str(tmp_path / "r")]).exit_code == 0
    grid_dir = tmp_path / "r" / "grid-tiny"
    ambiguous = runner.invoke(app, ["sweep-t", "--from-run", str(grid_dir), "--t", "100"])
    assert ambiguous.exit_code == 2 and "trained noise nets of 2 configurations: choose one with --cell N" in \
        ambiguous.output
    listed = runner.invoke(app, ["config", "--grid", str(grid), "--results-dir", str(tmp_path / "r")]).output
    cell = next(int(line.split()[0]) for line in listed.splitlines() if "osd_irf_mean" in line and "washer" in line
                and "seed" in line)
    assert {c.cfg.train.epochs for c in expand(load_grid(grid)) if c.spec["name"] != "knn"} == {2, 3}
    monkeypatch.setattr(training, "train_noise_net", lambda *a, **k: pytest.fail("the grid's model was trained again"))
    result = runner.invoke(app, ["sweep-t", "--from-run", str(grid_dir), "--cell", str(cell), "--t", "100,500",
                                 "-s", "osd_irf_mean", "--results-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(next((tmp_path / "s").glob("grid-*")) / "metrics.parquet")
    swept = json.loads(frame["config"].iloc[0])["train"]["epochs"]
    assert sorted(zip(frame["category"], frame["scorer.t"], strict=True)) == [("washer", 100), ("washer", 500),
                                                                              ("weave", 100), ("weave", 500)]
    assert swept == expand(load_grid(grid))[cell].cfg.train.epochs  # the chosen cell's configuration
    knn = next(int(line.split()[0]) for line in listed.splitlines() if " knn " in f" {line} ")
    refused = runner.invoke(app, ["sweep-t", "--from-run", str(grid_dir), "--cell", str(knn), "--t", "100"])
    assert refused.exit_code == 2 and "scored by knn, which has no noise net to sweep" in refused.output


def test_the_plan_is_one_greppable_line_off_a_terminal(tiny_synthetic, tmp_path):
    grid = tiny_grid(tmp_path / "g.yaml", tiny_synthetic)
    result = runner.invoke(app, ["grid", str(grid), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("grid tiny -> ")]
    assert line.endswith(": cells 8, finished 0, to run 8, trainings 1, trained models reused 0, scoring passes 8, "
                         "failed before 0")  # 2 scorers x 2 t x 2 categories, one multi-class net
    assert "┃" not in result.output and "━" not in result.output
