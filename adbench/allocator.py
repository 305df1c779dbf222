"""Host memory allocation tuned for tensor workloads (glibc ``mallopt``); no torch import."""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_HOST_ALLOCATOR = {"tuned": False}


def tune_host_allocator(mmap_threshold: int = 1 << 30) -> bool:
    """Let glibc serve tensors below ``mmap_threshold`` bytes from its heap and keep freed memory.

    glibc's default hands every allocation above 32 MiB a fresh ``mmap`` and unmaps it on free, so
    each large activation tensor is page-faulted in anew: on 2 CPU cores a batch-64
    EfficientNet-Lite0 pass took 4.4 s instead of 1.2 s, mostly in the kernel. Process-wide; call
    once at start-up (the CLI, the test suite and the benchmarks do). Returns False, changing
    nothing, where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on non-glibc
    except (OSError, TypeError, AttributeError):
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    _HOST_ALLOCATOR["tuned"] |= ok
    return ok


def host_allocator() -> str:
    """How host memory is allocated in this process (recorded with every speed figure)."""
    return "glibc, tuned (large tensors reused)" if _HOST_ALLOCATOR["tuned"] else "default"
