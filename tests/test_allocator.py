import json
import platform
import subprocess
import sys

import pytest

# Minor page faults of a small conv net's forward pass with 64 MiB activations, repeated, before
# and after tuning, in a fresh process (the tuning is process-wide and cannot be undone).
PROBE = """
import json, resource, torch
from adbench.allocator import host_allocator, tune_host_allocator

torch.set_grad_enabled(False)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1))
x = torch.randn(64, 3, 128, 128)  # activations 64 x 16 x 128 x 128 fp32 = 64 MiB

def faults():
    out = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x)
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return out

default = faults()
label = host_allocator()
ok = tune_host_allocator()
print(json.dumps({"default": default, "ok": ok, "tuned": faults(), "labels": [label, host_allocator()]}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuned_allocator_reuses_activation_memory_instead_of_faulting_it_in():
    out = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout)
    pages = (64 << 20) // 4096  # one activation tensor
    assert out["ok"] and out["labels"] == ["default", "glibc, tuned (large tensors reused)"]
    assert min(out["default"]) >= 2 * pages  # every activation is a fresh mmap, faulted in page by page
    # once warm, activation memory is reused (an occasional heap extension still faults some in)
    assert sum(out["tuned"][2:]) <= sum(out["default"][2:]) / 4
