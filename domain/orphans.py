"""Events whose message id is not registered yet (the ACK beat the send's answer).

Kept by the ingest actor, keyed by bare id, until the id is registered or the events
expire. Durability: an orphan's event is in the journal from the moment it arrived;
each checkpoint moves new orphans into the `orphans` table before it compacts the
journal, so the `added` / `removed` deltas below are what the checkpoint writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from domain.events import StatusEvent


class OrphanShelf:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        # bare id -> [(source, event, received_at)]
        self.waiting: dict[str, list[tuple[str, StatusEvent, float]]] = {}
        # Changes since the last checkpoint, in order: ("add", row) or ("remove", id).
        self._ops: list[tuple[str, tuple[str, str, bytes, float] | str]] = []
        self.expired_total = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.waiting.values())

    def keep(self, source: str, event: StatusEvent, received_at: float | None = None,
             durable: bool = False) -> None:
        """Shelve an event; `durable` when it was loaded from the orphans table."""
        when = received_at if received_at is not None else time.time()
        self.waiting.setdefault(event.message_id, []).append((source, event, when))
        if not durable:
            row = (event.message_id, source, orjson.dumps(event.to_row()), when)
            self._ops.append(("add", row))

    def claim(self, message_id: str) -> list[tuple[str, StatusEvent]]:
        """Take the events of an id that has just been registered."""
        entries = self.waiting.pop(message_id, None)
        if not entries:
            return []
        self._ops.append(("remove", message_id))
        return [(source, event) for source, event, _ in entries]

    def claim_registered(self, registered: Callable[[str], object]
                         ) -> tuple[tuple[str, tuple[StatusEvent, ...]], ...]:
        """Take, grouped by source, the events of every kept id that is registered after
        all. At start-up: a kill -9 between a registration's commit and its message to
        the ingest actor leaves the row known (loaded from SQLite) while its orphans wait
        for a registration that already happened; nothing else would ever claim them."""
        by_source: dict[str, list[StatusEvent]] = {}
        for message_id in [m for m in self.waiting if registered(m) is not None]:
            for source, event in self.claim(message_id):
                by_source.setdefault(source, []).append(event)
        return tuple((source, tuple(events)) for source, events in by_source.items())

    def expire(self, now: float | None = None) -> int:
        """Drop ids that waited longer than the ttl; return how many events went."""
        now = now if now is not None else time.time()
        dropped = 0
        for message_id in [m for m, v in self.waiting.items() if now - v[0][2] > self.ttl]:
            dropped += len(self.waiting.pop(message_id))
            self._ops.append(("remove", message_id))
        self.expired_total += dropped
        return dropped

    def take_delta(self) -> list[tuple[str, tuple[str, str, bytes, float] | str]]:
        """What changed since the last checkpoint, in order, for the orphans table."""
        ops, self._ops = self._ops, []
        return ops
