"""The relay's durable outbox: accepted webhook requests waiting to be passed on.

A request of a source that relays (`webhooks.<source>.forward_to`) is written here whole
(raw body, the headers worth passing on) by the journal, in the SAME transaction as its
events (store/journal.py), so its 2xx means both are on disk. The forwarder
(actors/relay.py) reads each source's rows in id order, which is commit order, and
deletes them once the app behind campaignd has accepted them: at least once, in order.
A row the app keeps refusing as malformed is moved, whole, to `relay_set_aside` (so the
rows after it go on) until an operator puts it back at the end of the queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from store.db import Store

INSERT = "INSERT INTO relay_outbox (source, received_at, headers, body) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One accepted request to relay, as it will be stored."""

    source: str
    received_at: float
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def row(self) -> tuple[str, float, bytes, bytes]:
        return (self.source, self.received_at, orjson.dumps(self.headers), self.body)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    source: str
    received_at: float
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def backlog(self) -> dict[str, tuple[int, float]]:
        """Per source: (rows waiting, the oldest one's receive time)."""
        rows = await self.store.fetchall(
            "SELECT source, COUNT(*), MIN(received_at) FROM relay_outbox GROUP BY source")
        return {source: (count, oldest) for source, count, oldest in rows}

    async def next_row(self, source: str, after_id: int) -> OutboxRow | None:
        """The source's oldest row after `after_id`. One row at a time: a body can be
        megabytes, and the forwarder sends them one by one anyway."""
        row = await self.store.fetchone(
            "SELECT id, received_at, headers, body FROM relay_outbox"
            " WHERE source = ? AND id > ? ORDER BY id LIMIT 1", (source, after_id))
        if row is None:
            return None
        headers = tuple((str(k), str(v)) for k, v in orjson.loads(row[2]))
        return OutboxRow(row[0], source, row[1], headers, bytes(row[3]))

    async def delete_through(self, source: str, last_id: int) -> None:
        """Forget the source's rows up to `last_id`: they were relayed."""
        await self.store.transaction([(
            "DELETE FROM relay_outbox WHERE source = ? AND id <= ?", (source, last_id), False)])

    async def set_aside(self, row: OutboxRow, status: int, error: str) -> None:
        """Move a row the app refuses as malformed out of the queue, in one transaction."""
        await self.store.transaction([
            ("INSERT OR REPLACE INTO relay_set_aside (id, source, received_at, headers, body,"
             " status, error, set_aside_at) SELECT id, source, received_at, headers, body, ?,"
             " ?, ? FROM relay_outbox WHERE id = ?", (status, error, time.time(), row.id),
             False),
            ("DELETE FROM relay_outbox WHERE id = ?", (row.id,), False)])

    async def set_aside_counts(self) -> dict[str, int]:
        rows = await self.store.fetchall(
            "SELECT source, COUNT(*) FROM relay_set_aside GROUP BY source")
        return {source: count for source, count in rows}

    async def requeue(self, source: str) -> int:
        """Put the source's set-aside rows back at the end of its queue, oldest first;
        how many."""
        moved: list[int] = []

        def move(conn: Any) -> None:
            moved.append(conn.execute(
                "INSERT INTO relay_outbox (source, received_at, headers, body) SELECT source,"
                " received_at, headers, body FROM relay_set_aside WHERE source = ? ORDER BY id",
                (source,)).rowcount)
            conn.execute("DELETE FROM relay_set_aside WHERE source = ?", (source,))

        await self.store.transaction([(move, (), False)])
        return moved[0] if moved else 0
