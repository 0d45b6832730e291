"""Checkpoints: the actors' dirty rows written to SQLite, then the journal compacted.

The ingest actor notes the highest journal seq S it has routed and asks every active
campaign actor for its dirty rows (their inboxes are FIFO, so each answer reflects
every event up to S), each with a recovery image of its ledger when it changed, and
adds the id index's image. First the inbound events are written in transactions of
their own (store/engagement.py), then ONE transaction writes the orphan and
suppression changes and the images at S (`_write_images`, store/image.py: from then on
a start may replay the journal from S). Then the rows are written in transactions of
CHUNK_ROWS (so a webhook's commit never waits behind a whole checkpoint; a periodic
checkpoint writes for ROW_SECONDS and leaves the rest to the next, `_write_rows`), and
once all are written one transaction writes the statistics and deletes the journal up
to S (`_row_chunks` says why that is safe). If a write fails, what was collected is
kept and written first by the next checkpoint, so no change is ever forgotten; so is
an answer the checkpoint stopped waiting for (the actors forget what they hand over).

The checkpointer does not know the actors (store/ sits below actors/): the runtime gives
it `collect(reply)`, which asks the ingest actor for the data, and `written(seq)`, which
tells it the data is on disk.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from itertools import repeat
from typing import Any

import structlog

from core.aio import Reply, SharedExclusive, cancel_and_wait
from core.malloc import release_free_memory
from core.metrics import Metrics
from domain.carry import either, overwrite, pieces, sliced, without, worth_merging
from domain.carry import merge as merge_blocks
from domain.ledger import DirtyRows
from domain.records import CheckpointData
from store.db import Statement, Store, StoreUnavailable
from store.engagement import inbound_transactions
from store.image import image_statements, written_statements
from store.row_writes import update_rows

log = structlog.get_logger(__name__)

TRIM_EVERY = 30.0  # seconds
# memory100 (issue 20): also trim once the rows written since the last trim reach this
# many. The carried rows (domain/ledger.py DirtyRows, ~31 bytes a row, several copies of
# a row while ACK passes outrun the writer) are made on the campaign actors' threads in
# blocks below glibc's mmap threshold; freed, they stayed in those threads' arenas for up
# to TRIM_EVERY (~100 bytes per message at the memory row's final reading).
TRIM_ROWS = 100_000
CHUNK_ROWS = 2000  # rows per transaction: ~10-20 ms of the writer's time
# memory8: carried blocks are cut into pieces of this many rows (`_cut`), each let go
# once written: ~2 MB, where a block of a whole ACK pass (31 MB at 1M) was held until its
# last chunk. A multiple of CHUNK_ROWS.
PIECE_ROWS = 32 * CHUNK_ROWS
# A periodic checkpoint writes rows for this long, then leaves the rest to the next one
# (`_write_rows`), unless more than CARRY_ROWS changed rows or CARRY_RUNS runs' data
# are carried.
ROW_SECONDS = 1.0
CARRY_ROWS = 3_000_000
CARRY_RUNS = 8
# The checkpoint at a stop writes rows for at most this long, then leaves the rest to
# the next start (its images are written first, so that start is exact at once and its
# first checkpoint writes them): a stop after a 1M flood took over 60 s writing every
# row, past the unit's TimeoutStopSec (30 s, deploy/campaignd.service), and systemd's
# SIGKILL made a clean stop an unclean one.
STOP_ROWS_SECONDS = 15.0
# --- image cadence (wave 6): between two checkpoints, images alone IMAGES_PER_INTERVAL
# times per interval (0.5 s at the default 2 s) while the journal grows (`_image_only`).
# What a restart replays is the journal after the newest image (~13 us an event to
# apply): at 30,000 statuses/s a 2 s interval left ~60,000 events. An image costs the
# chunks that changed (a few MB), not the whole ledger, so taking one 4x as often is
# cheap. Tied to the interval: a daemon (or test) that checkpoints rarely images rarely.
# Not while the id index grows (registrations, a campaign sending): its image is
# written whole whenever it grew, and the checkpoints image it as before.
IMAGES_PER_INTERVAL = 4
# --- recovery10: images that keep close behind a flood. Besides the cadence above, an
# image is taken as soon as the events dispatched since the newest image's collection
# reach IMAGE_BACKLOG_EVENTS (so under a flood images follow each other with no pause:
# a restart replays about two image cycles' worth of events wherever the kill falls,
# where a fixed cadence left up to 326,000), checked every IMAGE_POLL seconds; also
# between two row transactions of a checkpoint, which held the lock (no image alone)
# for ROW_SECONDS at every periodic run and for minutes when it wrote every row.
# A single-status webhook load (a few thousand events a second) never reaches it.
# `store.image_backlog_events` (default IMAGE_BACKLOG_EVENTS).
IMAGE_BACKLOG_EVENTS = 20_000
IMAGE_POLL = 0.05


class Checkpointer:
    def __init__(
        self,
        store: Store,
        collect: Callable[[Reply], None],
        written: Callable[[int], None],
        metrics: Metrics,
        interval: float,
        collect_timeout: float = 30.0,
        gate: SharedExclusive | None = None,
        journal_seq: Callable[[], int] | None = None,
        index_size: Callable[[], int] | None = None,
        journal_events: Callable[[], int] | None = None,
        image_backlog_events: int = IMAGE_BACKLOG_EVENTS,
    ) -> None:
        self.store = store
        # Held exclusively from collecting to writing: the sender stores outcomes in the
        # rows under it (shared), so none lands between our collect and our write.
        self.gate = gate or SharedExclusive()
        self.collect = collect
        self.written = written
        self.metrics = metrics
        self.interval = interval
        self.collect_timeout = collect_timeout
        self._carry: list[CheckpointData] = []  # collected but not yet written
        self._chunks_done = 0  # of the carry's row chunks (`_row_chunks`), in order
        self._imaged_at = 0.0  # perf_counter of the last image transaction
        # The journal's newest seq (images alone are taken only while it moves), and the
        # periodic runs since the last compaction that left rows for later.
        self._journal_seq = journal_seq
        self._imaged_seq = 0
        # The id index's size (images alone are skipped while it grows: its image is
        # written whole, 33 MB at a million ids, whenever it grew, e.g. while sending).
        self._index_size = index_size or (lambda: 0)
        self._imaged_index = -1
        self._deferred_runs = 0
        # Events dispatched to the actors so far (a count that only grows), when the
        # pending collection was asked for, and when the newest stored image's was: every
        # event dispatched before an ask is in that collection's images (FIFO inboxes).
        self._journal_events = journal_events
        self.image_backlog_events = image_backlog_events
        self._asked_events = 0
        self._collected_events = 0
        self._imaged_events = 0
        # A collection the last run stopped waiting for: the actors still hand over
        # their changed rows (and forget them), so the next run must write that answer.
        self._collecting: asyncio.Future[CheckpointData] | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_seq = 0
        self.last_at: float | None = None
        self._trimmed_at = 0.0
        self._rows_since_trim = 0  # carried rows written and let go since the last trim

    @property
    def _image_every(self) -> float:
        """Seconds between two images while the journal moves (IMAGES_PER_INTERVAL)."""
        return max(self.interval / IMAGES_PER_INTERVAL, 0.1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._periodic(), name="checkpointer")

    @property
    def running(self) -> bool:
        """A checkpoint is being taken (background work gives way to it)."""
        return self._lock.locked()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _periodic(self) -> None:
        while True:
            due = time.perf_counter() + self.interval
            every = self._image_every
            while self._journal_seq is not None:
                # the next look: when the cadence is due, or sooner for the backlog
                now = time.perf_counter()
                wait = self._imaged_at + every - now
                if self._journal_events is not None:
                    wait = min(wait, IMAGE_POLL)
                wait = max(wait, IMAGE_POLL)
                if due - (now + wait) < every:  # the checkpoint images soon anyway
                    break
                await asyncio.sleep(wait)
                if self._image_wanted():
                    await self._guarded(self._image_only())
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await self._guarded(self.run(complete=False))

    def image_backlog(self) -> int:
        """Events dispatched since the newest stored image's collection was asked for:
        about what a start after a kill now would replay."""
        if self._journal_events is None:
            return 0
        return self._journal_events() - self._imaged_events

    def _image_wanted(self) -> bool:
        """An image alone is due: the journal moved since the newest image, the id index
        did not grow (its image is written whole), and either the cadence says so or the
        backlog reached `image_backlog_events`."""
        if self._journal_seq is None or self._journal_seq() <= self._imaged_seq or \
                self._index_size() != self._imaged_index:
            return False
        return time.perf_counter() - self._imaged_at >= self._image_every or \
            self.image_backlog() >= self.image_backlog_events

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except StoreUnavailable as exc:
            log.warning("checkpoint.deferred", error=str(exc))
        except Exception:
            log.exception("checkpoint.failed")

    async def _image_only(self) -> None:
        """Images between two checkpoints (IMAGES_PER_INTERVAL): the actors hand over their
        changed rows and images as for a checkpoint, the images (and the orphans and
        suppressions) are committed at once, and the rows stay carried for the next
        checkpoint, which writes them before it compacts (nothing else changes: the
        journal is compacted only up to rows written)."""
        async with self._lock, self.gate.exclusive():
            data = await self._collect()
            await self._write_images(self._carry)
            await self._absorb(data, self._chunks_done)

    async def final(self) -> int:
        """The checkpoint at a stop: everything, unless its rows take longer than
        STOP_ROWS_SECONDS; what is left stays in the images' pending rows and the
        journal (as after a kill following a periodic checkpoint), written by the next
        start's first checkpoint."""
        return await self.run(rows_within=STOP_ROWS_SECONDS)

    def carried_rows(self) -> int:
        """Changed rows collected and not yet written (some of a block may be)."""
        return sum(len(block) for data in self._carry for block in data.rows)

    async def run(self, complete: bool = True, rows_within: float | None = None) -> int:
        """Take one checkpoint now; return the journal seq it covers. Not `complete`
        (the periodic ones): the rows may be left for the next run (`_write_rows`).
        `rows_within` seconds (`final`): the rows are written until then, whatever the
        carry holds."""
        async with self._lock, self.gate.exclusive():
            started = time.perf_counter()
            data = await self._collect()
            # Markers around the write (debug level): the kill tests read them to count
            # the kills that landed between the actors' hand-over and the commit.
            log.debug("checkpoint.writing", seq=data.seq)
            # The images first, then the rows in transactions of CHUNK_ROWS (a webhook's
            # commit waits for one at most), then everything else with the journal's
            # compaction in the last one. Derived (store/db.py): until the last
            # transaction is durable the journal keeps every event these rows and
            # figures come from.
            await self._write_images(self._carry)
            await self._absorb(data, self._chunks_done)
            covered = len(self._carry)  # data collected later is written by a later run
            deadline = (started + rows_within if rows_within is not None else
                        None if complete else time.perf_counter() + ROW_SECONDS)
            if not await self._write_rows(covered, deadline, refresh=True,
                                          binding=rows_within is not None):
                self._deferred_runs += 1
                log.debug("checkpoint.rows_deferred", seq=data.seq)
                return data.seq
            await self._compact(covered)
            if complete and self._carry:  # collected while writing: no new collection now
                await self._write_rows(len(self._carry), None, refresh=False)
                await self._compact(len(self._carry))
            self.last_at = time.time()
            self.metrics.snapshot_seconds.observe(time.perf_counter() - started)
            await self._trim()
            return data.seq

    async def _trim(self) -> None:
        """glibc's free memory back to the system, every TRIM_EVERY seconds or once
        TRIM_ROWS carried rows were let go since the last trim."""
        if time.monotonic() - self._trimmed_at > TRIM_EVERY or \
                self._rows_since_trim >= TRIM_ROWS:
            self._trimmed_at = time.monotonic()
            self._rows_since_trim = 0
            # off the loop: a trim walks every arena (tens of ms with large heaps),
            # and ctypes lets the other threads run meanwhile
            await asyncio.get_running_loop().run_in_executor(None, release_free_memory)

    async def _compact(self, covered: int) -> None:
        """All rows of the first `covered` carried data are written: the statistics,
        and the journal compacted up to the last one's seq."""
        seq = self._carry[covered - 1].seq
        await self.store.transaction(self._statements(self._carry[:covered], seq),
                                     derived=True)
        log.debug("checkpoint.written", seq=seq)
        self._rows_since_trim += sum(len(block) for data in self._carry[:covered]
                                     for block in data.rows)
        del self._carry[:covered]
        self._chunks_done = 0
        self._deferred_runs = 0
        self.last_seq = seq
        self.written(seq)

    async def _collect(self) -> CheckpointData:
        """The actors' hand-over (an answer a run stopped waiting for comes first),
        added to the carry as it came; `_absorb` merges its rows once its images are
        written."""
        pending = self._collecting
        if pending is None or (pending.done() and (
                pending.cancelled() or pending.exception() is not None)):
            reply = Reply.new()
            if self._journal_events is not None:
                self._asked_events = self._journal_events()
            self.collect(reply)
            self._collecting = pending = reply.future
        asked = time.perf_counter()
        data: CheckpointData = await asyncio.wait_for(asyncio.shield(pending),
                                                      self.collect_timeout)
        log.debug("checkpoint.collected", seq=data.seq,
                  journal_seq=self._journal_seq() if self._journal_seq else None,
                  waited=round(time.perf_counter() - asked, 3))
        self._collecting = None
        self._collected_events = self._asked_events
        self._carry.append(data)  # first: a merge cancelled or failed loses nothing
        return data

    async def _absorb(self, data: CheckpointData, merge_from: int) -> None:
        """The rows of `data` (the carry's newest) merged into the carry's blocks whose
        chunks all come at or after `merge_from` (`_merge_rows`), and the carry cut in
        pieces (`_cut`). recovery10: after the images are written, not before: the
        merge (0.2-0.7 s under a flood) delayed every image by that much, so a restart
        replayed that much more. The images' pending lists may name the new rows twice
        meanwhile (harmless: store/image.py `pending_rows`)."""
        merging = time.perf_counter()
        if data.rows and len(self._carry) > 1 and data is self._carry[-1]:
            try:
                await self._merge_rows(data, merge_from)
            except Exception:  # the carry stays as collected: correct, only larger
                log.exception("checkpoint.merge_failed")
        self._cut(merge_from)
        log.debug("checkpoint.merged", seconds=round(time.perf_counter() - merging, 3))

    def _cut(self, merge_from: int) -> None:
        """memory8: the carried blocks none of whose chunks is made, cut into PIECE_ROWS
        pieces, so each is let go once written (`_write_rows`). A multiple of CHUNK_ROWS:
        the chunks and their numbers stay as they were."""
        chunk = 0
        for data in self._carry:
            at = 0
            while at < len(data.rows):
                block = data.rows[at]
                if chunk >= merge_from and isinstance(block, DirtyRows) and \
                        len(block) > PIECE_ROWS:
                    data.rows[at:at + 1] = pieces(block, PIECE_ROWS)
                    del block
                    continue  # the first piece is at `at` now
                chunk += _chunks(block)
                at += 1

    async def _merge_rows(self, data: CheckpointData, merge_from: int) -> None:
        """memory100 / memory8 (issue 20, domain/carry.py): the carry holds a row once
        where it can, not once per collection. Each new block's rows that a carried
        block of their campaign already holds in chunks not yet made (at or after
        `merge_from`) are written into that block in place (the newest block holding a
        row takes it: it is written last); the rest go into the carry's newest block of
        their campaign when none of its chunks is made and that is cheap
        (`worth_merging`), else stay a block of their own.

        Chunks are numbered over the whole carry (`_row_chunks`): `_chunks_done` of them
        are written, and inside `_write_rows` the next one is made already. Neither way
        changes a made chunk or its number. The work runs on the default executor
        (C-level loops in slices, so the loop keeps its turns)."""
        carried: dict[int, list[tuple[list[Any], int, int]]] = {}  # campaign -> blocks
        chunk = 0
        for older in self._carry[:-1]:  # the last one is `data`
            for at, block in enumerate(older.rows):
                if isinstance(block, DirtyRows):
                    carried.setdefault(block.campaign_no, []).append((older.rows, at, chunk))
                chunk += _chunks(block)
        work = []
        for block in data.rows:
            if not isinstance(block, DirtyRows) or block.campaign_no not in carried:
                continue
            mine = carried[block.campaign_no]
            targets = [(rows[at], max(0, merge_from - first) * CHUNK_ROWS)
                       for rows, at, first in reversed(mine)]
            rows, at, first = mine[-1]
            work.append((block, targets, (rows, at) if first >= merge_from else None))
        if not work:
            return
        outcomes = await asyncio.get_running_loop().run_in_executor(
            None, partial(_absorbed, [(block, targets, None if join is None else
                                       join[0][join[1]]) for block, targets, join in work]))
        left: dict[int, DirtyRows | None] = {}
        for (block, _, join), (rest, joined) in zip(work, outcomes, strict=True):
            if joined is not None and join is not None:
                join[0][join[1]] = joined
            left[id(block)] = rest
        data.rows[:] = [left.get(id(block), block) for block in data.rows]
        data.rows[:] = [block for block in data.rows if block is not None]

    async def _write_images(self, pending: list[CheckpointData]) -> None:
        """Before any row (issue 20, store/image.py): the replies and their credits
        (SPEC 6, chunked), then ONE transaction with the orphan and suppression changes
        and the recovery images at the newest data's seq. From then on a start can
        replay the journal from that seq; the rows below, and the compaction after them,
        keep the rows + journal path complete as before."""
        for carried in pending:
            for statements in inbound_transactions(carried.inbound_ops):
                await self.store.transaction(statements, derived=True)
                statements.clear()  # its records go before the next ones are made
            carried.inbound_ops.clear()  # written: a failure later must not repeat them
        began = time.perf_counter()
        statements = image_statements(pending)
        built = time.perf_counter()
        await self.store.transaction(statements, derived=True)
        del statements
        for carried in pending:
            carried.orphan_ops.clear()
            carried.suppression_ops.clear()
            # the stored images are the actors' latest now: keep no copy
            carried.images = [(no, None, rows) for no, _, rows in carried.images]
            carried.index_image = None
        self._imaged_at = time.perf_counter()
        self._imaged_seq = max(self._imaged_seq, pending[-1].seq)
        self._imaged_index = self._index_size()
        self._imaged_events = self._collected_events
        log.debug("checkpoint.imaged", seq=pending[-1].seq, built=round(built - began, 3),
                  committed=round(self._imaged_at - built, 3))

    async def _write_rows(self, covered: int, deadline: float | None,
                          refresh: bool, binding: bool = False) -> bool:
        """The rows of the first `covered` carried data, resuming after the chunks
        written by earlier runs; True once all are written.

        Under an ACK flood a checkpoint writing every changed row took tens of seconds,
        and the images (what a restart replays the journal from) waited for it. So with
        a `deadline` (perf_counter) it stops there, leaving the rest to the next run
        (still listed in the images' `pending`; the journal is compacted only once all
        are written); past CARRY_ROWS carried rows (memory) or CARRY_RUNS runs (the
        journal must be compacted some time) it writes them all, and then (`refresh`),
        every `interval`, collects again and commits new images between two chunks.
        A `binding` deadline (the stop's) holds whatever is carried."""
        if deadline is not None and not binding and (self._deferred_runs >= CARRY_RUNS or sum(
                len(block) for data in self._carry for block in data.rows) > CARRY_ROWS):
            deadline = None
        for number, (statements, carried, at) in enumerate(
                self._row_chunks(self._carry[:covered])):
            if number < self._chunks_done:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return False
            # new images between two chunks: at the cadence (or for the backlog) as
            # images alone are taken; while the index grows, every interval when all
            # rows are written (its image is written whole)
            if refresh and (self._image_wanted() or (deadline is None and
                            time.perf_counter() - self._imaged_at > self.interval)):
                # chunk `number` is made but not written: merge only into later blocks
                fresh = await self._collect()
                await self._write_images(self._carry)
                await self._absorb(fresh, number + 1)
            await self.store.transaction(statements, derived=True)
            self._chunks_done = number + 1
            if at >= 0:  # the block's last chunk: let its rows go now (WrittenBlock)
                block = carried.rows[at]
                carried.rows[at] = WrittenBlock(block.campaign_no, _chunks(block))
                self._rows_since_trim += len(block)
                del block
            # the chunk's statement holds the block too: emptied, nothing does. Trimmed
            # at the end of a run (`_trim`), not here: a trim walks every arena, and
            # here the checkpoint's lock (so the next image) waited for it
            statements.clear()
        return True

    def _row_chunks(self, pending: list[CheckpointData]
                    ) -> Iterator[tuple[list[Statement], CheckpointData, int]]:
        """The changed rows, a transaction's worth at a time, oldest data first (a newer
        state of a row overwrites an older one), each with its data and, for a block's
        last chunk, the block's place in `data.rows` (else -1).

        Why several transactions are safe: a row only ever holds a state the journal's
        events imply, and the journal is compacted only by the last transaction (after
        every chunk is on disk); a crash between chunks replays the journal over rows of
        which some are newer already, which the status rules make harmless (idempotent,
        order-independent). A checkpoint in one transaction held the writer for seconds
        with a million changed rows, and every webhook waited behind it."""
        for data in pending:
            at = -1
            while at + 1 < len(data.rows):  # live: a collection meanwhile may cut blocks
                at += 1
                block = data.rows[at]
                if isinstance(block, WrittenBlock):
                    yield from repeat(([], data, -1), block.chunks)  # numbers only
                    continue
                size = len(block)
                for lo in range(0, size, CHUNK_ROWS):
                    chunk: list[Statement] = [
                        (partial(update_rows, block=block, lo=lo, hi=lo + CHUNK_ROWS), (), False)]
                    if lo + CHUNK_ROWS >= size:
                        del block  # the last chunk: only its statement holds the block
                        yield chunk, data, at
                    else:
                        yield chunk, data, -1

    def _statements(self, pending: list[CheckpointData], seq: int) -> list[Statement]:
        now = time.time()
        out: list[Statement] = []
        for data in pending:  # oldest first
            if data.campaigns:
                out.append(
                    (
                        "UPDATE campaigns SET statistics = ?, updated_at = ? WHERE no = ?",
                        [(stats, now, no) for no, stats in data.campaigns],
                        True,
                    )
                )
            # the orphan and suppression changes went with the images (_write_images)
        out.extend(written_statements(seq))
        out.append(("DELETE FROM journal WHERE seq <= ?", (seq,), False))
        out.append(
            (
                "INSERT INTO meta (key, value) VALUES ('checkpoint_seq', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(seq),),
                False,
            )
        )
        return out


