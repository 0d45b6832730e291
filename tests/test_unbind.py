"""A transaction that wrote a large blob (a recovery image) leaves no copy of it in
SQLite's memory (store/unbind.py, memory100): Python's sqlite3 keeps the last bindings
of each cached statement, so SQLite held every image it was last given. Measured with
SQLite's own counter of the memory it holds; the rows stay as written."""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
from pathlib import Path

import pytest

from store.db import Store

BLOB = 24 << 20


def sqlite_memory() -> int:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared libsqlite3 to ask")
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


async def test_an_image_sized_blob_is_not_kept_after_its_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    try:
        await store.transaction([("CREATE TABLE t (name TEXT PRIMARY KEY, body BLOB NOT NULL,"
                                  " pending BLOB)", (), False)])
        before = sqlite_memory()
        body = bytes(range(256)) * (BLOB // 256)
        await store.transaction([
            ("INSERT OR REPLACE INTO t (name, body, pending) VALUES (?, ?, ?)",
             ("index", body, b"\x01\x02"), False),
            ("UPDATE t SET pending = ? WHERE name = ?", [(bytes(1 << 20), "index")], True),
        ])
        assert sqlite_memory() - before < BLOB // 4  # it held BLOB more before the fix
        rows = await store.fetchall("SELECT body, length(pending) FROM t")
        assert rows == [(body, 1 << 20)]
    finally:
        await store.close()


def test_a_statement_that_fails_again_still_lets_go_and_writes_nothing(tmp_path: Path) -> None:
    from store.unbind import large_bound, unbind

    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (name TEXT PRIMARY KEY, body BLOB NOT NULL CHECK"
                 " (length(body) > 0))")
    sql = "INSERT INTO t (name, body) VALUES (?, ?)"
    statements = [(sql, ("a", bytes(1 << 20)), False)]
    conn.execute(sql, statements[0][1])
    unbind(conn, large_bound(statements))  # the CHECK fails on the empty blob: ignored
    assert not conn.in_transaction
    assert conn.execute("SELECT name, length(body) FROM t").fetchall() == [("a", 1 << 20)]
    conn.close()
