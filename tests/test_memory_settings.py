"""The daemon's memory settings are taken (memory16, issue 20): glibc's heaps shared by
the threads (core/malloc.py `limit_arenas`) and the smaller page caches of the writer
connection and of the ingest actor's number lookups (store/db.py `WRITER_CACHE_KIB`,
`LOOKUP_CACHE_KIB`), each read back the way an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.malloc import ARENAS
from store.db import LOOKUP_CACHE_KIB, WRITER_CACHE_KIB, Store
from store.engagement import NumberRowsReader
from tests.proc import REPO

# Six threads alive at once, each allocating outside pymalloc (2,000-byte buffers), then
# glibc's own report (malloc_info) of how many heaps the process has.
HEAPS = """
import ctypes, os, re, sys, tempfile, threading
from core.malloc import limit_arenas
if sys.argv[1] == "limited":
    assert limit_arenas()
barrier = threading.Barrier(7)
def work():
    kept = [bytearray(2000) for _ in range(100)]
    barrier.wait()  # every thread has its arena now
    barrier.wait()  # held until the report is written
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
barrier.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
barrier.wait()
for t in threads:
    t.join()
print(len(re.findall(r'<heap nr="', open(path).read())))
"""


def heaps(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", HEAPS, mode], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def test_threads_share_the_limited_heaps() -> None:
    assert heaps("default") >= 5  # glibc alone: a heap per thread (8 per core at most)
    assert heaps("limited") <= ARENAS


async def test_the_writer_connection_has_the_smaller_page_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    try:
        assert store.writer is not None and store.reader is not None
        cursor = await store.writer.execute("PRAGMA cache_size")
        assert await cursor.fetchall() == [(-WRITER_CACHE_KIB,)]  # SQLite's default was -2000
        # the reader keeps SQLite's default: its page cache stays small by itself
        assert list(await store.reader.execute_fetchall("PRAGMA cache_size")) == [(-2000,)]
    finally:
        await store.close()


async def test_the_number_lookups_have_the_smaller_page_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    try:
        lookup = NumberRowsReader(store.path)
        assert lookup([12345]) == []  # its connection opens on the first question
        assert lookup._conn is not None
        assert lookup._conn.execute("PRAGMA cache_size").fetchall() == [(-LOOKUP_CACHE_KIB,)]
        lookup.close()
    finally:
        await store.close()