def _absorbed(work: list[tuple[DirtyRows, list[tuple[DirtyRows, int]], DirtyRows | None]]
              ) -> list[tuple[DirtyRows | None, DirtyRows | None]]:
    """For each new block (on an executor thread): its rows written in place into the
    carried blocks `targets` (newest first, each from its first row in an unmade chunk:
    `domain.carry.overwrite`), then what is left merged into `join` when that is cheap.
    Returns (the block left to carry or None, the merged block to put in `join`'s place
    or None)."""
    out: list[tuple[DirtyRows | None, DirtyRows | None]] = []
    for block, targets, join in work:
        done = bytearray(len(block))  # rows a newer block holds: never placed in older ones
        placed_any = bytearray(len(block))
        for target, from_position in targets:
            if len(target):  # only the new rows in the target's span (rows ascend)
                lo = bisect_left(block.rows, target.rows[0])
                hi = bisect_right(block.rows, target.rows[-1])
                if lo < hi:
                    placed, found = overwrite(target, sliced(block, lo, hi),
                                              bytes(done[lo:hi]), from_position)
                    done[lo:hi] = either(done[lo:hi], found)
                    placed_any[lo:hi] = either(placed_any[lo:hi], placed)
            if from_position:  # the blocks before it are in made chunks
                break
        rest: DirtyRows | None = block
        if placed_any.count(1):
            rest = without(block, bytes(placed_any)) if placed_any.count(0) else None
        if rest is not None and join is not None and worth_merging(join, rest):
            out.append((None, merge_blocks(join, rest)))
        else:
            out.append((rest, None))
    return out


class WrittenBlock:
    """A carried block whose every chunk is written (memory8, issue 20): its rows are let
    go at once, not when the whole carry is compacted (at the memory row's final reading
    the carry still held ~1.9M written and unwritten rows at 1M messages); only its
    place in the carry's chunk numbering stays."""

    __slots__ = ("campaign_no", "chunks", "rows")

    def __init__(self, campaign_no: int, chunks: int) -> None:
        self.campaign_no = campaign_no
        self.chunks = chunks
        self.rows: array[int] = array("I")  # store/image.py lists no pending rows for it

    def __len__(self) -> int:
        return 0


def _chunks(block: DirtyRows | WrittenBlock) -> int:
    """The block's chunks in the carry's numbering (`_row_chunks`)."""
    if isinstance(block, WrittenBlock):
        return block.chunks
    return -(-len(block) // CHUNK_ROWS)
