"""Whole runs from the CLI on tiny data (CPU, seconds)."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adbench.allocator import host_allocator
from adbench.cli import app
from adbench.config import with_overrides
from adbench.metrics import metric_keys
from tests.conftest import HAZELNUT
from tests.golden_numbers import assert_matches_golden

runner = CliRunner()


def write_config(path, overrides: dict | None = None):
    """A small run config file; ``overrides``: dotted keys."""
    cfg = {
        "data": {"dataset": "mvtec", "holdout_fraction": 0.2},
        "backbone": {"name": "efficientnet_lite0", "image_size": 128}, "noise_net": {"name": "mlp_tiny"},
        "train": {"epochs": 4, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 1},
        "scoring": {"scorers": [{"name": "osd_irf_mean"}, {"name": "osd_irf_noisy", "t": 250},
                                {"name": "invad", "steps": 2}], "eval_batch_size": 8, "fps_images": 4},
    }
    path.write_text(yaml.safe_dump(with_overrides(cfg, overrides or {})))
    return path


def only_run_dir(results):
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def test_run_writes_results_with_provenance(tiny_synthetic, tmp_path, monkeypatch):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer", "weave"]})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "res"), "--name", "e2e"])
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "res")
    assert run_dir.name.startswith("e2e-")
    frame = pd.read_parquet(run_dir / "metrics.parquet")
    assert len(frame) == 6 and set(frame["scorer_label"]) == {"osd_irf_mean", "osd_irf_noisy(t=250)", "invad(steps=2)"}
    by_label = frame.set_index("scorer_label")  # names; arguments as columns, defaults included
    assert by_label["scorer"].to_dict() == {"osd_irf_mean": "osd_irf_mean", "osd_irf_noisy(t=250)": "osd_irf_noisy",
                                            "invad(steps=2)": "invad"}
    assert (by_label.loc["osd_irf_mean", "scorer.t"] == 500).all()
    assert (by_label.loc["invad(steps=2)", "scorer.steps"] == 2).all()
    np.testing.assert_allclose(frame["mad"], frame[list(metric_keys())].mean(axis=1), rtol=1e-12)
    assert (frame["fps"] > 0).all() and (frame["scorer_fps"] > frame["fps"]).all()
    assert by_label["nfe"].to_dict() == {"osd_irf_mean": 1, "osd_irf_noisy(t=250)": 1, "invad(steps=2)": 2}
    # cost per row: the shared model's training time (the same in every row), the cell's scoring time, memory
    assert frame["train_seconds"].nunique() == 1 and (frame["train_seconds"] > 0).all()
    assert (frame["score_seconds"] > 0).all() and (frame["peak_memory_mb"] > 0).all()
    assert set(frame["peak_memory_of"]) == {"process peak RSS"} and set(frame["pro_limit"]) == {0.3}
    assert set(frame["mask_threshold"]) == {0.0}  # nearest resizing keeps any non-zero mask value
    (log,) = set(frame["train_log"])
    steps = pd.read_csv(run_dir / log)
    kept = json.loads((run_dir / log.replace(".train_log.csv", ".train.json")).read_text())
    assert kept["steps"] == len(steps) and kept["seconds"] == frame["train_seconds"].iloc[0]
    row = frame.iloc[0]
    assert json.loads(row["config"])["noise_net"]["name"] == "mlp_tiny" and len(row["config_hash"]) == 16
    assert {"torch", "timm", "numpy", "adbench"} <= set(json.loads(row["versions"]))
    assert row["git_commit"] and row["device"].startswith("cpu") and row["host_allocator"] == host_allocator()
    assert row["backbone_weights"] == "file:efficientnet-lite0-57934424.pth sha256:579344248a93e230"
    assert (row["precision"], row["backbone_precision"], row["input_stats"]) == ("fp32", "fp32", "weights")
    assert (list(row["input_mean"]), list(row["input_std"])) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert pd.read_csv(run_dir / "metrics.csv").shape == frame.shape
    table = (run_dir / "table.md").read_text()
    assert "| I-AUROC | I-AP | I-F1max | P-AUROC | P-AP | P-F1max | AU-PRO | mAD | FPS |" in table
    assert "Mean over categories" in table and "osd_irf_noisy(t=250)" in table
    assert frame.iloc[0]["maps_file"].startswith("maps/")  # relative to the run folder, which may move
    saved = np.load(run_dir / frame.iloc[0]["maps_file"])
    assert saved["maps"].shape == (4, 128, 128) and saved["labels"].tolist() == [1, 1, 0, 0]  # both kinds
    assert saved["scores"].shape == (4,) and np.isfinite(saved["scores"]).all()
    below = saved["score_below"] * frame.iloc[0]["n_test"]  # how many of the category's test images score lower
    assert np.allclose(below, np.round(below)) and (np.argsort(below) == np.argsort(saved["scores"])).all()
    moved = run_dir.rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "res")  # reported from elsewhere
    report = runner.invoke(app, ["report", str(moved), "--figures", "--out", str(tmp_path / "rep" / "t")])
    assert report.exit_code == 0, report.output
    figures = sorted(p.name for p in (tmp_path / "rep" / "t_maps").glob("*.png"))
    assert len(figures) == 8 and [f for f in figures if f.startswith("compare-")] == [
        "compare-mvtec-washer.png", "compare-mvtec-weave.png"]  # the 3 scorers side by side, per category
    assert (tmp_path / "rep" / "t_maps" / "compare-mvtec-weave.pdf").exists()
    (moved / frame.iloc[0]["maps_file"]).unlink()
    report = runner.invoke(app, ["report", str(moved), "--figures", "--out", str(tmp_path / "rep" / "u")])
    assert report.exit_code == 0 and "1 kept map file(s) missing" in report.output


def test_train_then_evaluate_is_deterministic(tiny_synthetic, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["granite"],
                                                   "scoring.scorers": [{"name": "osd_irf_noisy"}]})
    assert runner.invoke(app, ["train", str(config), "--results-dir", str(tmp_path / "a")]).exit_code == 0
    run_dir = only_run_dir(tmp_path / "a")
    assert list((run_dir / "models").glob("multiclass-*.pt")) and not (run_dir / "metrics.parquet").exists()
    result = runner.invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    first = pd.read_parquet(run_dir / "metrics.parquet")
    assert runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "b")]).exit_code == 0
    second = pd.read_parquet(only_run_dir(tmp_path / "b") / "metrics.parquet")
    assert first[list(metric_keys())].equals(second[list(metric_keys())])


@pytest.mark.golden
def test_image_level_only_dataset_reports_pixel_metrics_as_missing(tiny_synthetic, tmp_path, monkeypatch,
                                                                   pinned_threads):
    from adbench.data.mvtec import MVTecLayout
    from adbench.registry import DATASETS

    class NoMasks(MVTecLayout):
        has_masks = False

    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    DATASETS.register("nomask_test")(lambda root: NoMasks(root, name="nomask_test"))
    config = write_config(tmp_path / "c.yaml", {"data.dataset": "nomask_test", "data.root": str(tiny_synthetic),
                                                   "categories": ["washer"],
                                                   "scoring.scorers": [{"name": "osd_irf_mean"}]})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet")
    assert_matches_golden("image_level_only", frame)  # pixel metrics and mAD pinned as NaN (null)
    assert "n/a" in (only_run_dir(tmp_path / "r") / "table.md").read_text()


def test_bad_input_is_one_clear_line_without_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--dataset", "mvtec", "--data-root", str(tmp_path / "nope"),
                                 "--results-dir", str(tmp_path / "r"), "--backbone", "efficientnet_lite0"])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["run", "--scorer", "invadd", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Did you mean 'invad'" in result.output


@pytest.mark.skipif(not HAZELNUT.is_dir(), reason="shared/data/hazelnut_toy not present")
@pytest.mark.golden
def test_hazelnut_toy_smoke(tmp_path, pinned_threads):
    config = write_config(tmp_path / "c.yaml", {
        "data.root": str(HAZELNUT.parent), "backbone.image_size": 256, "categories": ["hazelnut_toy"],
        "train": {"epochs": 10, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 1},
        "scoring.scorers": [{"name": "osd_irf_mean"}, {"name": "invad"}, {"name": "knn"}]})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet")
    assert (frame["n_anomalous"] == 17).all() and (frame["n_test"] == 23).all()
    assert set(frame["backbone_weights"]) == {"file:efficientnet-lite0-57934424.pth sha256:579344248a93e230"}
    assert set(frame["precision"]) == set(frame["backbone_precision"]) == {"fp32"}
    assert list(frame["noise_net"]) == ["mlp_tiny", "mlp_tiny", "none"] and (frame["n_empty_masks"] == 0).all()
    assert_matches_golden("hazelnut_toy", frame)


def test_config_errors_keep_brackets(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    result = runner.invoke(app, ["run", str(bad), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown key 'train.epoch' (did you mean 'epochs'?)" in result.output
    # rich markup leaves the brackets alone
    assert "valid keys here: ['activation_checkpointing', 'batch_size'," in result.output
    assert not (tmp_path / "r").exists()  # nothing is created for a rejected config


@pytest.mark.slow
@pytest.mark.golden
def test_demo_quick_runs_from_nothing(tmp_path, pinned_threads):
    result = runner.invoke(app, ["demo", "--quick", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet")
    assert set(frame["category"]) == {"granite", "washer", "weave"} and len(frame) == 9
    assert_matches_golden("demo_quick", frame)


def test_protocols_and_transductive_flags_reach_the_table(tiny_synthetic, tmp_path):
    config = write_config(tmp_path / "c.yaml", {
        "data.root": str(tiny_synthetic), "categories": ["washer"], "noise_net.name": "dit_tiny",
        "scoring.protocol": "ader", "scoring.normalisation": "test-minmax", "scoring.extra_metrics": ["pixel_aupimo"],
        "scoring.scorers": [{"name": "reconstruction", "ratio": 0.4, "steps": 5}, {"name": "invad", "subset": "code"}]})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "r")
    frame = pd.read_parquet(run_dir / "metrics.parquet")
    assert list(frame["protocol"]) == ["ader+test-minmax"] * 2 and frame["transductive"].all()
    assert list(frame["image_score"]) == ["max", "max"] and (frame["smoothing_sigma"] == 4).all()
    assert (frame["mask_threshold"] == 0.5).all()  # ADer's masks: bilinear, then > 0.5
    assert list(frame["nfe"]) == [2, 3]
    # asked for: AUPIMO in the rows (NaN: the tiny test set's normal pixels cannot reach an FPR of 1e-5), not in mAD
    assert frame["pixel_aupimo"].isna().all() and frame["mad"].notna().all()
    table = (run_dir / "table.md").read_text()
    # both rows transductive: said once in the notes, no mark on every row
    assert "| reconstruction(ratio=0.4,steps=5) |" in table and "- All rows transductive: " in table
    assert "ader+test-minmax = image score max, smoothing sigma 4, pool 16, test-minmax normalisation" in table


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_redoing_cells(tiny_synthetic, tmp_path):
    """`adbench run` killed with SIGKILL after its first finished cell, then `--resume RUN_DIR`: finished
    cells are kept, not recomputed, and the metrics equal those of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    from adbench.results import RecordLog

    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer", "weave"]})
    cmd = [sys.executable, "-m", "adbench", "run", str(config), "--results-dir", str(tmp_path / "r")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        logs = list((tmp_path / "r").glob("*/cells.jsonl"))
        if logs and RecordLog(logs[0]).finished():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = only_run_dir(tmp_path / "r")
    kept = RecordLog(run_dir / "cells.jsonl").finished()
    assert len(kept) >= 1  # usually 1 or 2 of 6; a fast machine may finish more before the kill lands
    wrong = runner.invoke(app, ["run", str(write_config(tmp_path / "d.yaml", {"data.root": str(tiny_synthetic)})),
                                "--resume", str(run_dir)])
    assert wrong.exit_code == 2 and "holds another configuration" in wrong.output
    resumed = runner.invoke(app, ["run", "--resume", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    finished = RecordLog(run_dir / "cells.jsonl").finished()
    assert len(finished) == 6 and all(finished[k] == r for k, r in kept.items())  # kept, not recomputed
    clean = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    a, b = (pd.read_parquet(d / "metrics.parquet").set_index("cell_key").sort_index()
            for d in (run_dir, only_run_dir(tmp_path / "clean")))
    assert a[list(metric_keys())].equals(b[list(metric_keys())])


def test_run_takes_set_and_image_size(tiny_synthetic, tmp_path):
    result = runner.invoke(app, ["run", "--dataset", "mvtec", "--data-root", str(tiny_synthetic), "-c", "washer",
                                 "--backbone", "efficientnet_lite0", "-s", "knn", "--image-size", "64",
                                 "--set", "train.lr=0.001", "--set", "scoring.save_maps=0",
                                 "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((only_run_dir(tmp_path / "r") / "config.yaml").read_text())
    assert (saved["backbone"]["image_size"], saved["train"]["lr"], saved["scoring"]["save_maps"]) == (64, 0.001, 0)


def test_a_run_on_real_iad_scores_objects_by_their_most_anomalous_view(tmp_path):
    from tests.test_data import realiad_like

    realiad_like(tmp_path / "realiad")
    config = write_config(tmp_path / "c.yaml", {
        "data.dataset": "real_iad", "data.root": str(tmp_path / "realiad"), "backbone.image_size": 64,
        "scoring.scorers": [{"name": "osd_irf_mean"}], "scoring.save_maps": 0, "train.epochs": 2})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    row = pd.read_parquet(only_run_dir(tmp_path / "r") / "metrics.parquet").iloc[0]
    assert list(row["image_labels"]) == [0, 1] and row["n_test"] == 10  # 2 objects of 5 views; 10 view images
    from sklearn.metrics import roc_auc_score

    # the image metrics are the objects' (their stored scores), pixel metrics over every view image
    assert row["image_auroc"] == roc_auc_score(row["image_labels"], row["image_scores"])
    assert not np.isnan(row["pixel_auroc"])


def test_mvtec_ad2_holds_out_its_validation_scores_segf1_and_writes_the_private_sets_for_the_server(tmp_path):
    import tifffile
    from PIL import Image

    from tests.test_data import ad2_like

    cat = ad2_like(tmp_path / "ad2", size=64, n_train=10, n_validation=4)
    (cat / "test_private" / "000_regular.png").write_bytes((cat / "test_public" / "bad" / "000_regular.png")
                                                           .read_bytes())  # scored twice: public and private
    config = write_config(tmp_path / "c.yaml", {
        "data.dataset": "mvtec_ad2", "data.root": str(tmp_path / "ad2"), "data.held_out": "validation",
        "backbone.image_size": 64, "scoring.scorers": [{"name": "osd_irf_mean"}], "scoring.submission": True,
        "scoring.extra_metrics": ["pixel_segf1"], "train.epochs": 2})
    (cat / "test_private_mixed").rename(tmp_path / "aside")
    refused = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and "test_private_mixed is missing" in " ".join(refused.output.split())
    assert not list((tmp_path / "refused").rglob("*.pt"))  # found before any training
    (tmp_path / "aside").rename(cat / "test_private_mixed")
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(tmp_path / "r")
    row = pd.read_parquet(run_dir / "metrics.parquet").iloc[0]
    # one object of eight: MVTec's upload checker refuses it, so the run says so (and which are missing)
    assert "lacks 7 of MVTec AD 2's 8 objects (fabric, fruit_jelly, rice, sheet_metal, vial, wallplugs, walnuts)" \
        in " ".join(result.output.split())
    assert (row["held_out"], row["n_holdout"], row["n_test"]) == ("validation", 4, 3)  # validation/good held out
    assert np.isfinite(row["segf1_threshold"]) and 0 <= row["pixel_segf1"] <= 1
    folder = run_dir / row["submission_dir"]
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert written == sorted(f"{kind}/can/{split}/{i:03d}_regular.{ext}" for kind, ext in (
        ("anomaly_images", "tiff"), ("anomaly_images_thresholded", "png"))
        for split, n in (("test_private", 3), ("test_private_mixed", 2)) for i in range(n))
    for tiff in folder.glob("anomaly_images/*/*/*.tiff"):
        amap = tifffile.imread(tiff)
        assert amap.dtype == np.float16 and amap.shape == (48, 64)  # the image's own height x width
        png = np.asarray(Image.open(str(tiff).replace("anomaly_images", "anomaly_images_thresholded")
                                    .replace(".tiff", ".png")))
        np.testing.assert_array_equal(png, (amap.astype(np.float64) > row["segf1_threshold"]) * 255)
    kept = np.load(run_dir / row["maps_file"])  # the public copy's map (float16), as scored
    public = kept["maps"][list(kept["labels"]).index(1)].astype(np.float32)
    expected = np.asarray(Image.fromarray(public).resize((64, 48), Image.BILINEAR))
    private = tifffile.imread(folder / "anomaly_images/can/test_private/000_regular.tiff").astype(np.float32)
    np.testing.assert_allclose(private, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())


def test_a_warning_or_an_error_that_many_cells_meet_is_said_once(tiny_synthetic, tmp_path):
    """osd_irf_mean and knn score washer with two models (a noise net, none): one warning of its 2 held-out
    normals, not one per model; a training error that fails two cells is one line."""
    config = write_config(tmp_path / "c.yaml", {"data.root": str(tiny_synthetic), "categories": ["washer"],
                                                "train.epochs": 1})
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r"), "-s", "osd_irf_mean",
                                 "-s", "knn"])
    assert result.exit_code == 0, result.output
    assert result.output.count("washer: only 2 held-out normal images estimate") == 1, result.output
    failed = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "r"), "-s", "osd_irf_mean",
                                 "-s", "invad", "--batch-size", "64"])  # 24 training images: no full batch
    output = " ".join(failed.output.split())
    assert failed.exit_code != 0 and output.count("do not fill one batch of train.batch_size 64") == 2, output
    assert "2 cells (washer osd_irf_mean, washer invad) failed: 24 training images do not fill" in output
