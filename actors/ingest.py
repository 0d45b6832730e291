"""The ingest actor: resolves message ids to campaigns and routes everything to them.

Every message for a campaign actor passes through here, so a campaign's inbox sees
events, registrations and questions in the order the loop sent them (a read after a
webhook's 2xx sees that webhook). It owns the id index, the orphan shelf and the map of
active campaign actors; it starts a campaign actor on demand and passivates idle ones
after a checkpoint has stored their state.

Inbound events (SPEC 6) go to the attributor (domain/attribution.py), which sees every
registration and status here in journal order; its lookups of the rows sent to a
number run on the loop (`NumberRows` comes back), its questions about a row's send
state go to the campaign actors (`RowFactsAnswer` comes back), and its credits go to
the campaign actors like events. Stops and starts update the suppression list.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from actors.messages import (
    ApplyEvents,
    CampaignCreated,
    CampaignEngagement,
    CampaignEvents,
    Checkpoint,
    CheckpointDone,
    CollectDirty,
    GetStatistics,
    GetSuppressions,
    GetTimeline,
    NumberRows,
    PublishStatistics,
    RegisterMessages,
    RowFacts,
    RowFactsAnswer,
    SkipRows,
)
from actors.suppressions import SuppressionList
from core.aio import Reply
from core.metrics import Metrics
from domain.attribution import Ask, Attributor, Credit, Lookup, Suppress, pack
from domain.events import StatusEvent
from domain.image import LedgerImage, index_to_bytes
from domain.inbound import MANUAL, InboundEvent
from domain.index import MessageIndex
from domain.ledger import DirtyRows
from domain.orphans import OrphanShelf
from domain.records import CampaignInfo, CheckpointData

log = structlog.get_logger(__name__)

# (info, load_from_store) -> a started campaign actor
CampaignFactory = Callable[[CampaignInfo, bool], "pykka.ActorRef[Any]"]
# (lookup, ingest ref) -> runs the lookup on the loop and tells the ref `NumberRows`
NumberLookup = Callable[[Lookup, "pykka.ActorRef[Any]"], None]
# keys -> (number key, campaign_no, row) of the rows sent there, read on this thread
# (store/engagement.py NumberRowsReader); raises when storage cannot be read
NumberRowsNow = Callable[[tuple[int, ...]], list[tuple[int, int, int]]]


class UnknownCampaign(LookupError):
    pass


class AnswerBox:
    """Where campaign actors put their answers to the attributor's questions
    (`RowFactsAnswer`): the ingest actor takes them before its next message, not after
    everything queued since the question.

    Why: while replies arrive faster than this one thread decides them, its inbox holds
    seconds of journal batches, and an answer told through the inbox waited behind all
    of them; every checkpoint in between stored those replies as waiting and the next
    one stored them again with their credit (two inbound writes per reply, and the
    attributor's record made twice: docs/BENCHMARKS.md, wave 7). When an answer is
    merged does not change what it decides: a row's answer and the statuses routed after
    the question merge to the same state in any order (domain/attribution_facts.py).
    Each answer still tells the actor (`AnswersWaiting`) so an idle actor wakes up."""

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.answers: deque[RowFactsAnswer] = deque()

    def tell(self, message: RowFactsAnswer) -> None:
        """On a campaign actor's thread (deque appends are atomic)."""
        self.answers.append(message)
        self.ref.tell(AnswersWaiting())


class AnswersWaiting:
    """To the ingest actor: its AnswerBox holds answers (it may have taken them)."""

    __slots__ = ()


class CheckpointCollector:
    """Gathers every campaign actor's dirty rows for one checkpoint (thread-safe)."""

    def __init__(self, data: CheckpointData, expected: int, reply: Reply) -> None:
        self.data = data
        self._expected = expected
        self._reply = reply
        self._lock = threading.Lock()
        if expected == 0:
            reply.set(data)

    def add(self, campaign_no: int, rows: DirtyRows | None, stats_json: str,
            image: tuple[LedgerImage | None, int] | None = None) -> None:
        with self._lock:
            if rows is not None:
                self.data.rows.append(rows)
            self.data.campaigns.append((campaign_no, stats_json))
            if image is not None:  # recovery image (store/image.py)
                self.data.images.append((campaign_no, *image))
            self._expected -= 1
            done = self._expected == 0
        if done:
            self._reply.set(self.data)


class IngestActor(pykka.ThreadingActor):
    def __init__(
        self,
        index: MessageIndex,
        campaigns: dict[int, CampaignInfo],
        orphans: OrphanShelf,
        factory: CampaignFactory,
        metrics: Metrics,
        passivate_after: float,
        start_seq: int = 0,
        attributor: Attributor | None = None,
        suppressions: SuppressionList | None = None,
        lookup: NumberLookup | None = None,
        lookup_now: NumberRowsNow | None = None,
    ) -> None:
        super().__init__()
        self.index = index
        # `is None`, not `or`: an Attributor with no live events is falsy (it has a
        # length), and the runtime's (with the configured reply window) was replaced
        self.attributor = attributor if attributor is not None else Attributor(
            72 * 3600.0, index.get, lambda no: getattr(campaigns.get(no), "workspace_id", None))
        self.suppressions = suppressions if suppressions is not None else SuppressionList()
        self.lookup = lookup
        self.lookup_now = lookup_now
        self.campaigns = campaigns
        self.orphans = orphans
        self.factory = factory
        self.metrics = metrics
        self.passivate_after = passivate_after
        self.active: dict[int, pykka.ActorRef[Any]] = {}
        self.last_activity: dict[int, float] = {}
        self.seq = start_seq  # highest journal seq routed
        self._imaged_entries = -1  # the index's size at its last recovery image
        self._checkpoint_started: dict[int, float] = {}
        self._answers: AnswerBox | None = None  # made in on_start (needs actor_ref)

    # --- plumbing ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        try:
            return self._handle(message)
        except Exception as exc:  # an exception in a tell would kill the router
            log.exception("ingest.message_failed", message=type(message).__name__)
            reply = getattr(message, "reply", None)
            if isinstance(reply, Reply):
                reply.fail(exc)
            return None

    def on_start(self) -> None:
        self._answers = AnswerBox(self.actor_ref)
        self._carry_out()  # events restored from the store look their numbers up again

    def on_stop(self) -> None:
        refs = list(self.active.values())
        self.active.clear()
        for ref in refs:
            try:
                ref.stop(block=True, timeout=5)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        self.metrics.active_campaigns.set(0)
        close = getattr(self.lookup_now, "close", None)
        if close is not None:
            close()

    def _campaign(self, no: int, load: bool = True) -> pykka.ActorRef[Any]:
        self.last_activity[no] = time.monotonic()
        ref = self.active.get(no)
        if ref is None:
            info = self.campaigns.get(no)
            if info is None:
                raise UnknownCampaign(no)
            ref = self.factory(info, load)
            self.active[no] = ref
            self.metrics.active_campaigns.set(len(self.active))
        return ref

    # --- messages ---------------------------------------------------------------------

    def _handle(self, message: Any) -> Any:
        if self._answers is not None and self._answers.answers:
            try:
                self._take_answers()
            except Exception:  # the message itself is still handled
                log.exception("ingest.answers_failed")
        if isinstance(message, ApplyEvents):
            self._route(message.groups)
            self.seq = max(self.seq, message.seq)
        elif isinstance(message, RegisterMessages):
            self._register(message)
        elif isinstance(message, SkipRows | PublishStatistics):  # in order with its others
            self._campaign(message.campaign_no).tell(message)
        elif isinstance(message, CampaignCreated):
            self.campaigns[message.info.no] = message.info
            self._campaign(message.info.no, load=False)
        elif isinstance(message, (GetStatistics, GetTimeline)):
            if message.campaign_no not in self.campaigns:
                message.reply.fail(UnknownCampaign(message.campaign_no))
            else:
                self._campaign(message.campaign_no).tell(message)
        elif isinstance(message, Checkpoint):
            self._checkpoint(message.reply)
        elif isinstance(message, CheckpointDone):
            self._passivate(message.seq)
        elif isinstance(message, NumberRows):
            self.attributor.number_rows(message.serial, message.keys, list(message.rows))
            self._carry_out()
        elif isinstance(message, AnswersWaiting):
            pass  # taken above
        elif isinstance(message, RowFactsAnswer):
            self.attributor.row_facts(message.serial, message.campaign_no,
                                      list(message.facts))
            self._carry_out()
        elif isinstance(message, GetSuppressions):
            message.reply.set((self.suppressions.count(message.workspace_id),
                               self.suppressions.page(message.workspace_id, message.after,
                                                      message.limit)))
        else:
            log.warning("ingest.unknown_message", message=type(message).__name__)
        return None

    def _take_answers(self) -> None:
        """The campaign actors' answers waiting in the AnswerBox, merged in the order
        they came (each answer may ask nothing further: credits and counts only)."""
        assert self._answers is not None
        answers, row_facts = self._answers.answers, self.attributor.row_facts
        while answers:
            answer = answers.popleft()
            row_facts(answer.serial, answer.campaign_no, list(answer.facts))
        self._carry_out()

    def _route(self, groups: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
        """One `CampaignEvents` per campaign and source for the whole journal batch, not
        per request: a campaign actor's work per message (its statistics, the publish
        to the page and the sender) was most of its cost for single-status webhooks,
        where a batch holds tens of one-event requests (docs/BENCHMARKS.md)."""
        index = self.index
        attributor = self.attributor
        watched = attributor.watched  # rows a live reply may be credited to (few, or none)
        by_source: dict[str, tuple[dict[int, list[tuple[int, StatusEvent]]],
                                   dict[int, dict[int, int]]]] = {}
        for source, events in groups:
            if source not in by_source:
                by_source[source] = (defaultdict(list), {})
            # campaign -> its events; campaign -> {position: attempt > 1}
            per_campaign, later = by_source[source]
            orphaned = 0
            inbound: list[InboundEvent] = []
            for event in events:
                if event.__class__ is InboundEvent:
                    inbound.append(event)
                    continue
                hit = index.get(event.message_id)
                if hit is None:
                    self.orphans.keep(source, event)
                    orphaned += 1
                else:
                    items = per_campaign[hit[0]]
                    if hit[2] != 1:
                        later.setdefault(hit[0], {})[len(items)] = hit[2]
                    items.append((hit[1], event))
                    if watched and pack(hit[0], hit[1]) in watched:
                        attributor.status(hit[0], hit[1], event.level, event.failed,
                                          event.at, hit[2])
            if orphaned:
                self.metrics.events.labels(source, "orphaned").inc(orphaned)
                self.metrics.orphans_pending.set(len(self.orphans))
            if inbound:
                self._inbound(source, inbound)
        for source, (per_campaign, later) in by_source.items():
            for no, items in per_campaign.items():
                self._campaign(no).tell(CampaignEvents(source, tuple(items), later.get(no)))
        self._carry_out()

    # --- engagement (SPEC 6) ------------------------------------------------------------

    def _inbound(self, source: str, events: list[InboundEvent]) -> None:
        attributed: list[InboundEvent] = []
        for event in events:
            if event.via == MANUAL:  # the suppression-list API: no message to credit
                if event.number:  # no workspace: another node's fact withdrawn there
                    workspaces = () if event.workspace_id is None else (event.workspace_id,)
                    self.suppressions.put(event.inbound_id, event.number, workspaces,
                                          event.at, event.kind, event.reason, source)
                continue
            attributed.append(event)
        self.attributor.inbound_batch(source, attributed, time.time())
        self.metrics.inbound_live.set(len(self.attributor))

    def _carry_out(self) -> None:
        """Do what the attributor decided: look numbers up, ask campaign actors, move
        credits, update the suppression list, count. A lookup is answered here when
        `lookup_now` can read the store (its answer's questions go out in the same
        pass), else on the loop (`NumberRows` comes back)."""
        credits: dict[int, list[tuple[int, str, Any]]] = defaultdict(list)
        attributor = self.attributor
        effects = attributor.take_effects()
        while effects:
            answered = False
            for effect in effects:
                if effect.__class__ is Credit:  # one per reply: tested first
                    # (row, inbound_id, touch): the tuple's tail, sliced at C speed
                    credits[effect[0]].append(effect[1:])
                elif isinstance(effect, Ask):
                    if effect.campaign_no in self.campaigns:
                        self._campaign(effect.campaign_no).tell(
                            RowFacts(effect.serial, effect.rows,
                                     self._answers or self.actor_ref))
                elif isinstance(effect, Lookup):
                    answered = self._look_up(effect) or answered
                elif isinstance(effect, Suppress):
                    self.suppressions.put(effect.fact_id, effect.number, effect.workspaces,
                                          effect.at, effect.kind, effect.reason,
                                          effect.source)
            effects = attributor.take_effects() if answered else None
        for (source, outcome), events in attributor.take_outcomes().items():
            self.metrics.inbound.labels(source, outcome).inc(events)
        for no, items in credits.items():
            if no in self.campaigns:
                self._campaign(no).tell(CampaignEngagement(tuple(items)))

    def _look_up(self, lookup: Lookup) -> bool:
        """Answer a lookup on this thread if the store can be read here (True), else
        hand it to the loop."""
        if self.lookup_now is not None:
            try:
                rows = self.lookup_now(lookup.keys)
            except Exception as exc:  # storage failing: the loop's path retries
                log.warning("ingest.number_lookup_failed", error=str(exc))
            else:
                self.attributor.number_rows(lookup.serial, lookup.keys, rows)
                return True
        if self.lookup is not None:
            self.lookup(lookup, self.actor_ref)
        return False

    def _register(self, message: RegisterMessages) -> None:
        no = message.campaign_no
        ref = self._campaign(no)
        ref.tell(message)
        claimed: dict[str, list[tuple[int, StatusEvent]]] = defaultdict(list)
        attributor = self.attributor
        later: dict[str, dict[int, int]] = {}  # source -> {position: attempt > 1}
        for m in message.messages:
            if m.message_id is not None:
                self.index.add(m.message_id, no, m.row, attempt=m.attempt)
            if attributor.numbers or attributor.quotes:  # live replies wait for facts
                attributor.registered(no, m.row, m.message_id, m.number_key, m.level,
                                      m.failed, m.registered_at, m.attempt)
            if m.message_id is None:
                continue
            for source, event in self.orphans.claim(m.message_id):
                if m.attempt != 1:
                    later.setdefault(source, {})[len(claimed[source])] = m.attempt
                claimed[source].append((m.row, event))
                if attributor.watched and attributor.is_watched(no, m.row):
                    attributor.status(no, m.row, event.level, event.failed, event.at,
                                      m.attempt)
        for source, items in claimed.items():
            ref.tell(CampaignEvents(source, tuple(items), later.get(source)))
        self._carry_out()
        if claimed:
            self.metrics.orphans_pending.set(len(self.orphans))
            log.info("ingest.orphans_claimed", campaign_no=no,
                     events=sum(len(v) for v in claimed.values()))

    def _checkpoint(self, reply: Reply) -> None:
        expired = self.orphans.expire()
        if expired:
            self.metrics.orphans_expired.inc(expired)
            self.metrics.orphans_pending.set(len(self.orphans))
            log.warning("ingest.orphans_expired", events=expired)
        unanswered = self.attributor.expire(time.time())
        if unanswered:
            log.info("ingest.inbound_window_ended", uncredited=unanswered)
        self.metrics.inbound_live.set(len(self.attributor))
        data = CheckpointData(seq=self.seq, orphan_ops=self.orphans.take_delta(),
                              orphans_expired=expired,
                              inbound_ops=self.attributor.take_ops(),
                              suppression_ops=self.suppressions.take_ops(),
                              index_image=self._index_image())
        self._checkpoint_started[self.seq] = time.monotonic()
        collector = CheckpointCollector(data, len(self.active), reply)
        for ref in self.active.values():
            ref.tell(CollectDirty(self.seq, collector))

    def _index_image(self) -> bytes | None:
        """The id index as bytes for the checkpoint's recovery image (store/image.py), or
        None when it has not changed since the last one (it only grows)."""
        if len(self.index) == self._imaged_entries:
            return None
        self._imaged_entries = len(self.index)
        return index_to_bytes(self.index)

    def _passivate(self, seq: int) -> None:
        started = self._checkpoint_started.pop(seq, None)
        for old in [s for s in self._checkpoint_started if s < seq]:
            del self._checkpoint_started[old]
        if started is None:
            return
        now = time.monotonic()
        for no in list(self.active):
            last = self.last_activity.get(no, 0.0)
            if last < started and now - last > self.passivate_after:
                ref = self.active.pop(no)
                self.last_activity.pop(no, None)
                ref.stop(block=False)
                log.debug("ingest.passivated", campaign_no=no)
        self.metrics.active_campaigns.set(len(self.active))
