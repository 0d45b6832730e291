"""Engagement in SQLite (SPEC 6): inbound events, the suppression list, the rows a number
was sent, and the per-row figures the rows API and the CSV show.

Writes happen only in checkpoints (store/checkpoint.py writes the operations the
ingest actor's attributor and suppression book collected); this module reads. The
`inbound` table holds every event credited to a message (the campaign actors rebuild
their engagement from it) and every event still waiting for the facts that place it;
`suppressions` holds the stop / start facts per workspace.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import cache, partial
from itertools import chain
from pathlib import Path
from typing import Any

from domain.attribution_columns import LOG
from domain.engagement import RowEngagement, Touch, summarize
from domain.inbound import InboundEvent
from store.aggregates import MARK, next_written
from store.db import LOOKUP_CACHE_KIB, Statement, Store
from store.spans import spans

INBOUND_COLUMNS = ("id, source, workspace_id, number, at, quoted_id, kind, via,"
                   " button_payload, button_title, body, reason, campaign_no, row, how,"
                   " received_at")
# The order a checkpoint writes them in (domain/attribution.py `record`): an
# InboundEvent's fields as they are, then what attribution adds, so a record is the
# event tuple plus five values (made at C speed for every reply).
RECORD_COLUMNS = ("id, kind, via, at, number, workspace_id, quoted_id, button_payload,"
                  " button_title, body, reason, source, campaign_no, row, how, received_at")
# One statement writes a chunk of events (INSERT ... VALUES (...), (...) ...): a
# statement per event made a checkpoint after a burst of replies hold the writer (and
# every webhook's commit behind it) for seconds; each step gives the GIL away and must
# win it back from the busy loop.
INBOUND_WIDTH = 16
INBOUND_CHUNK = 500  # rows per statement: 8,000 parameters (SQLite allows 32,766)
INBOUND_TRANSACTION = 1000  # events per transaction: ~10 ms of the writer's time


@cache
def put_inbound_sql(rows: int) -> str:
    """Insert `rows` events, each stamped with the transaction's `written` number (the
    first parameter: store/aggregates.py finds the credits to recount by it); one stored
    already keeps its fields and takes the new credit (only the credit of an event ever
    changes) and the new number."""
    one = "(?1," + ",".join("?" * INBOUND_WIDTH) + ")"  # ?1: the number, bound once
    return (f"INSERT INTO inbound (written, {RECORD_COLUMNS}) VALUES"
            f" {','.join([one] * rows)}"
            " ON CONFLICT (id) DO UPDATE SET campaign_no = excluded.campaign_no,"
            " row = excluded.row, how = excluded.how, written = excluded.written")


@cache
def mark_stored_targets_sql(ids: int) -> str:
    """Mark for the analytics the rows these events are credited to as stored (before
    this checkpoint's changes to them)."""
    return (f"UPDATE messages SET {MARK} WHERE (campaign_no, row) IN"
            " (SELECT campaign_no, row FROM inbound WHERE id IN"
            f" ({','.join('?' * ids)}) AND campaign_no IS NOT NULL) AND ag_dirty = 0")


@cache
def drop_inbound_sql(ids: int) -> str:
    return f"DELETE FROM inbound WHERE id IN ({','.join('?' * ids)})"


PUT_SUPPRESSION = (
    "INSERT INTO suppressions (fact_id, workspace_id, number, at, kind, reason, source)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (fact_id, workspace_id) DO UPDATE SET"
    " number = excluded.number, at = excluded.at, kind = excluded.kind,"
    " reason = excluded.reason, source = excluded.source"
)
CHUNK = 500


def inbound_transactions(inbound_ops: Iterable[tuple[str, Any]]
                         ) -> Iterator[list[Statement]]:
    """The writes of one checkpoint's inbound events, a transaction's worth at a time.

    An event's operations since the last checkpoint come down to its last one (only an
    event's credit ever changes), written a chunk of events per statement, and at most
    INBOUND_TRANSACTION events per transaction: a webhook's commit waits for one at most
    (in one transaction, the replies of a busy checkpoint held the writer, and every
    webhook behind it, for a third of a second). Every row a stored credit leaves is
    marked for the analytics' recount in the transaction that moves it; the rows credited
    are found by the recount from the events themselves (each written event is stamped
    with the transaction's number, store/aggregates.py `next_written`), not by a mark on
    their (wide) message row: that second row write per reply was ~40 % of what a reply
    cost the writer here (docs/BENCHMARKS.md, wave 8).

    Written before the journal is compacted, like the rows (store/checkpoint.py): after
    a crash in between, the events still in their window are restored from the table and
    their journal entries replay as duplicates; the others are decided again, to the
    same credit. Built with as few objects as it can: a burst of replies makes tens of
    thousands of operations; the records are flattened into parameters on the writer's
    thread (`_put_records`), not on the event loop.

    The replies frozen when first credited come packed (domain/attribution_columns.py
    FrozenLog, the LOG op first): their records are made a transaction's worth at a
    time, here, not all at once (issue 20: the tens of thousands of records of a burst
    of replies sized the arenas that stayed after it, docs/BENCHMARKS.md wave 13); an
    event's plain op after the log is newer and replaces its logged record."""
    final: dict[str, Any] = {}  # inbound id -> its latest record, or None: drop it
    logs = []
    for op, arg in inbound_ops:
        if op == "put":
            final[arg[0]] = arg
        elif op == LOG:
            logs.append(arg)
        else:
            final[arg] = None
    for log in logs:
        for start in range(0, len(log), INBOUND_TRANSACTION):
            records = log.store_records(start, min(len(log), start + INBOUND_TRANSACTION))
            if final:
                records = [record for record in records if record[0] not in final]
            if records:
                yield _transaction([record[0] for record in records], records)
            del records  # before the next ones are made
    ids = list(final)
    for start in range(0, len(ids), INBOUND_TRANSACTION):
        chunk = ids[start:start + INBOUND_TRANSACTION]
        yield _transaction(chunk, [final[inbound_id] for inbound_id in chunk
                                   if final[inbound_id] is not None],
                           [inbound_id for inbound_id in chunk if final[inbound_id] is None])


def _transaction(ids: list[str], records: list[tuple[Any, ...]], gone: Sequence[str] = ()
                 ) -> list[Statement]:
    """One transaction of `inbound_transactions`: the events `ids`, of which `records`
    are put and `gone` dropped."""
    out: list[Statement] = []
    # few statement sizes (store/spans.py); first: the rows the stored credits leave
    for lo, hi in spans(len(ids), INBOUND_CHUNK):
        part = ids[lo:hi]
        out.append((mark_stored_targets_sql(len(part)), part, False))
    for lo, hi in spans(len(gone), INBOUND_CHUNK):
        part = list(gone[lo:hi])
        out.append((drop_inbound_sql(len(part)), part, False))
    if records:
        out.append((partial(_put_records, records=records), (), False))
    return out


def _put_records(conn: sqlite3.Connection, records: list[tuple[Any, ...]]) -> None:
    """On the writer thread, inside the transaction: the records, a chunk per statement,
    stamped with this transaction's number."""
    written = next_written(conn)
    for lo, hi in spans(len(records), INBOUND_CHUNK):
        rows = records[lo:hi]
        conn.execute(put_inbound_sql(len(rows)), [written, *chain.from_iterable(rows)])


def suppression_statements(suppression_ops: Iterable[tuple[str, Any]]) -> list[Statement]:
    """The suppression list's changes of one checkpoint (few: stops and starts)."""
    out: list[Statement] = []
    for op, arg in suppression_ops:
        if op == "put":
            out.append((PUT_SUPPRESSION, arg, False))
        else:
            out.append(("DELETE FROM suppressions WHERE fact_id = ? AND workspace_id = ?",
                        arg, False))
    return out


def event_of(row: Sequence[Any]) -> InboundEvent:
    """An inbound table row (INBOUND_COLUMNS order) as the event it was."""
    (inbound_id, _source, workspace_id, number, at, quoted_id, kind, via, payload, title,
     body, reason, *_rest) = row
    return InboundEvent(inbound_id, kind, via, at, number, workspace_id, quoted_id, payload,
                        title, body, reason)


@cache
def number_rows_sql(count: int) -> str:
    """The number lookup for `count` keys: the keys as a VALUES list joined to the number
    index (messages_number), one seek a key in the order given. Why not `nh IN (...)`:
    SQLite first sorted those keys into a temporary b-tree, ~1,400 more instructions a
    key (8,300 against 6,900 on a warm cache, a reply from a number not seen yet pays
    one: docs/BENCHMARKS.md, wave 12); the rows found are the same."""
    values = ",".join(["(?)"] * count)
    return (f"SELECT m.nh, m.campaign_no, m.row FROM (VALUES {values}) AS v"
            " CROSS JOIN messages AS m ON m.nh = v.column1")


def number_rows_queries(keys: Sequence[int]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """The number lookup's statements for these number keys, a chunk at a time
    (the ingest actor's own read and the loop's both run these)."""
    for lo, hi in spans(len(keys), CHUNK):
        chunk = tuple(keys[lo:hi])
        yield number_rows_sql(len(chunk)), chunk


class NumberRowsReader:
    """The rows sent to some numbers, read on the caller's thread (the ingest actor's)
    through a connection of its own that only reads.

    The ingest actor asks this for every batch of replies from new numbers. Asked on the
    loop (`EngagementStore.number_rows`), the answer came back as a message to the actor
    and aiosqlite's thread alone spent ~3 µs of CPU per reply; here the query runs where
    its answer is used, and the batch's questions to the campaign actors go out in the
    same pass (the ingest actor's thread spends ~1 µs more per reply: docs/BENCHMARKS.md,
    wave 6). SQLite gives the GIL away while it reads; WAL readers never wait for the
    writer. Made in one thread, used and closed
    in another: sqlite3's same-thread check is off, the ingest actor alone uses it."""

    def __init__(self, path: Path, busy_timeout_ms: int = 2000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None

    def __call__(self, keys: Sequence[int]) -> list[tuple[int, int, int]]:
        """(number key, campaign_no, row) of every message row sent to these numbers;
        raises sqlite3.Error when storage cannot be read (the caller asks the loop)."""
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute(f"PRAGMA cache_size=-{LOOKUP_CACHE_KIB}")  # 2 MB by default
            self._conn = conn
        out: list[tuple[int, int, int]] = []
        for sql, params in number_rows_queries(keys):
            out += conn.execute(sql, params).fetchall()
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class EngagementStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def number_rows(self, keys: Sequence[int]) -> list[tuple[int, int, int]]:
        """(number key, campaign_no, row) of every message row sent to these numbers."""
        out: list[tuple[int, int, int]] = []
        for sql, params in number_rows_queries(keys):
            rows = await self.store.fetchall(sql, params)
            out.extend((r[0], r[1], r[2]) for r in rows)
        return out

    async def live_inbound(self, window: float) -> list[tuple[Any, ...]]:
        """Events still in their window at start-up: (row as stored) in arrival order.
        Explicitly placed ones are final and stay out."""
        since = time.time() - window
        return [tuple(r) for r in await self.store.fetchall(
            f"SELECT {INBOUND_COLUMNS} FROM inbound WHERE received_at >= ?"
            " AND (how IS NULL OR how != 'explicit') ORDER BY received_at, id", (since,))]

    async def suppression_facts(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.store.fetchall(
            "SELECT fact_id, workspace_id, number, at, kind, reason, source"
            " FROM suppressions ORDER BY fact_id, workspace_id")]

    async def campaign_touches(self, campaign_no: int) -> list[tuple[int, str, Touch]]:
        """Every event credited to the campaign's messages: (row, inbound id, touch)."""
        rows = await self.store.fetchall(f"{TOUCH_COLUMNS} WHERE campaign_no = ? ORDER BY row",
                                         (campaign_no,))
        return [(r[0], r[1], Touch(r[2], r[3], r[4], r[5], r[6], r[7])) for r in rows]

    async def row_engagement(self, campaign_no: int, rows: Sequence[int]
                             ) -> dict[int, RowEngagement]:
        """The figures of these rows (a page of the rows API)."""
        found: list[Any] = []
        for lo, hi in spans(len(rows), CHUNK):
            chunk = list(rows[lo:hi])
            found += await self.store.fetchall(
                f"{TOUCH_COLUMNS} WHERE campaign_no = ? AND row IN"
                f" ({','.join('?' * len(chunk))})", [campaign_no, *chunk])
        return summarize_rows(found)


# The events credited to rows, as (row, id, at, kind, via, payload, title, body).
TOUCH_COLUMNS = ("SELECT row, id, at, kind, via, button_payload, button_title, body"
                 " FROM inbound")
# ...of the rows after a cursor up to a last row (a CSV chunk).
TOUCH_RANGE_SQL = f"{TOUCH_COLUMNS} WHERE campaign_no = ? AND row > ? AND row <= ?"


def summarize_rows(found: Iterable[Sequence[Any]]) -> dict[int, RowEngagement]:
    """Rows of TOUCH_COLUMNS as each row's figures (domain/engagement.py's rules)."""
    touches: dict[int, list[tuple[str, Touch]]] = {}
    for r in found:
        touches.setdefault(r[0], []).append((r[1], Touch(*r[2:8])))
    return {row: summarize(items) for row, items in touches.items()}
