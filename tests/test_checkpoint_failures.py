"""The checkpoint's row write (store/row_writes.py `update_rows`) on a real SQLite file
with a real Ledger: every row stores exactly the state the ledger hands over, whichever
statement wrote it (clean rows, rows keeping a failure); a row that keeps no failure
leaves the failure columns alone unless its campaign has a retried row, and a retry
that clears a stored failure still clears it in the row (only a later attempt can take
a kept failure away)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from domain.failures import Failure
from domain.ledger import Ledger
from domain.status import Level
from store.db import Store
from store.row_writes import STATE_COLUMNS, update_rows

FAILURE = ("failure_source", "failure_code", "failure_title", "failure_details",
           "failure_category", "failure_at")
T0 = time.time() - 3600


async def database(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "campaignd.sqlite3"
    store = Store(path)
    await store.open()
    await store.close()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("INSERT INTO campaigns (no, uuid, workspace_id, name, created_at,"
                   " updated_at) VALUES (1, 'c1', 1, 'Promo', ?, ?)", (T0, T0))
        db.executemany("INSERT INTO messages (campaign_no, row, message_id, recipient,"
                       " level, cls, ts_queued, ts_pending) VALUES (1, ?, ?, ?, 1, 1, ?, ?)",
                       [(r, f"m{r}", f"62812000000{r:02d}", T0, T0) for r in range(rows)])
    finally:
        db.close()
    return path


def ledger_of(rows: int) -> Ledger:
    ledger = Ledger()
    ledger.reserve(rows, T0)
    for row in range(rows):
        ledger.fill(row, T0, Level.PENDING, False, None, [T0, T0, 0, 0, 0, 0, 0], None)
    ledger.clear_dirty()
    return ledger


def checkpoint(path: Path, ledger: Ledger) -> list[str]:
    """Write the ledger's changed rows as a checkpoint chunk does; the statements run."""
    block = ledger.take_dirty_rows(1)
    assert block is not None
    want = {p[17]: p[:16] for p in block.params()}
    statements: list[str] = []
    db = sqlite3.connect(path, isolation_level=None)
    db.set_trace_callback(statements.append)
    try:
        db.execute("BEGIN IMMEDIATE")
        update_rows(db, block, 0, len(block))
        db.execute("COMMIT")
        db.set_trace_callback(None)
        got = {r[0]: tuple(r[1:]) for r in db.execute(
            f"SELECT row, {', '.join(STATE_COLUMNS)} FROM messages WHERE campaign_no = 1"
            f" AND row IN ({','.join('?' * len(want))})", list(want))}
        marked = {r for (r,) in db.execute("SELECT row FROM messages WHERE ag_dirty = 1")}
    finally:
        db.close()
    assert got == want  # each row exactly as the ledger handed it over
    assert set(want) <= marked  # and marked for the analytics' recount
    return statements


def stored(path: Path, row: int) -> tuple[object, ...]:
    db = sqlite3.connect(path)
    try:
        return tuple(db.execute(f"SELECT level, failed, reason, {', '.join(FAILURE)}"
                                " FROM messages WHERE campaign_no = 1 AND row = ?",
                                (row,)).fetchone())
    finally:
        db.close()


async def test_without_retries_plain_rows_skip_the_clear_and_failures_are_kept(
        tmp_path: Path) -> None:
    path = await database(tmp_path, 4)
    ledger = ledger_of(4)
    ledger.apply(0, Level.DELIVERED, False, T0 + 5, None)
    ledger.apply(1, Level.SENT, True, T0 + 6, "131026: undeliverable",
                 Failure("cloud", "131026", "Message undeliverable", None))
    statements = checkpoint(path, ledger)
    assert not any("failure_source = NULL" in s for s in statements), statements
    assert stored(path, 0)[:2] == (Level.DELIVERED, 0)
    assert stored(path, 0)[3:] == (None,) * 6
    failed = stored(path, 1)
    assert failed[1] == 1 and failed[4] == "131026" and failed[7] is not None

    ledger.apply(1, Level.READ, False, T0 + 9, None)  # read later: still failed, kept
    ledger.apply(2, Level.READ, False, T0 + 9, None)
    statements = checkpoint(path, ledger)
    assert not any("failure_source = NULL" in s for s in statements), statements
    assert stored(path, 1)[4] == "131026"
    assert stored(path, 2)[:2] == (Level.READ, 0)


async def test_a_retry_clears_the_stored_failure_of_its_row(tmp_path: Path) -> None:
    path = await database(tmp_path, 3)
    ledger = ledger_of(3)
    ledger.apply(0, Level.SENT, True, T0 + 6, "131026: undeliverable",
                 Failure("cloud", "131026", "Message undeliverable", None))
    checkpoint(path, ledger)
    assert stored(path, 0)[4] == "131026"
    # attempt 2 is delivered: the row is no longer failed and keeps no failure
    ledger.apply(0, Level.DELIVERED, False, T0 + 60, None, None, attempt=2)
    ledger.apply(1, Level.DELIVERED, False, T0 + 60, None)
    statements = checkpoint(path, ledger)
    assert any("failure_source = NULL" in s for s in statements), statements
    assert stored(path, 0) == (Level.DELIVERED, 0, None, *(None,) * 6)
    assert stored(path, 1)[:2] == (Level.DELIVERED, 0)
