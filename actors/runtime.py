"""Everything the daemon runs, started in order and stopped in reverse, in one place.

Start: store -> state from SQLite (campaigns, id index, orphans) -> ingest actor ->
journal replay -> journal writer -> checkpointer. Stop: checkpointer -> journal (commits
what waits) -> final checkpoint -> actors -> store. The aiohttp app runs this from its
cleanup_ctx, after aiohttp itself has stopped accepting and closed the WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import pykka
import structlog

from actors.account import AccountService
from actors.alerts import AlertService
from actors.bus import EventBus, StatsBoard
from actors.campaign import CampaignActor
from actors.ingest import IngestActor
from actors.limited_retry import LimitedRetry
from actors.messages import (
    ApplyEvents,
    CampaignCreated,
    Checkpoint,
    CheckpointDone,
    GetStatistics,
    Loaded,
    NumberRows,
    RegisterMessages,
    SkipRows,
)
from actors.relay import Relay
from actors.sender_service import SendingContext, SendingService
from actors.shared_stops import SharedStops, UnsharedStops
from actors.suppressions import SuppressionList
from core.aio import Busy, Reply, SharedExclusive
from core.config import Config
from core.metrics import Metrics
from domain.attribution import Attributor, Lookup
from domain.events import StatusEvent
from domain.index import MessageIndex
from domain.ledger import Ledger
from domain.orphans import OrphanShelf
from domain.records import CampaignInfo
from store import attempts as attempt_store
from store.account import AccountStore
from store.alerts import AlertStates
from store.campaigns import CampaignStore
from store.checkpoint import Checkpointer
from store.db import Store, StoreUnavailable
from store.engagement import EngagementStore, NumberRowsReader, event_of
from store.image import CampaignImage, Trusted, imaged_rows, trusted_images
from store.insights import Recounter
from store.journal import BatchStats, Groups, Journal, journal_tail
from store.relay import Outbox
from store.stops_outbox import StopsOutbox

log = structlog.get_logger(__name__)

REPLAY_EVENTS = 20_000  # events per ApplyEvents at start-up (`_replay`)


class Extension(Protocol):
    """A part started after the core and stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.store = Store(config.db_path, config["store.busy_timeout_ms"],
                           config["store.synchronous"], config["store.failure_hold"])
        self.campaigns = CampaignStore(self.store)
        self.engagement = EngagementStore(self.store)
        # The suppression list (SPEC 6.4): `is_suppressed(workspace, number)` from any
        # thread, in O(1); the sender consults it before each send (SPEC 9 skips).
        self.suppressions = SuppressionList()
        self.bus = EventBus()
        self.board = StatsBoard()
        # Whether anyone watches a campaign's rows live (uuid -> bool, read from campaign
        # actors' threads): the push layer sets it; unwatched, a campaign actor skips the
        # per-row states of its changes (most of its work per batch of statuses).
        self.rows_watched: Callable[[str], bool] = lambda uuid: True
        self.journal = Journal(self.store, self._dispatch,
                               on_relayed=lambda relayed: self.relay.committed(relayed))
        self.state_gate = SharedExclusive()  # checkpoints vs the sender's row writes
        self.ingest: pykka.ActorRef[Any] | None = None
        self.checkpointer: Checkpointer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = False  # everything runs: every route answers
        self.accepting = False  # the journal runs: webhooks are committed (start_core)
        # Batches committed while `recover` runs (the writer thread appends, under the
        # lock): they go to the ingest actor after the replay, in commit order.
        self._held: list[tuple[tuple[tuple[str, tuple[Any, ...]], ...], int]] | None = []
        self._held_lock = threading.Lock()
        self._replay_upto = 0
        self._images: dict[int, CampaignImage] = {}  # usable recovery images, until loaded
        self._started = 0.0
        self.started_at = time.time()
        self.replayed_events = 0
        # Events committed by this run's journal and dispatched (on the loop): the
        # checkpointer takes an image as soon as enough came since its newest one.
        self.dispatched_events = 0
        self.imaged_campaigns = 0  # campaigns this start loaded from recovery images
        # Further parts (sender, broadcaster, ...): objects with `async start()` and
        # `async stop()`, given what they need when made, started after the core in
        # list order and stopped before it in reverse (Mopidy's order, in one place).
        self.extensions: list[Extension] = []
        self.sending = SendingService(SendingContext(
            config=config, campaigns=self.campaigns, metrics=self.metrics, bus=self.bus,
            board=self.board, journal_append=self.journal.append, register=self.register,
            ask=self.ask, checkpoint=self.checkpoint, gate=self.state_gate,
            suppressions=self.suppressions))
        self.extensions.append(self.sending)
        # Passes every accepted webhook request on to the app behind (forward_to).
        self.relay = Relay(lambda: self.config, Outbox(self.store), self.metrics)
        # Started with the journal (start_core): a webhook accepted while the state is
        # recovered may carry a relay copy.
        self.early_extensions: list[Extension] = [self.relay]
        # Limited by Meta failures re-sent after sender.marketing_cap_retry_after, if on.
        self.extensions.append(LimitedRetry(config, self.bus, self.sending, self.checkpoint))
        # Alert rules (SPEC 7.2): a listener on the bus; its pauses go through the sender.
        # What is firing is stored, so a restart does not announce it again.
        self.alerts = AlertService(config, self.bus, self.metrics, self.sending,
                                   AlertStates(self.store), self.campaigns.all_infos,
                                   self.board.get)
        self.extensions.append(self.alerts)
        # Meta account and template webhooks: stored, and a stopped template pauses sends.
        self.account = AccountService(AccountStore(self.store), self.campaigns, self.sending,
                                      self.metrics)
        self.extensions.append(self.account)
        # Analytics (SPEC 8): rows written are recounted into the aggregates a moment
        # later, and those stored before the aggregates existed once (store/insights.py).
        self.recounter = Recounter(self.store, busy=self._ingest_busy,
                                   flooded=self.journal.flooded)
        self.extensions.append(self.recounter)
        # A cluster's nodes share their opt-outs (docs/cluster.md): a STOP on one node
        # keeps every node from messaging that number.
        self.shared_stops: SharedStops | None = None
        if config["cluster.node"] and config["cluster.redis_url"]:
            self.shared_stops = SharedStops(
                config["cluster.node"], config["cluster.redis_url"], config["cluster.channel"],
                StopsOutbox(self.store), self.journal, config["cluster.reconnect_max"])
            self.extensions.append(self.shared_stops)
        else:
            self.extensions.append(UnsharedStops(StopsOutbox(self.store)))

    # --- start / stop -----------------------------------------------------------------

    async def start(self) -> None:
        """Everything, in order (tests and `campaignd demo`: ready when this returns)."""
        await self.start_core()
        await self.recover()

    async def start_core(self) -> None:
        """What a durable webhook needs: the database and the journal writer. From here
        webhooks may be committed (2xx) while `recover` loads the state; their events wait
        in `_held` and go to the ingest actor after the replay, in commit order."""
        self.loop = asyncio.get_running_loop()
        self._started = time.perf_counter()
        await self.store.open()
        await self.journal.start()
        # Replay reads the journal up to here; later rows are this run's own commits.
        self._replay_upto = self.journal.next_seq - 1
        for ext in self.early_extensions:
            await ext.start()
        self.accepting = True

    async def recover(self) -> None:
        """The state from SQLite (campaigns, id index, orphans, engagement), the ingest
        actor, the journal replay, then the checkpointer and the other parts."""
        await self.campaigns.drop_unfinished()  # creations a crash interrupted
        await self.campaigns.load_next_rows()
        infos = await self.campaigns.all_infos()
        checkpoint_seq = int(await self.store.get_meta("checkpoint_seq") or 0)
        # Recovery images (store/image.py): when usable, the journal is replayed from
        # their seq, campaigns load from them and the index from its image.
        trusted = await trusted_images(self.store, checkpoint_seq)
        log.debug("runtime.images_read", campaigns=len(trusted.campaigns))
        imaged = self.imaged_campaigns = len(trusted.campaigns)
        if trusted.index is not None:
            index = await self._join_index(trusted.index, trusted.stale)
            self._images = trusted.campaigns
        else:
            index = await self._load_index()
        log.debug("runtime.index_joined")
        orphans = await self._load_orphans()
        registered_orphans = orphans.claim_registered(index.get)
        self.metrics.orphans_pending.set(len(orphans))
        attributor = await self._load_engagement(index, infos)
        self.ingest = IngestActor.start(
            index, infos, orphans, self._start_campaign_actor, self.metrics,
            self.config["ingest.passivate_after"], trusted.seq,
            attributor=attributor, suppressions=self.suppressions, lookup=self._lookup,
            lookup_now=NumberRowsReader(self.store.path, self.store.busy_timeout_ms),
        )
        # Every imaged campaign gets its actor now, whether or not the journal after the
        # images has events for it: the image may hold events after `checkpoint_seq`
        # that only its actor can write (its pending rows) before the journal is
        # compacted past them.
        for no in trusted.campaigns:
            self.ingest.tell(GetStatistics(no, Reply.new()))
        if registered_orphans:
            log.info("runtime.orphans_registered", events=sum(
                len(events) for _, events in registered_orphans))
            self.ingest.tell(ApplyEvents(registered_orphans, trusted.seq))
        self.replayed_events = await self._replay(trusted.seq, self._replay_upto,
                                                  trusted, index)
        with self._held_lock:  # the writer's next commits wait, then tell the actor
            held, self._held = self._held, None
            for groups, seq in held or ():  # committed while we recovered: after the replay
                self.ingest.tell(ApplyEvents(groups, seq))
        ingest = self.ingest
        self.checkpointer = Checkpointer(
            self.store,
            collect=lambda reply: ingest.tell(Checkpoint(reply)),
            written=self._checkpoint_written,
            metrics=self.metrics,
            interval=self.config["store.checkpoint_interval"],
            gate=self.state_gate,
            journal_seq=lambda: self.journal.next_seq - 1,
            index_size=lambda: len(index),  # read across threads: an int, a hint only
            journal_events=lambda: self.dispatched_events,
            image_backlog_events=self.config["store.image_backlog_events"],
        )
        self.checkpointer.start()
        for ext in self.extensions:
            await ext.start()
            log.debug("runtime.extension_started", extension=type(ext).__name__)
        self.ready = True
        log.info("runtime.started", campaigns=len(infos), messages=len(index),
                 orphans=len(orphans), replayed_events=self.replayed_events,
                 replayed_from=trusted.seq, images=imaged,
                 held_batches=len(held or ()),
                 seconds=round(time.perf_counter() - self._started, 3))

    async def stop(self) -> None:
        self.ready = False
        self.accepting = False
        for ext in [*reversed(self.extensions), *reversed(self.early_extensions)]:
            try:
                await ext.stop()
            except Exception:
                log.exception("runtime.extension_stop_failed", extension=type(ext).__name__)
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await self.journal.close()
        if self.checkpointer is not None and self.ingest is not None:
            try:
                seq = await self.checkpointer.final()
                # rows_left: written by the next start's first checkpoint (its images
                # make that start exact at once); the journal keeps their events
                log.info("runtime.final_checkpoint", seq=seq,
                         rows_left=self.checkpointer.carried_rows())
            except Exception as exc:  # the journal still has everything: replayed at start
                log.error("runtime.final_checkpoint_failed", error=str(exc))
        if self.ingest is not None:
            ingest, self.ingest = self.ingest, None
            await asyncio.get_running_loop().run_in_executor(None, _stop_actor, ingest)
        await self.store.close()
        log.info("runtime.stopped")

    # --- loading state ----------------------------------------------------------------

    async def _load_index(self) -> MessageIndex:
        count = await self.store.fetchone("SELECT COUNT(*) FROM messages WHERE h IS NOT NULL")
        index = MessageIndex(capacity=max(1024, int(count[0] * 1.5)))
        return await self._index_rows(index, {})

    async def _join_index(self, index: MessageIndex, stale: set[int]) -> MessageIndex:
        """The index's recovery image, with the ids it cannot know: rows registered
        after a campaign's latest image (registration does not wait for checkpoints;
        every row for a campaign never imaged), every row of a campaign whose image is
        stale (a sender write after it may have given a row its id) and every earlier
        attempt's id (few). Adding an id the image has already changes nothing."""
        known = await imaged_rows(self.store)
        for no in stale:
            known.pop(no, None)
        return await self._index_rows(index, known)

    async def _index_rows(self, index: MessageIndex, known: dict[int, int]) -> MessageIndex:
        """Add every campaign's rows from row `known[no]` on (all of them for a campaign
        not in `known`), then the earlier attempts' ids and the ids whose hash was taken."""
        nos = [r[0] for r in await self.store.fetchall("SELECT no FROM campaigns")]
        collided: list[tuple[int, int, int]] = []
        for no in nos:
            after = known.get(no, 0) - 1
            # A row's id is its latest attempt's (attempt 1 for messages sent elsewhere).
            while rows := await self.store.fetchall(
                    "SELECT row, h, MAX(attempts, 1) FROM messages WHERE campaign_no = ?"
                    " AND row > ? AND h IS NOT NULL ORDER BY row LIMIT 50000", (no, after)):
                for row, h, attempt in rows:
                    if not index.load(h, no, row, attempt):
                        collided.append((no, row, 0))
                after = rows[-1][0]
        await self._index_earlier_attempts(index, collided)
        return index

    async def _index_earlier_attempts(self, index: MessageIndex,
                                      collided: list[tuple[int, int, int]]) -> None:
        """Earlier attempts' ids (SPEC 9): an ACK for one is still evidence for its row;
        then the ids whose hash was taken, added by their full id."""
        later = (-1, -1, -1)
        while entries := await attempt_store.index_entries(self.store, later, 50000):
            for no, row, attempt, h in entries:
                if not index.load(h, no, row, attempt):
                    collided.append((no, row, attempt))
            later = entries[-1][:3]
        for no, row, attempt in collided:
            if attempt:
                message_id = await attempt_store.message_id_of(self.store, no, row, attempt)
            else:
                hit = await self.store.fetchone(
                    "SELECT message_id, MAX(attempts, 1) FROM messages WHERE campaign_no = ?"
                    " AND row = ?", (no, row))
                message_id, attempt = hit[0], hit[1]
            if message_id:
                index.add(message_id, no, row, attempt=attempt)

    async def _load_orphans(self) -> OrphanShelf:
        import orjson

        shelf = OrphanShelf(self.config["ingest.orphan_ttl"])
        rows = await self.store.fetchall(
            "SELECT source, event, received_at FROM orphans ORDER BY id")
        for source, blob, received_at in rows:
            shelf.keep(source, StatusEvent.from_row(orjson.loads(blob), source), received_at,
                       durable=True)
        self.metrics.orphans_pending.set(len(shelf))
        return shelf

    async def _load_engagement(self, index: MessageIndex, infos: dict[int, CampaignInfo]
                               ) -> Attributor:
        """The suppression list, and the inbound events still inside their reply window
        (their credits may move; they look their numbers up again once ingest runs)."""
        from domain.phones import number_key

        for fact_id, workspace, number, at, kind, reason, source in \
                await self.engagement.suppression_facts():
            self.suppressions.put(fact_id, number, (*self.suppressions.workspaces_of(fact_id),
                                                    workspace), at, kind, reason, source,
                                  durable=True)
        window = self.config["engagement.reply_window"]
        attributor = Attributor(window, index.get,
                                lambda no: getattr(infos.get(no), "workspace_id", None))
        live = await self.engagement.live_inbound(window)
        for row in live:
            event = event_of(row)
            source, campaign_no, row_no, how, received_at = row[1], row[12], row[13], row[14], \
                row[15]
            target = (campaign_no, row_no) if campaign_no is not None else None
            attributor.restore(source, event, received_at,
                               number_key(event.number) if event.number else None, target,
                               how, self.suppressions.workspaces_of(event.inbound_id))
        self.metrics.inbound_live.set(len(attributor))
        return attributor

    def _lookup(self, lookup: Lookup, ref: pykka.ActorRef[Any]) -> None:
        """Called in the ingest actor's thread: find the rows sent to some numbers on the
        loop, tell the answer back."""
        self._on_loop(lambda: self._number_rows(lookup, ref))

    def _on_loop(self, coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """From an actor's thread: run `coroutine()` as a task on the loop (never wait
        for it there: the answer comes back to the actor with a tell)."""
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(coroutine()))
        except RuntimeError:
            pass  # the loop is closed: we are shutting down

    async def _number_rows(self, lookup: Lookup, ref: pykka.ActorRef[Any]) -> None:
        for attempt in range(1, 10_000):
            try:
                rows = await self.engagement.number_rows(lookup.keys)
                ref.tell(NumberRows(lookup.serial, lookup.keys, tuple(rows)))
                return
            except pykka.ActorDeadError:
                return
            except Exception as exc:  # storage failing: the reply waits, it is journaled
                log.warning("runtime.number_lookup_failed", attempt=attempt, error=str(exc))
                await asyncio.sleep(min(5.0, 0.2 * attempt))

    async def _replay(self, after_seq: int, upto: int, trusted: Trusted,
                      index: MessageIndex) -> int:
        """The journal after `after_seq`, handed to the ingest actor REPLAY_EVENTS at a
        time across journal rows (in order): routing and each campaign actor's work per
        message (its statistics, its publish) once per bulk, not once per journal row.
        Up to the images' seq, only the statuses of campaigns whose image was stale
        (store/image.py `Trusted`)."""
        assert self.ingest is not None
        total = 0
        bulk: list[tuple[str, tuple[Any, ...]]] = []
        size = last = 0
        async for seq, groups in journal_tail(self.store, after_seq, upto):
            if seq <= trusted.image_seq and trusted.stale:
                groups = _only_campaigns(groups, trusted.stale, index)
            bulk.extend(groups)
            size += sum(len(events) for _, events in groups)
            last = seq
            if size >= REPLAY_EVENTS:
                self.ingest.tell(ApplyEvents(tuple(bulk), last))
                total += size
                bulk, size = [], 0
        if bulk:
            self.ingest.tell(ApplyEvents(tuple(bulk), last))
            total += size
        if total:
            log.info("runtime.journal_replayed", events=total)
        return total

    # --- called from actors and the journal -------------------------------------------

    def _dispatch(self, groups: list[tuple[str, tuple[StatusEvent, ...]]], seq: int,
                  stats: BatchStats) -> None:
        """After a journal commit, on the writer thread in commit order (store/journal.py):
        hand the events to the ingest actor (or keep them until the replay has gone before
        them, while `recover` runs). The loop answers the requests only after this."""
        if groups:
            self.dispatched_events += sum([len(events) for _, events in groups])
            with self._held_lock:
                if self._held is not None:
                    self._held.append((tuple(groups), seq))
                else:
                    assert self.ingest is not None
                    self.ingest.tell(ApplyEvents(tuple(groups), seq))
        self.metrics.journal_commit.observe(stats.seconds)
        self.metrics.journal_batch.observe(stats.requests)

    def _ingest_busy(self) -> bool:
        """Webhooks are being committed, the ingest actor still has work waiting (replies
        are attributed after their 2xx: lookups, answers, credits) or a checkpoint is
        written: the analytics' recount gives way (store/insights.py)."""
        return self.journal.busy() or (
            self.ingest is not None and self.ingest.actor_inbox.qsize() > 0) or (
            self.checkpointer is not None and self.checkpointer.running)

    def _checkpoint_written(self, seq: int) -> None:
        """After a checkpoint (on the loop): idle actors may passivate, and the rows it
        wrote are recounted into the analytics."""
        if self.ingest is not None:
            self.ingest.tell(CheckpointDone(seq))
        self.recounter.wake()

    def _start_campaign_actor(self, info: CampaignInfo, load: bool) -> pykka.ActorRef[Any]:
        """Called in the ingest actor's thread."""
        loader = self._request_load if load else None
        return CampaignActor.start(info, self.bus, self.board, self.metrics, loader,
                                   self.sending.extras,
                                   watched=lambda uuid: self.rows_watched(uuid),
                                   chunk_rows=self.config["store.image_chunk_rows"])

    def _request_load(self, info: CampaignInfo, ref: pykka.ActorRef[Any]) -> None:
        """Called in a campaign actor's thread: load its rows on the loop, tell them back."""
        self._on_loop(lambda: self._load_campaign(info, ref))

    async def _load_campaign(self, info: CampaignInfo, ref: pykka.ActorRef[Any]) -> None:
        # Its recovery image, once (store/image.py): a later load (after passivation)
        # reads the rows, complete by then.
        image = self._images.pop(info.no, None)
        for attempt in range(1, 1000):
            try:
                after, known_base = -1, None
                if image is not None:  # it replaces the actor's ledger
                    ledger = image.ledger if attempt == 1 else image.fresh()
                    ref.tell(Loaded(info, [], done=False, image=ledger,
                                    pending=image.pending, image_rows=image.rows))
                    after, known_base = image.rows - 1, image.ledger.base
                elif attempt > 1:  # an earlier attempt may have sent some rows already:
                    ref.tell(Loaded(info, [], done=False, image=Ledger()))  # start afresh
                async for base, columns, attempts in self.campaigns.state_columns(
                        info.no, after_row=after, base=known_base):
                    ref.tell(Loaded(info, columns, done=False, base=base, attempts=attempts))
                touches = await self.engagement.campaign_touches(info.no)
                skips = await self.campaigns.skips(info.no)
                ref.tell(Loaded(info, [], done=True, touches=tuple(touches),
                                skips=tuple(skips)))
                return
            except pykka.ActorDeadError:
                return
            except Exception as exc:
                log.warning("runtime.campaign_load_failed", campaign_no=info.no,
                            attempt=attempt, error=str(exc))
                await asyncio.sleep(min(5.0, 0.2 * attempt))

    # --- used by the web layer --------------------------------------------------------

    async def flush_rows(self, timeout: float = 10.0) -> None:
        """Store what the actors hold before rows are read from SQLite (rows API, export).

        A checkpoint that takes longer than `timeout` goes on in the background; the
        reader then sees rows as of the previous checkpoint rather than waiting. So it
        does while storage fails, without waiting for a checkpoint bound to fail too:
        reads still work then, and the statistics come from memory anyway."""
        if self.checkpointer is None or self.store.last_error is not None:
            return
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            await asyncio.wait_for(asyncio.shield(self.checkpointer.run()), timeout)

    async def checkpoint(self) -> int:
        """Take a checkpoint now (raises StoreUnavailable while storage fails)."""
        assert self.checkpointer is not None
        return await self.checkpointer.run()

    def campaign_created(self, info: CampaignInfo) -> None:
        assert self.ingest is not None
        self.ingest.tell(CampaignCreated(info))

    def register(self, message: RegisterMessages | SkipRows) -> None:
        assert self.ingest is not None
        self.ingest.tell(message)

    async def ask(self, message_factory: Any, timeout: float = 10.0) -> Any:
        """Send a message carrying a Reply through the ingest actor; await the answer."""
        assert self.ingest is not None
        reply = Reply.new()
        self.ingest.tell(message_factory(reply))
        try:
            return await asyncio.wait_for(reply.future, timeout)
        except TimeoutError:
            raise Busy(f"the campaign actors did not answer within {timeout:g} s (busy "
                       "loading campaigns or handing over a checkpoint)") from None


def _only_campaigns(groups: Groups, campaigns: set[int], index: MessageIndex) -> Groups:
    """The statuses of these campaigns (by the id index), nothing else."""
    out = []
    for source, events in groups:
        kept = tuple(e for e in events if e.__class__ is StatusEvent
                     and (hit := index.get(e.message_id)) is not None and hit[0] in campaigns)
        if kept:
            out.append((source, kept))
    return tuple(out)


def _stop_actor(ref: pykka.ActorRef[Any]) -> None:
    try:
        ref.stop(block=True, timeout=10)
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
