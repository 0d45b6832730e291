"""Large buffers go back to the operating system when freed (glibc's mmap threshold).

glibc serves a large allocation with its own mmap and unmaps it on free, but after the
first such free it raises that threshold (up to 32 MB) and serves the next ones from its
heap, where freed memory mostly stays. campaignd makes large short-lived buffers: a
campaign's recovery image (30 MB at 1M messages) and the id index's (33 MB) at every
checkpoint that changed them, big request bodies. With the threshold rising they stayed
in the heap: the memory row measured 496 bytes per message, 370 with the threshold
fixed at 1 MiB (docs/BENCHMARKS.md). Fixing it is what `MALLOC_MMAP_THRESHOLD_` does,
set from inside so a systemd unit or `make run` need not know. Elsewhere (musl, macOS)
nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """Allocations of `threshold` bytes and more are mmapped and unmapped on free; True
    when the C library took the setting."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
