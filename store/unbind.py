"""Large blobs let go of once written (the writer connection's statement cache).

Python's sqlite3 caches each prepared statement (per SQL text) and resets it after use,
but never clears its bindings, and it binds bytes with SQLITE_TRANSIENT: SQLite keeps
its own copy of the last blob bound to every cached statement until the statement runs
again. The recovery images are such blobs: the id index's alone is 16 bytes a slot
(33.5 MB at a million ids), and a campaign's chunks, head and pending rows come on top,
so SQLite's memory grew by ~35 MB at registering a million messages and ~58 MB by the
end of the memory row (issue 20, docs/BENCHMARKS.md "Wave 7"), held until the next
image of the same kind replaced it.

After a transaction that bound a large blob, each such statement runs once more with
its blobs empty under `PRAGMA query_only`, which refuses it at its first step: the
cached statement then holds empty blobs, and nothing is read or written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog

log = structlog.get_logger(__name__)

LARGE_BYTES = 1 << 18  # a blob of this size or more is let go of after its transaction
BLOBS = (bytes, bytearray, memoryview)


def _large(params: Any) -> bool:
    return isinstance(params, Sequence) and not isinstance(params, str | bytes) and any(
        isinstance(p, BLOBS) and len(p) >= LARGE_BYTES for p in params)


def large_bound(statements: Sequence[tuple[Any, Any, bool]]) -> list[tuple[str, tuple[Any, ...]]]:
    """(sql, its parameters with every blob empty) of the statements that bound a large
    blob last: one per SQL text (executemany binds its rows in turn: the last stays)."""
    found: dict[str, tuple[Any, ...]] = {}
    for sql, params, many in statements:
        if callable(sql) or not params:
            continue
        last = params[-1] if many else params
        if _large(last):
            found[sql] = tuple(b"" if isinstance(p, BLOBS) else p for p in last)
    return list(found.items())


def unbind(conn: sqlite3.Connection, pending: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Rebind these statements with empty blobs, writing nothing (on the writer thread,
    after COMMIT: a failure here loses nothing and is only logged).

    Under `query_only` each statement is bound, then refused at its first step, before
    it reads or locks anything (a rolled-back REPLACE would first walk and free the old
    blob's overflow pages: ~8,000 of them for a 33 MB image)."""
    if not pending:
        return
    try:
        conn.execute("PRAGMA query_only = ON")
        try:
            for sql, params in pending:
                try:
                    conn.execute(sql, params)
                except sqlite3.Error:  # refused after binding: what we wanted
                    pass
        finally:
            conn.execute("PRAGMA query_only = OFF")
    except sqlite3.Error as exc:
        log.debug("store.unbind_failed", error=str(exc))
