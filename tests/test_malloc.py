"""Large buffers the daemon frees go back to the operating system (core/malloc.py).

Run in a fresh interpreter each: three rounds of 30 MB buffers (the size of a 1M-message
campaign's recovery image), made and freed. With glibc's own dynamic threshold the
memory stays in the process; with `campaignd serve`'s fixed one it is returned.
"""

from __future__ import annotations

import subprocess
import sys

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


def kept_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def test_freed_recovery_image_sized_buffers_leave_the_process() -> None:
    assert kept_mb("dynamic") >= 25  # glibc alone keeps the last one in its heap
    assert kept_mb("fixed") <= 2
