"""Stop / start facts waiting to be shared with the other nodes (table `stops_outbox`,
migration 0018), and how far this node has read the others' (`meta`).

The queue is filled by triggers on `suppressions` in the same transaction that lists a
fact, so a fact is queued exactly when it is durable here; actors/shared_stops.py
empties it once Redis has taken the facts. The triggers fill it only while `meta` says
this node shares its stops (`SHARING`, set by a cluster node at start): a single node
has nobody to empty it.
"""

from __future__ import annotations

from typing import NamedTuple

from store.db import Store
from store.migrations import QUEUE_STOP_LIST

READ_CURSOR = "cluster_stops_read"  # meta key: the last stream entry read
SHARING = "cluster_stops_sharing"  # meta key, present while this node shares its stops
# (the triggers of migration 0020 name it too)


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

    async def begin_sharing(self) -> bool:
        """From now on every listed fact is queued. The first time (a new cluster node,
        or a single node that joined a cluster), the whole list is queued too, so the
        other nodes learn the stops listed before. True when it was the first time."""
        if await self.store.get_meta(SHARING) is not None:
            return False
        await self.store.transaction([
            ("DELETE FROM stops_outbox", (), False),
            (QUEUE_STOP_LIST, (), False),
            ("INSERT INTO meta (key, value) VALUES (?, '1')", (SHARING,), False)])
        return True

    async def end_sharing(self) -> None:
        """A node out of any cluster: nothing is queued, and what was is dropped (if it
        joins a cluster again, its whole list is shared then)."""
        await self.store.transaction([
            ("DELETE FROM meta WHERE key = ?", (SHARING,), False),
            ("DELETE FROM stops_outbox", (), False)])
