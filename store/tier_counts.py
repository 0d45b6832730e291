"""The contacts' tier counters in SQLite (domain/tier_counts.py says what they count).

`contact_tiers` (migration 0011_contact_tiers) holds, per workspace, how many contacts
have each `FactKey` (unreachable, day of the latest read or reply, delivered). The
analytics step that writes contacts (store/aggregates.py `_write`, on the writer
thread) moves them in the same transaction (`move`), so they always equal a count of
the contacts table; `rebuild` counts them from the table (the migration, a repair).
A counter that reaches 0 is deleted: the table holds only facts some contact has.
This module does not import store/db.py (db imports the migrations, which import this).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping

from domain.tier_counts import FactKey

# domain/tier_counts.engaged_day in SQL: the same IEEE division, truncated toward zero.
DAY_SQL = "CAST(engaged_at / 86400.0 AS INTEGER)"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS contact_tiers (workspace_id INTEGER NOT NULL,"
    " unreachable INTEGER NOT NULL, engaged_day INTEGER NOT NULL,"
    " delivered INTEGER NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (workspace_id, unreachable, engaged_day, delivered)) WITHOUT ROWID",
)
ADD = ("INSERT INTO contact_tiers (workspace_id, unreachable, engaged_day, delivered, n)"
       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id, unreachable, engaged_day,"
       " delivered) DO UPDATE SET n = n + excluded.n")
DROP_EMPTY = ("DELETE FROM contact_tiers WHERE workspace_id = ? AND unreachable = ?"
              " AND engaged_day = ? AND delivered = ? AND n = 0")
REBUILD = (
    "DELETE FROM contact_tiers",
    "INSERT INTO contact_tiers (workspace_id, unreachable, engaged_day, delivered, n)"
    f" SELECT workspace_id, unreachable, {DAY_SQL}, delivered, COUNT(*) FROM contacts"
    " GROUP BY 1, 2, 3, 4",
)


Moves = Counter[tuple[int, FactKey]]


def moved(moves: Moves, workspace: int, old: FactKey | None, new: FactKey | None) -> None:
    """Note one contact going from `old` to `new` (None: not in the table)."""
    if old == new:
        return
    if old is not None:
        moves[(workspace, old)] -= 1
    if new is not None:
        moves[(workspace, new)] += 1


def move(conn: sqlite3.Connection, moves: Mapping[tuple[int, FactKey], int]) -> None:
    """Apply the moves (a step of the transaction that wrote the contacts)."""
    changed = [(ws, int(k.unreachable), k.engaged_day, k.delivered, n)
               for (ws, k), n in moves.items() if n]
    if not changed:
        return
    conn.executemany(ADD, changed)
    conn.executemany(DROP_EMPTY, [c[:4] for c in changed if c[4] < 0])


def rebuild(conn: sqlite3.Connection) -> None:
    """Count the counters from the contacts table (one transaction step)."""
    for sql in REBUILD:
        conn.execute(sql)
