import json

import torch
from typer.testing import CliRunner

from adbench.cli import app
from adbench.config import RunConfig
from adbench.engine.fps import measure_fps, time_per_call


def test_time_per_call_excludes_warmup():
    calls = []
    seconds = time_per_call(lambda: calls.append(1), torch.device("cpu"), warmup=2, iters=5)
    assert len(calls) == 7 and seconds >= 0


def test_fps_records_pipeline_scorer_and_latency():
    cfg = RunConfig(backbone="efficientnet_lite0", noise_net="mlp_tiny", image_size=64, device="cpu",
                    scorers=[{"name": "osd_irf_mean"}, {"name": "invad", "steps": 3}])
    osd, invad = measure_fps(cfg, batch_size=4, warmup=1, iters=2)
    for r in (osd, invad):
        assert r.pipeline_images_per_s > 0 and r.scorer_images_per_s > r.pipeline_images_per_s
        assert r.latency_ms_batch1 > 0 and r.batch_size == 4 and r.device.startswith("cpu")
        assert r.precision == "fp32" and r.compiled is False and r.torch == torch.__version__
    assert (osd.nfe, invad.nfe) == (1, 3)
    assert osd.scorer_images_per_s > invad.scorer_images_per_s  # one noise-net pass instead of three


def test_fps_cli_writes_records(tmp_path):
    result = CliRunner().invoke(app, ["fps", "--backbone", "efficientnet_lite0", "--noise-net", "mlp_tiny",
                                      "-s", "osd_irf_mean", "--batch-size", "2", "--iters", "1", "--warmup", "1",
                                      "--device", "cpu", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("fps-*.json")
    data = json.loads(path.read_text())
    assert data["records"][0]["scorer"] == "osd_irf_mean" and data["config"]["noise_net"] == "mlp_tiny"
