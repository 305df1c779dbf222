"""Device choices that decide numbers or speed on a GPU, checked through their CPU counterparts."""

import os

import pytest
import torch
from typer.testing import CliRunner

from adbench.cli import app
from adbench.device import fixed_shape_timing, precision, resolve_device, scorer_input, seed_everything


@pytest.mark.parametrize(("major", "expected"), [(7, "fp32"), (8, "bf16"), (9, "bf16")])
def test_bf16_only_on_gpus_with_native_bf16(monkeypatch, major, expected):
    """T4 and V100 (compute capability 7.x) emulate bf16 and cannot compile it: they run fp32."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 0))
    cuda = torch.device("cuda")
    assert precision(cuda) == expected and precision(cuda, "bf16") == expected
    assert precision(cuda, "fp32") == "fp32" and precision(torch.device("cpu"), "bf16") == "fp32"


def test_deterministic_flag_follows_each_cell():
    """A deterministic cell between two others: the flag is each cell's own, never left over."""
    was = torch.are_deterministic_algorithms_enabled()
    try:
        seen = []
        for flag in (True, False, True, False):
            seed_everything(0, flag)
            seen.append(torch.are_deterministic_algorithms_enabled())
        assert seen == [True, False, True, False]
    finally:
        torch.use_deterministic_algorithms(was)


def test_only_a_deterministic_config_sets_the_cublas_workspace(monkeypatch):
    """cuBLAS fixes its workspace at the process's first matmul: preflight (before any work) sets
    CUBLAS_WORKSPACE_CONFIG for a deterministic config and keeps a value the user set; neither the CLI's start
    nor another config sets it, since it slows small matmuls (batch-1 latency 1.6x on an H200)."""
    from adbench.config import RunConfig
    from adbench.engine.preflight import preflight

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert CliRunner().invoke(app, ["list", "scorers"]).exit_code == 0
    preflight(RunConfig(data={"dataset": "synthetic"}))
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    preflight(RunConfig(data={"dataset": "synthetic"}, deterministic=True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    preflight(RunConfig(data={"dataset": "synthetic"}, deterministic=True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_fixed_shape_timing_autotunes_unless_deterministic():
    was = torch.are_deterministic_algorithms_enabled()
    torch.backends.cudnn.benchmark = False
    try:
        with fixed_shape_timing():
            assert torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.benchmark  # restored
        torch.use_deterministic_algorithms(True)
        with fixed_shape_timing():
            assert not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(was)


def test_auto_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv("ADBENCH_DEVICE", "meta")
    assert resolve_device("auto") == torch.device("meta") and resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("ADBENCH_DEVICE")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_scorers_receive_fp32_nchw_whatever_the_backbone_ran_in():
    feats = torch.randn(2, 8, 4, 4).to(torch.bfloat16).to(memory_format=torch.channels_last)
    out = scorer_input(feats)
    assert out.dtype == torch.float32 and out.is_contiguous() and torch.equal(out, feats.float())
