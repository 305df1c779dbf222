import os
from pathlib import Path

import pytest

from tests.skip_summary import pytest_terminal_summary  # noqa: F401 (a hook: the groups skipped and why)

# Pinned numbers are CPU numbers: device "auto" means the CPU in this suite (subprocesses inherit it), also
# on a machine with a GPU; tests/test_cuda.py runs the CUDA paths there explicitly.
os.environ.setdefault("ADBENCH_DEVICE", "cpu")
# `python -m adbench` in a subprocess imports this checkout, installed or not, and still finds the packages
# that PYTHONPATH already names (a GPU machine whose extra wheels live there, say).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH"))))

HAZELNUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hazelnut_toy"
TINY_SYNTHETIC = {"n_train": 10, "n_good": 3, "n_per_defect": 1}


@pytest.fixture(autouse=True, scope="session")
def _tuned_allocator():
    """As the CLI does: a tuned host allocator for the whole session."""
    from adbench.allocator import tune_host_allocator

    tune_host_allocator()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own dataset/feature cache: a key that misses a field cannot be hidden by
    features or data another test left behind."""
    monkeypatch.setenv("ADBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    from adbench.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate(root, seed=0, size=128, **TINY_SYNTHETIC)
    return root


@pytest.fixture
def pinned_threads():
    """Pinned numbers are computed on one CPU thread, whatever the machine's cores: float sums split across
    threads round differently. ``ADBENCH_PINNED_THREADS=N`` runs them on N (how far that moves them is
    measured in tests/golden/README.md)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("ADBENCH_PINNED_THREADS", "1")))
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def dit_out_of_memory(monkeypatch):
    """Training a DiT raises CUDA's out-of-memory error, as a 1.3B-parameter net does on a small card;
    yields the list that records each ``release_device_memory`` call of the execution path."""
    import torch

    from adbench.engine import execute
    from adbench.engine import training as run
    from adbench.noise_nets.dit import DiT

    real = run.train_noise_net

    def train(model, *args):
        if isinstance(model, DiT):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 24.00 GiB")
        return real(model, *args)

    released = []
    monkeypatch.setattr(run, "train_noise_net", train)
    monkeypatch.setattr(execute, "release_device_memory", lambda: released.append(True))
    return released
