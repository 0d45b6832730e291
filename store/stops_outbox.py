"""Stop / start facts waiting to be shared with the other nodes (table `stops_outbox`,
migration 0018), and how far this node has read the others' (`meta`).

The queue is filled by triggers on `suppressions` in the same transaction that lists a
fact, so a fact is queued exactly when it is durable here; actors/shared_stops.py
empties it once Redis has taken the facts.
"""

from __future__ import annotations

from typing import NamedTuple

from store.db import Store

READ_CURSOR = "cluster_stops_read"  # meta key: the last stream entry read


class SharedFact(NamedTuple):
    fact_id: str
    workspace_id: int
    number: str
    at: float
    kind: int
    reason: str | None
    source: str


class StopsOutbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def waiting(self, limit: int) -> list[tuple[int, SharedFact]]:
        """The oldest facts not yet shared, with their queue numbers."""
        rows = await self.store.fetchall(
            "SELECT seq, fact_id, workspace_id, number, at, kind, reason, source"
            " FROM stops_outbox ORDER BY seq LIMIT ?", (limit,))
        return [(row[0], SharedFact(*row[1:])) for row in rows]

    async def shared(self, through: int) -> None:
        await self.store.transaction([("DELETE FROM stops_outbox WHERE seq <= ?",
                                       (through,), False)])

    async def read_cursor(self) -> str:
        return await self.store.get_meta(READ_CURSOR) or "0-0"

    async def set_read_cursor(self, entry_id: str) -> None:
        await self.store.transaction([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                       (READ_CURSOR, entry_id), False)])
