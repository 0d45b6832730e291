"""Group commit: a webhook's events are on disk before it answers 2xx.

Handlers call `Journal.append` and await it. The requests appended in one turn of the
loop form a `_Turn` that shares ONE future and goes to the writer as one item at the
end of that turn (per request only a tuple is made: no future, no queue put, no done
callback each). The writer thread (store/writer.py) takes every turn waiting whenever
it is free and writes them as ONE journal row (a single autocommit INSERT: atomic).
Still on the writer thread, in commit order, `on_committed` hands the events on (the
runtime tells the ingest actor: one tell per commit, made by the writer, which has
nothing else to do then, rather than by the loop, which has the answers to write);
then the batch goes back to the loop with one `call_soon_threadsafe`, where the turns'
futures are resolved (one `set_result` per turn answers all its requests). Many
concurrent requests thus share one commit, no event reaches a counter before it is
durable, and none is answered before its events were handed on.
A row holds `[[source, [event, ...]], ...]`, one entry per request.

A request to relay (store/relay.py) brings its outbox entry along: a batch with any
writes its journal row and all its outbox rows in ONE transaction (one commit per
batch, as before), so a 2xx means the events and the relay copy are both durable.
Batches without one keep the single-statement path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from domain.events import StatusEvent
from domain.inbound import Event, InboundEvent
from store.db import Store, StoreUnavailable
from store.relay import INSERT as OUTBOX_INSERT
from store.relay import OutboxEntry

log = structlog.get_logger(__name__)

# Called on the writer thread after each commit, in commit order (see above).
Committed = Callable[[list[tuple[str, tuple[Event, ...]]], int, "BatchStats"], None]


BUSY_FOR = 1.0  # seconds after a commit during which the journal counts as busy
# Requests per commit (a moving average) from which the journal counts as flooded:
# requests come faster than the writer commits them one by one, so they queue and share
# commits (32 senders at the daemon's limit: 20-30 per commit; steady traffic below it: 1-2)
FLOOD_BATCH = 4.0
JOURNAL_INSERT = "INSERT INTO journal (seq, source, received_at, events) VALUES (?,?,?,?)"


@dataclass(slots=True)
class BatchStats:
    requests: int
    events: int
    seconds: float
    relayed: dict[str, int] = field(default_factory=dict)  # outbox rows written, by source


class _Shared(asyncio.Future):  # type: ignore[type-arg]
    """The future every request of a turn awaits. Cancelling one waiting request (its
    client went away, a shutdown) must not cancel the others' answer: `cancel` refuses,
    so asyncio cancels only that request's task, once the commit is done."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Turn:
    """The requests appended in one turn of the loop: (source, events, relay) each."""

    __slots__ = ("future", "requests")

    def __init__(self, future: asyncio.Future[int]) -> None:
        self.future = future
        self.requests: list[tuple[str, tuple[Event, ...], OutboxEntry | None]] = []


