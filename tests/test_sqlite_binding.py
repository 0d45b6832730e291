"""store/binding.py: a None binds as NULL through the registered adapter, found at once.

The daemon's rows bind many Nones; without the adapter sqlite3 searched for one each time
(~4,400 instructions a None). What a user would see is only speed, which a unit test must
not time, so this checks that the adapter is the one the store registers and that every
way the store uses a None still means SQL NULL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import store.db  # noqa: F401 - registers the adapter, as the daemon does
from store.binding import NONE_ADAPTER


def test_the_store_registers_the_none_adapter() -> None:
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is NONE_ADAPTER


def test_a_none_is_still_null_in_every_use(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3")
    try:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, a TEXT, b BLOB, c REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                         [(1, None, None, None), (2, "x", b"\x00y", 1.5), (3, "", b"", 0.0)])
        assert conn.execute("SELECT typeof(a), typeof(b), typeof(c) FROM t WHERE k = 1"
                            ).fetchone() == ("null", "null", "null")
        assert conn.execute("SELECT a, b, c FROM t ORDER BY k").fetchall() == [
            (None, None, None), ("x", b"\x00y", 1.5), ("", b"", 0.0)]
        # compared, coalesced, named: NULL semantics, not a value equal to anything
        assert conn.execute("SELECT count(*) FROM t WHERE a = ?", (None,)).fetchone() == (0,)
        assert conn.execute("SELECT k FROM t WHERE a IS ?", (None,)).fetchall() == [(1,)]
        assert conn.execute("SELECT coalesce(?, 'd')", (None,)).fetchone() == ("d",)
        assert conn.execute("SELECT :n IS NULL", {"n": None}).fetchone() == (1,)
        conn.execute("UPDATE t SET a = ? WHERE k = 2", (None,))
        assert conn.execute("SELECT a FROM t WHERE k = 2").fetchone() == (None,)
    finally:
        conn.close()
