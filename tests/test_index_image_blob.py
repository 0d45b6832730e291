"""The id index's recovery image goes into its row without a copy in SQLite's memory
(store/image.py `index_image_step`, memory9): bound as a parameter, SQLite copied the
24 MB of a million ids' index and built a record of the same size from it. Measured
with SQLite's own high-water mark of the memory it holds; the stored image is the same."""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
from pathlib import Path

import pytest

from store.image import INDEX, index_image_step

BLOB = 24 << 20
TABLE = ("CREATE TABLE recovery_images (name TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
         " row_writes INTEGER, rows INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL,"
         " pending BLOB)")  # as migration 0012 makes it


def sqlite_lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared libsqlite3 to ask")
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return lib


def peak_while(conn: sqlite3.Connection, write: object) -> int:
    """SQLite's memory high-water mark above what it held before, over one transaction."""
    lib = sqlite_lib()
    before = lib.sqlite3_memory_used()
    lib.sqlite3_memory_highwater(1)  # reset to what is used now
    conn.execute("BEGIN IMMEDIATE")
    write(conn)  # type: ignore[operator]
    conn.execute("COMMIT")
    return int(lib.sqlite3_memory_highwater(0) - before)


def test_the_index_image_is_stored_without_a_copy_in_sqlite(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(TABLE)
    body = bytes(range(256)) * (BLOB // 256)

    def bound(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO recovery_images (name, seq, body)"
                     " VALUES (?, ?, ?)", (INDEX, 1, body))

    assert peak_while(conn, bound) > BLOB  # what it was: a copy, and a record of it
    step, _, _ = index_image_step(2, body)
    assert peak_while(conn, step) < BLOB // 8
    assert conn.execute("SELECT seq, body FROM recovery_images").fetchall() == [(2, body)]
    # a later, smaller image replaces it whole; an empty one is stored empty
    step, _, _ = index_image_step(3, b"abc")
    peak_while(conn, step)
    assert conn.execute("SELECT seq, body FROM recovery_images").fetchall() == [(3, b"abc")]
    step, _, _ = index_image_step(4, b"")
    peak_while(conn, step)
    assert conn.execute("SELECT seq, body FROM recovery_images").fetchall() == [(4, b"")]
    conn.close()
