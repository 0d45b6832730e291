"""Group commit: a webhook's events are on disk before it answers 2xx.

Handlers call `Journal.append` and await it. One writer task takes everything that is
waiting and writes it as ONE journal row (a single autocommit INSERT: atomic, one hop
to the writer thread), and only then resolves the waiting handlers and hands the events
to the ingest actor, in commit order. Many concurrent requests thus share one commit,
and no event reaches a counter before it is durable. A row holds
`[[source, [event, ...]], ...]`, one entry per request.

A request to relay (store/relay.py) brings its outbox entry along: a batch with any
writes its journal row and all its outbox rows in ONE transaction (one commit per
batch, as before), so a 2xx means the events and the relay copy are both durable.
Batches without one keep the single-statement path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from core.aio import cancel_and_wait
from domain.events import StatusEvent
from domain.inbound import Event, InboundEvent
from store.db import Statement, Store, StoreUnavailable
from store.relay import INSERT as OUTBOX_INSERT
from store.relay import OutboxEntry

log = structlog.get_logger(__name__)

Committed = Callable[[list[tuple[str, tuple[Event, ...]]], int, "BatchStats"], None]


JOURNAL_INSERT = "INSERT INTO journal (seq, source, received_at, events) VALUES (?,?,?,?)"


@dataclass(slots=True)
class BatchStats:
    requests: int
    events: int
    seconds: float
    relayed: dict[str, int] = field(default_factory=dict)  # outbox rows written, by source


@dataclass(slots=True)
class _Waiting:
    source: str
    events: tuple[Event, ...]
    future: asyncio.Future[int]
    relay: OutboxEntry | None = None


class Journal:
    def __init__(self, store: Store, on_committed: Committed, max_batch: int = 512,
                 max_in_flight: int = 3) -> None:
        self.store = store
        self.on_committed = on_committed
        self.max_batch = max_batch
        self.next_seq = 1
        self._waiting: list[_Waiting] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Commits in flight on the writer thread, oldest first; each batch is announced
        # (handlers answered, events handed on) only after every older one.
        self.max_in_flight = max_in_flight
        self._in_flight: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        row = await self.store.fetchone("SELECT MAX(seq) FROM journal")
        checkpoint = await self.store.get_meta("checkpoint_seq")
        self.next_seq = max(row[0] or 0, int(checkpoint or 0)) + 1
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def append(self, source: str, events: Sequence[Event],
                     relay: OutboxEntry | None = None) -> int:
        """Return the journal seq once the events (and the request's relay copy, if
        any) are committed; raise StoreUnavailable."""
        if self._closing:
            raise StoreUnavailable("the daemon is shutting down")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(source, tuple(events), future, relay))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                self._in_flight = [t for t in self._in_flight if not t.done()]
                if len(self._in_flight) >= self.max_in_flight:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                seq = self.next_seq
                self.next_seq += 1
                previous = self._in_flight[-1] if self._in_flight else None
                self._in_flight.append(asyncio.create_task(self._commit(batch, seq, previous)))
                await asyncio.sleep(0)  # let the commit reach the writer thread's queue

    async def _commit(self, batch: list[_Waiting], seq: int,
                      previous: asyncio.Task[None] | None = None) -> None:
        started = time.perf_counter()
        with_events = [w for w in batch if w.events]
        blob = orjson.dumps([[w.source, [e.to_row() for e in w.events]] for w in with_events])
        sources = ",".join(sorted({w.source for w in with_events}))
        journal_row = (seq, sources, time.time(), blob)
        outbox = [w.relay for w in batch if w.relay is not None]
        relayed: dict[str, int] = {}
        try:
            if not outbox:
                await self.store.execute_atomic(JOURNAL_INSERT, journal_row)
            else:
                statements: list[Statement] = [(OUTBOX_INSERT, [e.row() for e in outbox], True)]
                if with_events:  # a batch of ignored events only has no journal row
                    statements.insert(0, (JOURNAL_INSERT, journal_row, False))
                await self.store.transaction(statements)
                for entry in outbox:
                    relayed[entry.source] = relayed.get(entry.source, 0) + 1
        except Exception as exc:
            error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            if not isinstance(exc, StoreUnavailable):
                log.exception("journal.commit_failed")
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(error)
            return
        if previous is not None:
            await asyncio.wait([previous])  # announce in commit order
        stats = BatchStats(len(batch), sum(len(w.events) for w in batch),
                           time.perf_counter() - started, relayed)
        try:
            self.on_committed([(w.source, w.events) for w in with_events], seq, stats)
        except Exception:  # durable already; the events are replayed at the next start
            log.exception("journal.dispatch_failed", seq=seq)
        for w in batch:
            if not w.future.done():
                w.future.set_result(seq)

    async def close(self) -> None:
        """Refuse new appends, commit what is waiting, stop the writer."""
        self._closing = True
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        if self._waiting:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            await self._commit(self._waiting[:], seq)
            self._waiting.clear()
        await cancel_and_wait(self._task)
        self._task = None


Groups = tuple[tuple[str, tuple[Event, ...]], ...]


def decode_event(row: Any, source: str = "") -> Event:
    """A journaled event: a status is a list (as release 0.1 wrote it, or with its
    failure's fields after them), an inbound event a one-key object
    (`InboundEvent.to_row`)."""
    if isinstance(row, dict):
        return InboundEvent.from_row(row)
    return StatusEvent.from_row(row, source)


def decode_batch(blob: bytes) -> Groups:
    return tuple((source, tuple(decode_event(r, source) for r in rows))
                 for source, rows in orjson.loads(blob))


async def journal_tail(store: Store, after_seq: int, chunk: int = 500
                       ) -> AsyncIterator[tuple[int, Groups]]:
    """Journal batches after `after_seq`, oldest first, for replay at start-up."""
    seq = after_seq
    while True:
        rows = await store.fetchall(
            "SELECT seq, events FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, chunk),
        )
        if not rows:
            return
        for seq, blob in rows:
            yield seq, decode_batch(blob)