class Journal:
    def __init__(self, store: Store, on_committed: Committed,
                 on_relayed: Callable[[dict[str, int]], None] | None = None) -> None:
        self.store = store
        self.on_committed = on_committed  # on the writer thread
        # On the loop, before the requests are answered: outbox rows a batch wrote, by
        # source (the relay counts its backlog there: actors/relay.py `committed`)
        self.on_relayed = on_relayed
        self.next_seq = 1  # advanced on the writer thread, read anywhere
        self.last_commit = -BUSY_FOR  # time.monotonic() of the last batch answered
        self.batch_mean = 0.0  # requests per commit, a moving average over ~10 commits
        self._closing = False
        self._pending: set[asyncio.Future[int]] = set()
        self._turn: _Turn | None = None  # what this turn of the loop appended so far

    async def start(self) -> None:
        row = await self.store.fetchone("SELECT MAX(seq) FROM journal")
        checkpoint = await self.store.get_meta("checkpoint_seq")
        self.next_seq = max(row[0] or 0, int(checkpoint or 0)) + 1
        assert self.store.thread is not None
        self.store.thread.batch_fn = self._commit

    def busy(self) -> bool:
        """Webhooks were committed within the last BUSY_FOR seconds (background work
        such as the analytics' recount gives way: store/insights.py)."""
        return time.monotonic() - self.last_commit < BUSY_FOR

    def flooded(self) -> bool:
        """Busy, and the requests lately shared their commits FLOOD_BATCH or more at a
        time: the daemon is at its limit, not just receiving (the Recounter gives way
        further; store/insights.py)."""
        return self.busy() and self.batch_mean >= FLOOD_BATCH

    async def append(self, source: str, events: Sequence[Event],
                     relay: OutboxEntry | None = None) -> int:
        """Return the journal seq once the events (and the request's relay copy, if
        any) are committed; raise StoreUnavailable."""
        return await self.submit(source, events, relay)

    def submit(self, source: str, events: Sequence[Event],
               relay: OutboxEntry | None = None) -> asyncio.Future[int]:
        """`append` without its coroutine (the webhook routes await this future): the
        future of this turn's commit, shared with the turn's other requests."""
        if self._closing or self.store.thread is None:
            raise StoreUnavailable("the daemon is shutting down")
        turn = self._turn
        if turn is None:
            loop = asyncio.get_running_loop()
            turn = self._turn = _Turn(_Shared(loop=loop))
            self._pending.add(turn.future)
            loop.call_soon(self._post)
        turn.requests.append((source, tuple(events), relay))
        return turn.future

    def _post(self) -> None:
        """End of the turn: hand what it appended to the writer as one item."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        thread = self.store.thread
        if thread is None:
            self._pending.discard(turn.future)
            turn.future.set_exception(StoreUnavailable("the daemon is shutting down"))
            return
        thread.post_item(turn)

    # --- on the writer thread -----------------------------------------------------------

    def _commit(self, conn: sqlite3.Connection, turns: list[_Turn]) -> None:
        started = time.perf_counter()
        batch = turns[0].requests if len(turns) == 1 else [
            r for turn in turns for r in turn.requests]
        groups = [(source, events) for source, events, _ in batch if events]
        outbox = [r[2] for r in batch if r[2] is not None]
        seq = self.next_seq
        error: StoreUnavailable | None = None
        relayed: dict[str, int] = {}
        try:
            blob = orjson.dumps([[source, [e.to_row() for e in events]]
                                 for source, events in groups])
            journal_row = (seq, ",".join(sorted({g[0] for g in groups})), time.time(), blob)
            if not outbox:
                conn.execute(JOURNAL_INSERT, journal_row)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if groups:  # a batch of ignored events only has no journal row
                        conn.execute(JOURNAL_INSERT, journal_row)
                    conn.executemany(OUTBOX_INSERT, [e.row() for e in outbox])
                    conn.execute("COMMIT")
                except BaseException:
                    self.store.rollback(conn)
                    raise
                for entry in outbox:
                    relayed[entry.source] = relayed.get(entry.source, 0) + 1
            self.next_seq = seq + 1
            self.store.recovered()
        except (sqlite3.Error, ValueError) as exc:
            self.store.failed(exc)
            error = StoreUnavailable(str(exc))
        except Exception as exc:
            log.exception("journal.commit_failed")
            error = StoreUnavailable(str(exc))
        stats = BatchStats(len(batch), sum([len(g[1]) for g in groups]),
                           time.perf_counter() - started, relayed)
        if error is None:
            try:
                self.on_committed(groups, seq, stats)
            except Exception:  # durable already; the events are replayed at the next start
                log.exception("journal.dispatch_failed", seq=seq)
        assert self.store.thread is not None and self.store.thread.loop is not None
        try:
            self.store.thread.loop.call_soon_threadsafe(self._committed, turns, seq, stats,
                                                        error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    # --- back on the loop ---------------------------------------------------------------

    def _committed(self, turns: list[_Turn], seq: int, stats: BatchStats,
                   error: StoreUnavailable | None) -> None:
        self.last_commit = time.monotonic()
        self.batch_mean += (stats.requests - self.batch_mean) * 0.1
        pending = self._pending
        if error is not None:
            for turn in turns:
                pending.discard(turn.future)
                turn.future.set_exception(error)
            return
        if stats.relayed and self.on_relayed is not None:
            try:
                self.on_relayed(stats.relayed)
            except Exception:
                log.exception("journal.relayed_failed", seq=seq)
        for turn in turns:
            pending.discard(turn.future)
            turn.future.set_result(seq)

    async def close(self) -> None:
        """Refuse new appends; wait until what was appended is committed (or failed)."""
        self._closing = True
        if self._pending:
            await asyncio.wait(list(self._pending))  # (the current turn's included)


Groups = tuple[tuple[str, tuple[Event, ...]], ...]


def decode_event(row: Any, source: str = "") -> Event:
    """A journaled event: a status is a list (as release 0.1 wrote it, or with its
    failure's fields after them), an inbound event a one-key object
    (`InboundEvent.to_row`)."""
    if isinstance(row, dict):
        return InboundEvent.from_row(row)
    return StatusEvent.from_row(row, source)


_make_status = StatusEvent._make


def decode_events(rows: list[Any], source: str) -> tuple[Event, ...]:
    """A request's journaled events. Most are plain statuses (a list of six, not failed):
    those become a StatusEvent with the row itself as its fields (`_make`, no keyword
    call, no failure lookup), at about a third of `from_row`'s cost; a replay after
    kill -9 decodes tens of thousands of them before the counters are exact."""
    out: list[Event] = []
    for row in rows:
        if row.__class__ is list and len(row) == 6 and row[2] is False:
            row.append(None)
            out.append(_make_status(row))
        else:
            out.append(decode_event(row, source))
    return tuple(out)


def decode_batch(blob: bytes) -> Groups:
    return tuple((source, decode_events(rows, source)) for source, rows in orjson.loads(blob))


async def journal_tail(store: Store, after_seq: int, upto: int, chunk: int = 500
                       ) -> AsyncIterator[tuple[int, Groups]]:
    """Journal batches after `after_seq` up to `upto`, oldest first, for replay at
    start-up (rows after `upto` were committed by this run, and dispatched by it)."""
    seq = after_seq
    while True:
        rows = await store.fetchall(
            "SELECT seq, events FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (seq, upto, chunk),
        )
        if not rows:
            return
        for seq, blob in rows:
            yield seq, decode_batch(blob)
