import json

import pytest
import torch
from typer.testing import CliRunner

from adbench.allocator import host_allocator
from adbench.cli import app
from adbench.config import RunConfig
from adbench.engine import fps
from adbench.engine.fps import measure_fps, time_interleaved


class Recording(torch.nn.Module):
    """Passes its input through ``inner`` and logs (name, first input, output) of every call."""

    def __init__(self, inner, name: str, log: list) -> None:
        super().__init__()
        self.inner, self.name, self.log = inner, name, log

    def forward(self, x, *args):
        out = self.inner(x, *args)
        self.log.append((self.name, x, out))
        return out


def record_stages(monkeypatch, log: list, scorer, postprocess_owner, postprocess_name: str) -> None:
    """Log the scorer's input (``scorer``) and the feature maps post-processed (``postprocess_owner``'s
    ``postprocess_name``) into ``log``."""
    real_score, real_post = scorer.score, getattr(postprocess_owner, postprocess_name)

    def score(model, schedule, x0, generator=None):
        out = real_score(model, schedule, x0, generator)
        log.append(("scorer", x0, out.feature_map))
        return out

    def postprocess(fmap, *args):
        log.append(("post-processing", fmap, None))
        return real_post(fmap, *args)

    monkeypatch.setattr(scorer, "score", score)
    monkeypatch.setattr(postprocess_owner, postprocess_name, postprocess)


def test_time_interleaved_rounds_and_means(monkeypatch):
    now, calls = [0.0], []

    def call(name: str, cost: float):
        def fn():
            calls.append(name)
            now[0] += cost  # a fake clock: each call takes exactly ``cost`` seconds

        return fn

    monkeypatch.setattr(fps, "clock", lambda device: now[0])
    seconds = time_interleaved({"a": call("a", 1.0), "b": call("b", 3.0)}, torch.device("cpu"), warmup=1, iters=2)
    assert calls == ["a", "b"] * 3  # one warm-up round, then two timed rounds, interleaved
    assert seconds == {"a": 1.0, "b": 3.0}


def test_fps_records_pipeline_scorer_and_latency(monkeypatch):
    ticks = iter(range(10_000))  # a fake clock: each timed call takes exactly 0.5 s
    monkeypatch.setattr(fps, "clock", lambda device: 0.5 * next(ticks))
    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"},
                    runtime={"device": "cpu"},
                    scoring={"scorers": [{"name": "osd_irf_mean"}, {"name": "invad", "steps": 3}]})
    osd, invad = measure_fps(cfg, batch_size=4, warmup=1, iters=2)
    for r in (osd, invad):  # 4 images / 0.5 s; batch-1 latency 500 ms
        assert (r.pipeline_images_per_s, r.scorer_images_per_s, r.latency_ms_batch1) == (8.0, 8.0, 500.0)
        assert r.batch_size == 4 and r.device.startswith("cpu") and (r.warmup, r.iters) == (1, 2)
        assert r.precision == "fp32" and r.compiled is False and r.torch == torch.__version__
        assert r.host_allocator == host_allocator()
    assert (osd.nfe, invad.nfe) == (1, 3)  # speed itself is measured by benchmarks/, not asserted in tests


def shape_flops(module: torch.nn.Module, call) -> int:
    """2 x multiply-adds of every Linear and Conv2d inside ``module`` during ``call``, from the shapes they see."""
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        if isinstance(layer, torch.nn.Linear):
            total += 2 * layer.in_features * layer.out_features * (inputs[0].numel() // layer.in_features)
        else:
            kh, kw = layer.kernel_size
            total += 2 * layer.in_channels // layer.groups * kh * kw * output.numel()

    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    hooks = [layer.register_forward_hook(count) for layer in layers]
    with torch.no_grad():
        call()
    for hook in hooks:
        hook.remove()
    return total


def test_fps_counts_flops_per_image_and_their_share_of_a_measured_peak(monkeypatch):
    """GFLOP per image against the layers' shapes (forward hooks on every Linear and Conv2d); the scorer adds
    its passes and the separable Gaussian smoothing (2 convolutions of 2r + 1 taps per output pixel); achieved
    TFLOP/s and the peak (a 2048^3 matrix product on CPU) follow from the fake clock's 0.5 s per call."""
    ticks = iter(range(10_000))
    monkeypatch.setattr(fps, "clock", lambda device: 0.5 * next(ticks))
    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"},
                    runtime={"device": "cpu"}, scoring={"protocol": "ader", "scorers": [  # ader: maps smoothed, sigma 4
                        {"name": "osd_irf_mean"}, {"name": "invad", "steps": 3}]})
    bench = fps.FpsBench(cfg, batch_size=4)
    t = torch.full((4,), 500)
    backbone = shape_flops(bench.backbone, lambda: bench.extract(bench.images)) / 4e9
    net = shape_flops(bench.model, lambda: bench.model(bench.features, t)) / 4e9
    radius = int(4 * 4 + 0.5)
    smoothing = 2 * 2 * (2 * radius + 1) * 64**2 / 1e9
    records = bench.records(bench.time(bench.calls(), 1, 2), 1, 2)
    peak = 2 * 2048**3 / 1e12 / 0.5
    for r, nfe in zip(records, (1, 3), strict=True):
        assert r.backbone_gflop == pytest.approx(backbone, rel=1e-12)
        assert r.noise_net_gflop == pytest.approx(net, rel=1e-12)
        assert r.scorer_gflop == pytest.approx(nfe * net + smoothing, rel=1e-12)
        assert r.pipeline_gflop == pytest.approx(backbone + nfe * net + smoothing, rel=1e-12)
        assert r.scorer_tflop_s == pytest.approx(8 * r.scorer_gflop / 1e3) and r.peak_tflop_s == pytest.approx(peak)
        assert r.pipeline_tflop_s == pytest.approx(8 * r.pipeline_gflop / 1e3)
        assert r.scorer_peak_fraction == pytest.approx(8 * r.scorer_gflop / 1e3 / peak)
        assert r.pipeline_peak_fraction == pytest.approx(8 * r.pipeline_gflop / 1e3 / peak)


