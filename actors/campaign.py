"""One actor per active campaign: the only owner of that campaign's counters.

It is reached only through the ingest actor (so its inbox order is the journal's
order), applies events to its `Ledger`, publishes what changed, and answers questions
through `Reply` futures. Coming back from passivation it asks the loop to load its rows
and keeps every message that arrives meanwhile, in order, until they are there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pykka
import structlog

from actors.bus import EventBus, StatsBoard
from actors.messages import (
    CampaignChanged,
    CampaignEngagement,
    CampaignEvents,
    CollectDirty,
    GetStatistics,
    GetTimeline,
    Loaded,
    PublishStatistics,
    RegisterMessages,
    RowFacts,
    RowFactsAnswer,
    SkipRows,
)
from core.metrics import Metrics
from domain.engagement import EngagementBook
from domain.image import CHUNK_ROWS, LedgerImage, chunk_count, chunks_of, ledger_image
from domain.ledger import NONE, DirtyRows, Ledger
from domain.ledger_bulk import apply_events
from domain.records import CampaignInfo
from domain.skips import SkipBook, with_skips
from domain.status import Level
from domain.timefmt import iso_time

log = structlog.get_logger(__name__)

Loader = Callable[[CampaignInfo, "pykka.ActorRef[Any]"], None]


class CampaignActor(pykka.ThreadingActor):
    def __init__(
        self,
        info: CampaignInfo,
        bus: EventBus,
        board: StatsBoard,
        metrics: Metrics,
        loader: Loader | None,
        extras: Callable[[int], dict[str, Any]] | None = None,
        watched: Callable[[str], bool] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        super().__init__()
        self.info = info
        self.bus = bus
        self.board = board
        self.metrics = metrics
        self.ledger = Ledger()
        self.engagement = EngagementBook()  # replies, buttons, opt-outs: sparse (SPEC 6)
        self.skips = SkipBook()  # rows the sender skipped: sparse (SPEC 9)
        self._loader = loader
        # Fields other parts add to the statistics (the sender's progress); thread-safe.
        self._extras = extras
        # Whether anyone watches the rows live (web/pusher.py); else no row states.
        self._watched = watched or (lambda uuid: True)
        self._stash: list[Any] | None = [] if loader is not None else None
        self._image_stale = True  # changed since the last recovery image (_image)
        # The stored image's chunks are not this ledger's yet (a fresh actor, or one
        # loaded from rows): its first image is a full one. Loaded from an image, they
        # are, up to that image's rows (`_imaged_rows`).
        self._image_full = True
        self._imaged_rows = 0
        self._chunk_rows = chunk_rows
        # The loaded image's rows the table may not have: marked dirty at the next
        # collection (CollectDirty), so the checkpoint after it writes them.
        self._pending: Any = None
        self.log = log.bind(campaign_uuid=info.uuid)

    def on_start(self) -> None:
        if self._loader is not None:
            self._loader(self.info, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        try:
            if self._stash is not None and not isinstance(message, Loaded):
                self._stash.append(message)
                return None
            return self._handle(message)
        except Exception:  # one bad message must not kill the campaign (SPEC 1.1)
            self.log.exception("campaign.message_failed", message=type(message).__name__)
            return None

    def _handle(self, message: Any) -> Any:
        if isinstance(message, CampaignEvents):
            self._apply(message)
        elif isinstance(message, RegisterMessages):
            self._register(message)
        elif isinstance(message, GetStatistics):
            message.reply.set(self.statistics())
            self.log.debug("campaign.answered")
        elif isinstance(message, GetTimeline):
            message.reply.set(self.ledger.timeline_points(message.points))
        elif isinstance(message, CollectDirty):
            if self._pending is not None:  # the loaded image's pending rows, kept till now
                self.ledger.mark_dirty(self._pending)
                self._pending = None
            dirty = self.ledger.take_dirty_rows(self.info.no)
            message.sink.add(self.info.no, dirty,
                             orjson.dumps(self.statistics()).decode(), self._image(dirty))
        elif isinstance(message, Loaded):
            self._loaded(message)
        elif isinstance(message, CampaignEngagement):
            self._engage(message)
        elif isinstance(message, RowFacts):
            self._row_facts(message)
        elif isinstance(message, SkipRows):
            self._skip(message)
        elif isinstance(message, PublishStatistics):
            self._publish([])
        return None

    def _image(self, dirty: DirtyRows | None) -> tuple[LedgerImage | None, int]:
        """The ledger as a recovery image for the checkpoint (store/image.py), or None
        when nothing changed since the previous one; and its rows.

        Only the chunks that changed since the previous image: those of the rows this
        collection took as dirty (every change to a row's arrays marks it) and those
        past the rows the previous image had (registrations fill rows without marking
        them: the table has them). The checkpoint writes images in collection order,
        so the stored chunks always add up to the newest image."""
        ledger = self.ledger
        rows = len(ledger)
        if not self._image_stale:
            return None, rows
        self._image_stale = False
        changed: list[int] | None = None
        if not self._image_full:
            size = self._chunk_rows
            changed = list(range(self._imaged_rows // size, chunk_count(rows, size)))
            if dirty is not None:
                changed.extend(chunks_of(dirty.rows, size))
        self._image_full = False
        self._imaged_rows = rows
        return ledger_image(ledger, changed, self._chunk_rows), rows

    def statistics(self) -> dict[str, Any]:
        stats = self.ledger.statistics()
        stats.update(self.engagement.statistics(stats["total_delivered_count"]))
        with_skips(stats, self.skips.count)
        stats["updated_at"] = iso_time(self.ledger.updated_at)
        if self._extras is not None:
            stats.update(self._extras(self.info.no))
        return stats

    def _apply(self, message: CampaignEvents) -> None:
        ledger = self.ledger
        # In one call (domain/ledger_bulk.py): the same ledger as `apply` per event, with
        # each changed row's figures moved once per batch instead of once per event.
        changed, applied, duplicate = apply_events(ledger, message.items, message.attempts)
        unknown = len(message.items) - applied - duplicate  # rows the ledger has not
        if unknown:
            self.log.warning("campaign.unknown_row", events=unknown, rows=len(ledger))
        if changed and len(self.engagement):  # rows with credited events: their reply
            engagement = self.engagement     # delays are measured from sent
            for row in changed:
                if row in engagement:
                    engagement.restart(row, self._start(row))
        if self.skips.skips:  # a skipped row that now has a status counts as that (rare)
            for row in changed:
                self.skips.refresh(row, ledger.message_class(row))
        if applied:
            self._image_stale = True
            self.metrics.events.labels(message.source, "applied").inc(applied)
        if duplicate:
            self.metrics.events.labels(message.source, "duplicate").inc(duplicate)
        if changed:
            self._publish(changed)

    def _register(self, message: RegisterMessages) -> None:
        self._image_stale = True  # new rows, or the sender's facts (store/image.py)
        ledger = self.ledger
        rows: list[int] = []
        known = len(ledger)
        fresh = [m.row for m in message.messages if m.row >= known]
        if fresh:  # room for the whole batch at once
            ledger.reserve(max(fresh) + 1, message.messages[0].registered_at)
        for m in message.messages:
            at = m.registered_at
            if m.row < known:
                # An existing (queued) row got its gateway id or its send outcome.
                changed = ledger.apply(m.row, m.level, m.failed, at, m.reason, m.failure,
                                       m.attempt)
                if changed:
                    rows.append(m.row)
                # A later attempt the gateway accepted is now the latest message sent to
                # the recipient (SPEC 6.2 and 9): replies are measured from it.
                resent = m.attempt > 1 and m.level >= Level.PENDING and \
                    ledger.attempt_accepted(m.row, m.attempt, at)
                if (changed or resent) and m.row in self.engagement:
                    self.engagement.restart(m.row, self._start(m.row))
                continue
            stamps = [at, *(at if m.level >= s else 0.0 for s in range(1, 6)),
                      at if m.failed else 0.0]
            ledger.fill(m.row, at, m.level, m.failed, m.reason, stamps, m.failure)
            rows.append(m.row)
        if rows and self.skips.skips:
            for row in rows:
                self.skips.refresh(row, ledger.message_class(row))
        if rows:
            self._publish(rows)
        if message.reply is not None:
            message.reply.set(len(rows))

    def _publish(self, rows: list[int]) -> None:
        stats = self.statistics()
        self.board.publish(self.info.no, stats)
        ledger = self.ledger
        engagement = self.engagement.rows
        skips = self.skips.skips
        states = tuple((row, *ledger.row_state(row), engagement.get(row), skips.get(row))
                       for row in rows[-500:]) if self._watched(self.info.uuid) else ()
        self.bus.publish(CampaignChanged(self.info, stats, states))

    # --- skips (SPEC 9) -----------------------------------------------------------------

    def _skip(self, message: SkipRows) -> None:
        ledger = self.ledger
        changed = [row for row, skip in message.items if row < len(ledger)
                   and self.skips.offer(row, skip, ledger.message_class(row))]
        if changed:
            self._publish(changed)

    # --- engagement (SPEC 6) ------------------------------------------------------------

    def _start(self, row: int) -> float:
        """When the latest message was sent to the row's recipient (its latest accepted
        attempt, SPEC 9), else registered: reply delays start here."""
        ledger = self.ledger
        return ledger.sent_at(row) or ledger.timestamp(0, row) or 0.0

    def _engage(self, message: CampaignEngagement) -> None:
        changed = []
        known = len(self.ledger)
        for row, inbound_id, touch in message.items:
            if row >= known:
                self.log.warning("campaign.unknown_row", row=row)
                continue
            # The analytics recount the row (SPEC 8): the checkpoint that writes the
            # credit marks it (store/engagement.py), its delivery state is unchanged.
            if self.engagement.credit(row, inbound_id, touch, self._start(row)):
                changed.append(row)
        if changed:
            self._publish(changed)

    def _row_facts(self, message: RowFacts) -> None:
        """The send state of rows a live reply may be credited to (domain/attribution)."""
        ledger = self.ledger
        base = ledger.base or 0
        queued = ledger.ts[0]
        facts = []
        for row in message.rows:
            if row >= len(ledger):  # registered, but its registration is not here yet
                facts.append((row, None, 0, False, None, 1, 1))
                continue
            # SPEC 9: sent is the latest accepted attempt's, failed the latest attempt's
            sent_attempt, tick = ledger.sent_tick(row)
            facts.append((row, None if tick == NONE else tick + base, ledger.level[row],
                          bool(ledger.failed[row]), queued[row] + base,
                          ledger.attempts.get(row), sent_attempt))
        message.reply_to.tell(RowFactsAnswer(message.serial, self.info.no, tuple(facts)))

    def _loaded(self, message: Loaded) -> None:
        if message.image is not None:  # an image, or a fresh ledger for a retried load
            self.ledger = message.image
            self._pending = message.pending
            self._image_full = message.image_rows is None
            self._imaged_rows = message.image_rows or 0
        if message.rows:
            self.ledger.load_ticks(message.base, message.rows)
        if message.attempts:
            self.ledger.load_attempts(message.attempts)
        if not message.done:
            return
        for row, inbound_id, touch in message.touches:
            if row < len(self.ledger):
                self.engagement.credit(row, inbound_id, touch, self._start(row))
        for row, skip in message.skips:
            if row < len(self.ledger):
                self.skips.offer(row, skip, self.ledger.message_class(row))
        self.log.debug("campaign.load_done")
        self.ledger.clear_dirty()
        # Rows the image has and the table may not (`_pending`) are marked dirty when the
        # first checkpoint collects, not here: after a flood they are up to a few million
        # entries (0.2-0.8 s), which held back the stash and so the first exact answer.
        self.board.publish(self.info.no, self.statistics())
        stash, self._stash = self._stash or [], None
        self.log.debug("campaign.loaded", rows=len(self.ledger), stashed=len(stash))
        for queued in stash:
            self.on_receive(queued)
        self.log.debug("campaign.stash_applied")
