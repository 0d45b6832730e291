"""A checkpoint chunk whose rows are all clean (never failed: nearly every chunk of a
flood) is written from the block's columns directly (store/row_writes.py
`_update_clean`); the rows stored are exactly those the row-by-row parameters write,
with unmade columns (NULL), a retried campaign and a chunk that is not all clean."""

from __future__ import annotations

import sqlite3
from array import array

import pytest

from domain.ledger import NONE, DirtyRows
from store import checkpoint, row_writes
from store.row_writes import STATE_COLUMNS, update_rows

COLUMNS = ("campaign_no", "row", *STATE_COLUMNS, "ag_dirty")


def table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE messages ({', '.join(COLUMNS)}, PRIMARY KEY (campaign_no, row))"
                 " WITHOUT ROWID")
    conn.executemany("INSERT INTO messages (campaign_no, row, level, failed, cls, ag_dirty,"
                     " failure_code) VALUES (4, ?, 0, 0, 0, 0, ?)",
                     [(r, 131026 if r % 7 == 0 else None) for r in range(1200)])
    return conn


def block(count: int, retried: bool, failed_row: int | None = None) -> DirtyRows:
    rows = array("I", range(3, 3 + 2 * count, 2))
    levels = bytes((2 + r % 3) for r in range(count))
    faileds = bytearray(count)
    classes = bytearray(levels)
    if failed_row is not None:
        faileds[failed_row], classes[failed_row] = 1, 7
    ticks = (array("i", range(100, 100 + count)), array("i", range(200, 200 + count)),
             array("i", (300 + r if levels[r] >= 3 else NONE for r in range(count))),
             array("i", (400 + r if levels[r] >= 4 else NONE for r in range(count))),
             array("i"), array("i"))
    return DirtyRows(4, 17_000_000_000, rows, levels, bytes(faileds), bytes(classes), ticks,
                     {}, retried)


def stored(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(f"SELECT {', '.join(COLUMNS)} FROM messages ORDER BY row").fetchall()


@pytest.mark.parametrize(("count", "retried", "failed_row"),
                         [(537, False, None), (537, True, None), (40, False, 11)])
def test_clean_chunks_store_what_the_row_parameters_store(
        monkeypatch: pytest.MonkeyPatch, count: int, retried: bool,
        failed_row: int | None) -> None:
    rows = block(count, retried, failed_row)
    assert row_writes._all_clean(rows, 0, count) is (failed_row is None)
    quick = table()
    update_rows(quick, rows, 0, checkpoint.CHUNK_ROWS)
    monkeypatch.setattr(row_writes, "_all_clean", lambda *_: False)
    general = table()
    update_rows(general, rows, 0, checkpoint.CHUNK_ROWS)
    assert stored(quick) == stored(general)
    written = [r for r in stored(quick) if r[-1] == 1]
    assert len(written) == count
    assert written[0][2:4] == (2, 0) and written[0][6] == (17_000_000_000 + 100) / 10
    if retried:  # a later attempt cleared the rows' kept failure columns
        assert all(r[COLUMNS.index("failure_code")] is None for r in written)
