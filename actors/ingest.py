"""The ingest actor: resolves message ids to campaigns and routes everything to them.

Every message for a campaign actor passes through here, so a campaign's inbox sees
events, registrations and questions in the order the loop sent them (a read after a
webhook's 2xx sees that webhook). It owns the id index, the orphan shelf and the map of
active campaign actors; it starts a campaign actor on demand and passivates idle ones
after a checkpoint has stored their state.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from actors.messages import (
    ApplyEvents,
    CampaignCreated,
    CampaignEvents,
    Checkpoint,
    CheckpointDone,
    CollectDirty,
    GetStatistics,
    GetTimeline,
    RegisterMessages,
)
from core.aio import Reply
from core.metrics import Metrics
from domain.events import StatusEvent
from domain.index import MessageIndex
from domain.ledger import DirtyRows
from domain.orphans import OrphanShelf
from domain.records import CampaignInfo, CheckpointData

log = structlog.get_logger(__name__)

# (info, load_from_store) -> a started campaign actor
CampaignFactory = Callable[[CampaignInfo, bool], "pykka.ActorRef[Any]"]


class UnknownCampaign(LookupError):
    pass


class CheckpointCollector:
    """Gathers every campaign actor's dirty rows for one checkpoint (thread-safe)."""

    def __init__(self, data: CheckpointData, expected: int, reply: Reply) -> None:
        self.data = data
        self._expected = expected
        self._reply = reply
        self._lock = threading.Lock()
        if expected == 0:
            reply.set(data)

    def add(self, campaign_no: int, rows: DirtyRows | None, stats_json: str) -> None:
        with self._lock:
            if rows is not None:
                self.data.rows.append(rows)
            self.data.campaigns.append((campaign_no, stats_json))
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
    ) -> None:
        super().__init__()
        self.index = index
        self.campaigns = campaigns
        self.orphans = orphans
        self.factory = factory
        self.metrics = metrics
        self.passivate_after = passivate_after
        self.active: dict[int, pykka.ActorRef[Any]] = {}
        self.last_activity: dict[int, float] = {}
        self.seq = start_seq  # highest journal seq routed
        self._checkpoint_started: dict[int, float] = {}

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

    def on_stop(self) -> None:
        refs = list(self.active.values())
        self.active.clear()
        for ref in refs:
            try:
                ref.stop(block=True, timeout=5)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        self.metrics.active_campaigns.set(0)

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
        if isinstance(message, ApplyEvents):
            self._route(message.groups)
            self.seq = max(self.seq, message.seq)
        elif isinstance(message, RegisterMessages):
            self._register(message)
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
        else:
            log.warning("ingest.unknown_message", message=type(message).__name__)
        return None

    def _route(self, groups: tuple[tuple[str, tuple[StatusEvent, ...]], ...]) -> None:
        index = self.index
        for source, events in groups:
            per_campaign: dict[int, list[tuple[int, StatusEvent]]] = defaultdict(list)
            later: dict[int, dict[int, int]] = {}  # campaign -> {position: attempt > 1}
            orphaned = 0
            for event in events:
                hit = index.get(event.message_id)
                if hit is None:
                    self.orphans.keep(source, event)
                    orphaned += 1
                else:
                    items = per_campaign[hit[0]]
                    if hit[2] != 1:
                        later.setdefault(hit[0], {})[len(items)] = hit[2]
                    items.append((hit[1], event))
            for no, items in per_campaign.items():
                self._campaign(no).tell(CampaignEvents(source, tuple(items), later.get(no)))
            if orphaned:
                self.metrics.events.labels(source, "orphaned").inc(orphaned)
                self.metrics.orphans_pending.set(len(self.orphans))

    def _register(self, message: RegisterMessages) -> None:
        no = message.campaign_no
        ref = self._campaign(no)
        ref.tell(message)
        claimed: dict[str, list[tuple[int, StatusEvent]]] = defaultdict(list)
        later: dict[str, dict[int, int]] = {}  # source -> {position: attempt > 1}
        for m in message.messages:
            if m.message_id is None:
                continue
            self.index.add(m.message_id, no, m.row, attempt=m.attempt)
            for source, event in self.orphans.claim(m.message_id):
                if m.attempt != 1:
                    later.setdefault(source, {})[len(claimed[source])] = m.attempt
                claimed[source].append((m.row, event))
        for source, items in claimed.items():
            ref.tell(CampaignEvents(source, tuple(items), later.get(source)))
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
        data = CheckpointData(seq=self.seq, orphan_ops=self.orphans.take_delta(),
                              orphans_expired=expired)
        self._checkpoint_started[self.seq] = time.monotonic()
        collector = CheckpointCollector(data, len(self.active), reply)
        for ref in self.active.values():
            ref.tell(CollectDirty(self.seq, collector))

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
