"""The process's memory handed back to the operating system (glibc's malloc).

Three settings, one place: `fix_mmap_threshold` and `limit_arenas` (once, at `campaignd
serve`'s start) and `release_free_memory` (the checkpointer, every TRIM_EVERY seconds or
TRIM_ROWS written rows, on the default executor so the loop does not wait for the walk).

The mmap threshold: glibc serves a large allocation with its own mmap and unmaps it on
free, but after the first such free it raises that threshold (up to 32 MB) and serves
the next ones from its heap, where freed memory mostly stays. campaignd makes large
short-lived buffers: a campaign's recovery image (30 MB at 1M messages) and the id
index's (33 MB) at every checkpoint that changed them, big request bodies. With the
threshold rising they stayed in the heap: the memory row measured 496 bytes per message,
370 with the threshold fixed at 1 MiB (docs/BENCHMARKS.md; 128 KiB since wave 9). Fixing it is what
`MALLOC_MMAP_THRESHOLD_` does, set from inside so a systemd unit or `make run` need not
know. Elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
M_ARENA_MAX = -8
# memory9 (issue 20): 128 KiB (glibc's own starting value), was 1 MiB. Between the two
# sit the checkpoint's carried pieces (domain/carry.py: 64,000 rows, 256 KB per time
# column), a campaign image's chunks (~1 MB less a little) and their parts: made on one
# thread, freed on another once written, they stayed in their arenas as free memory
# until the next malloc_trim (20-30 MB at the memory row's final reading, 3 s after a
# checkpoint of a million carried rows). Registering 300,000 messages cost the same
# CPU either way (docs/BENCHMARKS.md "Wave 9").
THRESHOLD_BYTES = 128 << 10


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def release_free_memory() -> None:
    """Give memory freed after a burst (registrations, big checkpoints) back to the OS.

    glibc keeps freed blocks in per-thread arenas; with one thread per actor that
    retained memory can exceed what the campaigns use. malloc_trim costs a few ms.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:  # not glibc: nothing to do
        trim(0)


def fix_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """Allocations of `threshold` bytes and more are mmapped and unmapped on free; True
    when the C library took the setting."""
    return _mallopt(M_MMAP_THRESHOLD, threshold)


def _mallopt(param: int, value: int) -> bool:
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, value) == 1)


# memory16 (issue 20): glibc gives each thread that mallocs while another holds an
# arena's lock an arena of its own, up to 8 per core (16 here). The daemon's threads
# (the loop, the writer, the reader, the actors, the executor) each ended with their own
# heap: +13 MB over the memory row, 6-7 of it free still after a malloc_trim.
# Python's own objects come from pymalloc, and most threads run under the GIL, so few
# mallocs ever meet: two arenas let the freed pieces of one thread serve the next.
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` glibc heaps for all the process's threads; True when the C
    library took the setting. Set before the threads start (an arena once made stays)."""
    return _mallopt(M_ARENA_MAX, arenas)