def test_fps_cli_writes_records(tmp_path):
    result = CliRunner().invoke(app, ["fps", "--backbone", "efficientnet_lite0", "--noise-net", "mlp_tiny",
                                      "-s", "osd_irf_mean", "--batch-size", "2", "--iters", "1", "--warmup", "1",
                                      "--device", "cpu", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("fps-*.json")
    data = json.loads(path.read_text())
    assert data["records"][0]["scorer"] == "osd_irf_mean" and data["config"]["noise_net"]["name"] == "mlp_tiny"


@pytest.mark.slow
@torch.no_grad()
def test_compiled_pipeline_scores_like_eager():
    """``--compile`` (torch.compile, inductor on CPU) gives the eager scores; ~1.5 min of compiling."""
    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"},
                    runtime={"device": "cpu"}, scoring={"scorers": [{"name": "invad", "steps": 3}]})
    eager, compiled = fps.FpsBench(cfg, batch_size=2), fps.FpsBench(cfg, batch_size=2, compile_model=True)
    for bench in (eager, compiled):  # the same seeded random-init weights: zero-init layers get real values
        torch.manual_seed(1)
        for p in bench.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    scores = [b.score("invad(steps=3)", b.backbone(eager.images)) for b in (eager, compiled)]
    assert torch.allclose(scores[1], scores[0], rtol=1e-4, atol=1e-5)
    (record,) = compiled.records(compiled.time(compiled.calls(), warmup=1, iters=1), warmup=1, iters=1)
    assert record.compiled and record.pipeline_images_per_s > 0


def test_fps_times_what_a_run_scores(monkeypatch):
    """The end-to-end call casts the backbone's output as a run does (fp32, NCHW) before the scorer sees it."""
    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"},
                    runtime={"device": "cpu"}, scoring={"scorers": [{"name": "osd_irf_mean"}]})
    bench = fps.FpsBench(cfg, batch_size=2)
    real = bench.backbone
    bench.backbone = lambda x: real(x).to(torch.bfloat16).to(memory_format=torch.channels_last)  # as on CUDA
    seen, scorer = [], bench.scorers["osd_irf_mean"]
    real_score = scorer.score

    def recording(model, schedule, x0, generator):
        seen.append(x0)
        return real_score(model, schedule, x0, generator)

    monkeypatch.setattr(scorer, "score", recording)
    with torch.no_grad():
        bench.calls()["osd_irf_mean", "pipeline"]()
    (x0,) = seen
    assert x0.dtype == torch.float32 and x0.is_contiguous()


def test_each_timed_call_runs_the_stages_it_names(monkeypatch):
    """pipeline: the backbone on the batch, the scorer (noise net inside) on its features, the post-processing
    of its maps; scorer: the same from cached features, no backbone; latency: the pipeline on one image."""
    from adbench.device import scorer_input

    cfg = RunConfig(backbone={"name": "efficientnet_lite0", "image_size": 64}, noise_net={"name": "mlp_tiny"},
                    runtime={"device": "cpu"}, scoring={"scorers": [{"name": "osd_irf_mean"}]})
    bench, log = fps.FpsBench(cfg, batch_size=3), []
    bench.backbone, bench.model = Recording(bench.backbone, "backbone", log), Recording(bench.model, "noise net", log)
    record_stages(monkeypatch, log, bench.scorers["osd_irf_mean"], bench, "postprocess")
    for what, n_images in (("pipeline", 3), ("scorer", None), ("latency", 1)):
        log.clear()
        with torch.no_grad():
            bench.calls()["osd_irf_mean", what]()
        stages = [(name, len(x)) for name, x, _ in log]
        n = n_images or 3
        assert stages == ([("backbone", n_images)] if n_images else []) + [
            ("noise net", n), ("scorer", n), ("post-processing", n)], what
        if n_images:
            assert torch.equal(log[0][1], bench.images[:n_images])
        features = scorer_input(log[0][2]) if n_images else bench.features
        scored, fmap = log[-2][1:]
        assert torch.equal(scored, features) and torch.equal(log[-1][1], fmap), what
