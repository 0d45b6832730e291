"""The relay's durable outbox: accepted webhook requests waiting to be passed on.

A request of a source that relays (`webhooks.<source>.forward_to`) is written here whole
(raw body, the headers worth passing on) by the journal, in the SAME transaction as its
events (store/journal.py), so its 2xx means both are on disk. The forwarder
(actors/relay.py) reads each source's rows in id order, which is commit order, and
deletes them once the app behind campaignd has accepted them: at least once, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

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
