"""Large buffers the daemon frees go back to the operating system (core/malloc.py).

Run in a fresh interpreter each: three rounds of 30 MB buffers (the size of a 1M-message
campaign's recovery image), made and freed. With glibc's own dynamic threshold the
memory stays in the process; with `campaignd serve`'s fixed one it is returned.
"""

from __future__ import annotations

import subprocess
import sys

from core.malloc import THRESHOLD_BYTES
from tests.proc import REPO

ROUNDS = """
import sys
from core.malloc import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before = rss()
for _ in range(3):
    image = bytearray(30 << 20)
    image[::4096] = b"x" * len(image[::4096])  # touched, as a written image is
    image = None
print((rss() - before) >> 20)
"""

# memory9: 120 carried pieces' time columns (64,000 rows of int32: 256,000 bytes each,
# ~30 MB), made on one thread between small objects that stay, freed on another.
PIECES = """
import sys, threading
from array import array
from core.malloc import fix_mmap_threshold
if sys.argv[1] != "dynamic":
    assert fix_mmap_threshold(int(sys.argv[1]))
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
pieces, kept = [], []
def make():
    for n in range(120):
        pieces.append(array("i", [n]) * 64_000)
        kept.append(bytearray(2000))  # something small that stays, after each piece
thread = threading.Thread(target=make)
thread.start()
thread.join()
before = rss()
del pieces[:]
print((before - rss()) >> 20)  # MB given back when the pieces were freed
"""


def run_mb(mode: str, script: str) -> int:
    out = subprocess.run([sys.executable, "-c", script, mode], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def kept_mb(mode: str) -> int:
    return run_mb(mode, ROUNDS)


def test_freed_recovery_image_sized_buffers_leave_the_process() -> None:
    assert kept_mb("dynamic") >= 25  # glibc alone keeps the last one in its heap
    assert kept_mb("fixed") <= 2


def test_freed_carried_pieces_leave_the_process_at_once() -> None:
    """The carry's pieces are below the old 1 MiB threshold: freed, they stayed in the
    making thread's arena until a malloc_trim; with the threshold fixed at 128 KiB they
    go back when freed."""
    assert run_mb(str(1 << 20), PIECES) <= 5  # given back at once: a few MB at most
    assert run_mb(str(THRESHOLD_BYTES), PIECES) >= 25  # the ~30 MB freed
