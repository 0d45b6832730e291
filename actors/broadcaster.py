"""The broadcaster: turns campaign changes into live-push events, coalesced per campaign.

A Pykka actor subscribed to the `EventBus`. Campaign actors tell it every change; it
decides WHEN to push (SPEC 3.3: a campaign's first change at once, then at most one
push per `pusher.coalesce_ms` with the latest statistics and the latest state of every
row changed meanwhile; the final state always goes out) and WHAT (the seed-compatible
payloads). It never touches a socket: it hands finished `Push` objects to the event loop
with `loop.call_soon_threadsafe`, where web/pusher.py writes them to subscribers. The
coalescing timer is a `call_later` on the loop that tells the actor `Flush`, so no
thread sleeps and nothing polls.

Pacing: a push costs the loop one socket write per subscriber (2,000 subscribers: tens
of milliseconds, during which no webhook is answered). The loop measures what its last
fan-outs took (`Pace`) and a campaign's window lasts at least PACE_FACTOR times that,
so live pushes take at most about 1 / PACE_FACTOR of the loop however many watch; with
few subscribers the window is `pusher.coalesce_ms` as configured. The final state still
goes out when the (longer) window ends, or sooner once the campaign has gone quiet: a
paced window that holds a change ends when no change came for `coalesce_ms` and it has
lasted QUIET_FLOOR times what a fan-out costs (`window_due`), so the state after the last
ACK of a flood waits about one fan-out, not a whole paced window (docs/BENCHMARKS.md,
fan-out).

The state sent on subscribe travels through this actor too (`Snapshot`), so it is
ordered with the live pushes: a client never receives an older state after a newer one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
import structlog

from actors.bus import EventBus
from actors.messages import CampaignAlert, CampaignChanged, CampaignStatusChanged
from core.aio import Reply
from core.metrics import Metrics
from domain.engagement import row_fields
from domain.failures import Failure
from domain.ledger import Ledger
from domain.records import CampaignInfo
from domain.skips import row_status
from domain.status import CLASS_NAMES, LEVEL_NAMES
from domain.timefmt import iso_time

log = structlog.get_logger(__name__)

STATS_EVENT = "campaign.statistics.updated"
STATUS_EVENT = "campaign.status.changed"
ROWS_EVENT = "campaign.messages.updated"
ALERT_EVENT = "campaign.alert"
TS_NAMES = ("pending", "sent", "delivered", "read", "played", "failed")
# actors/campaign.py publishes at most the last 500 changed rows of one batch: a batch
# that long may be cut, so the table is told to resync.
PUBLISHED_ROWS_CUT = 500


# What the campaign actor's ledger computes (status.py's counters, latencies, updated_at);
# other statistics fields (the sender's progress) come from their own source.
LEDGER_FIELDS = frozenset(Ledger().statistics()) | {"updated_at"}


def campaign_channels(info: CampaignInfo) -> tuple[str, ...]:
    return (f"campaign.{info.uuid}", f"private-campaign.{info.uuid}")


def all_channels(info: CampaignInfo) -> tuple[str, ...]:
    ws = info.workspace_id
    return (*campaign_channels(info), f"workspace.{ws}", f"private-workspace.{ws}")


@dataclass(slots=True)
class Push:
    """One event for some channels, built once and shared by every subscriber.

    `subject` (the campaign uuid) completes the outbox key (channel, event, subject), so
    a workspace channel keeps the latest state of each of its campaigns. `rows` is set
    for row batches, which an outbox merges instead of replacing. `target` (a socket
    id) restricts the push to one connection: the state sent on subscribe.
    """

    channels: tuple[str, ...]
    event: str
    subject: str
    payload: dict[str, Any]
    rows: dict[int, dict[str, Any]] | None = None
    target: str | None = None


Deliver = Callable[[list[Push]], None]


# --- the actor's inbox (besides CampaignChanged / CampaignStatusChanged) ---------------


@dataclass(slots=True, frozen=True)
class Flush:
    """The coalescing window of a campaign ended (sent by a loop timer).

    `window` names the window the timer was armed for; a late timer for a window that
    has already ended by its age is ignored. None: whatever window is open."""

    campaign_no: int
    window: int | None = None


@dataclass(slots=True, frozen=True)
class Snapshot:
    """Send this state to one freshly subscribed connection, in order with live pushes."""

    target: str
    channel: str
    items: tuple[tuple[CampaignInfo, dict[str, Any]], ...]


@dataclass(slots=True, frozen=True)
class Refresh:
    """Push this campaign's current state to every subscriber, coalesced like a change:
    another node of the cluster asked for it (web/cluster_push.py). `resync` also tells
    live tables to reload their rows (after an outage they may have missed some)."""

    info: CampaignInfo
    statistics: dict[str, Any]
    resync: bool = False


@dataclass(slots=True)
class SnapshotReply(Reply):
    """A `GetStatistics` reply that also forwards the answer to the broadcaster.

    The campaign actor publishes its changes and answers in one thread, so forwarding
    from there keeps the snapshot behind every change it already published.
    """

    forward: Callable[[Any], None] | None = None

    def set(self, value: Any) -> None:
        if self.forward is not None:
            try:
                self.forward(value)
            except pykka.ActorDeadError:
                pass
        Reply.set(self, value)


# --- payloads ------------------------------------------------------------------------


def statistics_payload(info: CampaignInfo, stats: dict[str, Any]) -> dict[str, Any]:
    """The seed system's CampaignStatisticsUpdated::broadcastWith(), field for field."""
    return {"campaign_id": info.no, "campaign_uuid": info.uuid, "statistics": stats,
            "timestamp": iso_time(time.time())}


def row_payload(state: tuple[Any, ...]) -> dict[str, Any]:
    """A CampaignChanged row (row, level, failed, class, reason, ts pending..failed,
    failure, engagement, skip); the last three may be missing (None)."""
    row, level, failed, cls, reason = state[:5]
    end = 5 + len(TS_NAMES)
    stamps = state[5:end]
    failure, engagement, skip = (*state[end:end + 3], None, None, None)[:3]
    return {
        "row": row,
        "status": row_status(CLASS_NAMES[cls], skip.reason if skip else None),
        "level": LEVEL_NAMES[level],
        "failed": bool(failed),
        "failure_reason": reason,
        "failure": failure_payload(failure),
        "timestamps": dict(zip(TS_NAMES, map(iso_time, stamps), strict=True)),
        **row_fields(engagement),  # replied_at, reply_count, button, opted_out_at (SPEC 6.3)
        "skip": skip.as_dict() if skip else None,  # why the sender skipped it (SPEC 9)
    }


def failure_payload(failure: Failure | None) -> dict[str, Any] | None:
    """The rows API's `failure` object, as the live table gets it."""
    if failure is None:
        return None
    return failure.as_dict()


def rows_payload(info: CampaignInfo, rows: dict[int, dict[str, Any]], resync: bool
                 ) -> dict[str, Any]:
    return {"campaign_id": info.no, "campaign_uuid": info.uuid,
            "rows": [rows[r] for r in sorted(rows)], "resync": resync,
            "timestamp": iso_time(time.time())}


_WINDOW_NUMBERS = itertools.count(1)


# A window lasts at least this many times what the loop's recent fan-outs took.
PACE_FACTOR = 3.0
PACE_CAP = 2.0  # seconds: a stalled loop must not hold the page's numbers back for long
# A paced window may end early, once quiet, after this many times a fan-out's cost. Not
# less than 2: while the loop writes a fan-out it answers no webhook, so the campaign
# looks quiet then; a window has seen the loop free for one fan-out's time before its
# quiet can mean the flood is over (else the next push would follow at once, and live
# pushes could take the whole loop).
QUIET_FLOOR = 2.0


def window_due(age: float, quiet: float, holds: bool, interval: float, pace: float,
               length: float) -> bool:
    """Whether a campaign's window ends now: it has lasted `length` (its paced length),
    or it holds a change (`holds`), has lasted QUIET_FLOOR fan-outs (`pace` seconds
    each) and no change came for `interval` (`quiet` seconds since the last one)."""
    if age >= length:
        return True
    return holds and quiet >= interval and age >= QUIET_FLOOR * pace


class Pace:
    """What the loop's recent fan-outs took (seconds, smoothed), written by the loop
    (web/pusher.py) and read by the broadcaster's thread: one float, safe under the GIL."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0

    def delivered(self, seconds: float) -> None:
        self.seconds = 0.5 * self.seconds + 0.5 * seconds


@dataclass(slots=True)
class _Window:
    """A campaign inside its coalescing window: what waits to be pushed."""

    info: CampaignInfo
    stats: dict[str, Any] | None = None
    rows: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # row -> latest state
    resync: bool = False
    opened: float = field(default_factory=time.monotonic)
    changed: float = 0.0  # when the last change came in (monotonic), 0: none yet
    number: int = field(default_factory=lambda: next(_WINDOW_NUMBERS))


class BroadcasterActor(pykka.ThreadingActor):
    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver, metrics: Metrics,
                 coalesce_ms: int, max_rows: int, pace: Pace | None = None,
                 pace_cap: float = PACE_CAP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock  # monotonic seconds; a test gives its own
        self.loop = loop
        self.deliver = deliver
        self.metrics = metrics
        self.interval = coalesce_ms / 1000.0
        self.pace = pace or Pace()
        self.pace_cap = pace_cap
        self.max_rows = max_rows
        self._coalesced = metrics.ws_frames.labels("coalesced")
        # A campaign is in `windows` from a push until an interval passes without change.
        self.windows: dict[int, _Window] = {}
        # The newest statistics seen per campaign (the campaign actors' own dicts, shared
        # with the StatsBoard: no copies).
        self.latest: dict[int, dict[str, Any]] = {}

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, CampaignChanged):
                self._changed(message)
            elif isinstance(message, Flush):
                self._window_ended(message.campaign_no, message.window)
            elif isinstance(message, CampaignStatusChanged):
                self._status_changed(message)
            elif isinstance(message, Snapshot):
                self._snapshot(message)
            elif isinstance(message, CampaignAlert):
                self._alert(message)
            elif isinstance(message, Refresh):
                self._refresh(message)
        except Exception:  # an exception in a tell would kill the actor (SPEC 1.1)
            log.exception("broadcaster.message_failed", message=type(message).__name__)
        return None

    # --- coalescing ---------------------------------------------------------------------

    def _changed(self, message: CampaignChanged) -> None:
        info = message.info
        self.latest[info.no] = message.statistics
        window = self.windows.get(info.no)
        if window is None or self.interval <= 0:
            # First change (or no coalescing): push at once and open a window.
            pending = _Window(info, message.statistics)
            self._add_rows(pending, message.rows)
            self._send([pending])
            if self.interval > 0:
                self.windows[info.no] = self._open(info)
                self._arm(info.no)
            return
        if window.stats is not None:
            self._coalesced.inc()
        window.info = info
        window.stats = message.statistics
        self._add_rows(window, message.rows)
        window.changed = now = self.clock()
        if now - window.opened >= self.window_seconds():
            # The window is over but its timer has not come yet (a busy loop): end it
            # now, so a change after a quiet interval is never held back by the timer.
            self._window_ended(info.no)

    def _open(self, info: CampaignInfo) -> _Window:
        """A window opened now, after a push."""
        return _Window(info, opened=self.clock())

    def window_seconds(self) -> float:
        """The configured interval, or longer while fan-outs cost the loop more (Pace)."""
        return max(self.interval, min(self.pace_cap, PACE_FACTOR * self.pace.seconds))

    def _add_rows(self, window: _Window, rows: tuple[tuple[Any, ...], ...]) -> None:
        if window.resync:
            return
        if len(rows) >= PUBLISHED_ROWS_CUT:
            window.rows.clear()
            window.resync = True
            return
        for state in rows:  # the payload is built at push time: a row may change again
            window.rows[state[0]] = state
        if len(window.rows) > self.max_rows:
            window.rows.clear()
            window.resync = True

    def _window_ended(self, campaign_no: int, number: int | None = None) -> None:
        window = self.windows.get(campaign_no)
        if window is None or (number is not None and number != window.number):
            return
        holds = window.stats is not None or bool(window.rows) or window.resync
        if number is not None:  # the loop's timer: a paced window ends early only if quiet
            now = self.clock()
            length = self.window_seconds()
            age, quiet = now - window.opened, now - window.changed
            if not window_due(age, quiet, holds, self.interval, self.pace.seconds, length):
                # look again when it could be due: quiet for an interval after the last
                # change and past the floor (nothing held yet: an interval from now),
                # never later than the window's end
                at = now + self.interval
                if holds:
                    at = max(window.changed + self.interval,
                             window.opened + QUIET_FLOOR * self.pace.seconds)
                # (a millisecond at least: a timer a hair early must not spin)
                self._arm(campaign_no, max(0.001, min(window.opened + length, at) - now))
                return
        if not holds:
            del self.windows[campaign_no]  # a quiet interval: the next change goes at once
            return
        self._send([window])
        self.windows[campaign_no] = self._open(window.info)
        self._arm(campaign_no)

    def _status_changed(self, message: CampaignStatusChanged) -> None:
        info = message.info
        window = self.windows.get(info.no)
        pushes = []
        if window is not None and (window.stats is not None or window.rows or window.resync):
            pushes = self._pushes([window])  # what waited goes first: order is kept
            self.windows[info.no] = self._open(info)
        # The sender read its statistics on its own path: counters we pushed already may
        # be newer, and a status change must not take the numbers back. Ours win for the
        # ledger's own figures (any change still queued behind this message is newer
        # still and follows it); the sender's progress fields in the message are newer.
        stats = self._not_older(info.no, message.statistics)
        payload = {"campaign_id": info.no, "campaign_uuid": info.uuid,
                   "status": message.status, "previous": message.previous,
                   "statistics": stats, "timestamp": iso_time(time.time())}
        pushes.append(Push(all_channels(info), STATUS_EVENT, info.uuid, payload))
        self._hand_over(pushes)

    def _alert(self, message: CampaignAlert) -> None:
        """An alert fired or cleared (actors/alerts.py): pushed at once, never coalesced
        with another rule's (the outbox key names the rule)."""
        info = message.info
        payload = {"campaign_id": info.no, "campaign_uuid": info.uuid, "alert": message.alert,
                   "timestamp": iso_time(time.time())}
        self._hand_over([Push(all_channels(info), ALERT_EVENT,
                              f"{info.uuid}:{message.alert.get('rule')}", payload)])

    def _snapshot(self, message: Snapshot) -> None:
        # A workspace state is read from the StatsBoard on the loop, and a change can be
        # published (and pushed to this subscriber) between that read and this message:
        # the ledger's figures we hold are then newer, and a state must never take the
        # numbers back (found by tests/test_live_order.py). Ours are never older than
        # anything pushed, and every later push is newer still.
        pushes = [Push((message.channel,), STATS_EVENT, info.uuid,
                       statistics_payload(info, self._not_older(info.no, stats)),
                       target=message.target)
                  for info, stats in message.items]
        if pushes:
            self._hand_over(pushes)

    def _refresh(self, message: Refresh) -> None:
        info = message.info
        stats = self._not_older(info.no, message.statistics)  # never take numbers back
        self.latest[info.no] = stats
        window = self.windows.get(info.no)
        if window is None or self.interval <= 0:
            self._send([_Window(info, stats, resync=message.resync)])
            if self.interval > 0:
                self.windows[info.no] = self._open(info)
                self._arm(info.no)
            return
        window.info, window.stats = info, stats  # goes out when the window ends
        window.changed = self.clock()
        if message.resync:
            window.rows.clear()
            window.resync = True

    def _not_older(self, campaign_no: int, stats: dict[str, Any]) -> dict[str, Any]:
        latest = self.latest.get(campaign_no)
        if not latest:
            return stats
        return {**stats, **{k: v for k, v in latest.items() if k in LEDGER_FIELDS}}

    # --- handing over to the loop -----------------------------------------------------

    def _pushes(self, windows: list[_Window]) -> list[Push]:
        out = []
        for w in windows:
            if w.stats is not None:
                out.append(Push(all_channels(w.info), STATS_EVENT, w.info.uuid,
                                statistics_payload(w.info, w.stats)))
            if w.rows or w.resync:
                rows = {row: row_payload(state) for row, state in w.rows.items()}
                out.append(Push(campaign_channels(w.info), ROWS_EVENT, w.info.uuid,
                                rows_payload(w.info, rows, w.resync), rows=rows))
        return out

    def _send(self, windows: list[_Window]) -> None:
        pushes = self._pushes(windows)
        if pushes:
            self._hand_over(pushes)

    def _hand_over(self, pushes: list[Push]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.deliver, pushes)
        except RuntimeError:  # the loop is closed: the daemon is stopping
            pass

    def _arm(self, campaign_no: int, delay: float | None = None) -> None:
        """Look at this campaign's window after `delay` (its first look: when it could end
        quiet, or its length when it is not paced), by a timer on the loop."""
        ref = self.actor_ref
        number = self.windows[campaign_no].number
        if delay is None:
            length = self.window_seconds()
            delay = length
            if length > self.interval:  # paced: it may end quiet after the floor
                delay = min(length, max(self.interval, QUIET_FLOOR * self.pace.seconds))

        def fire() -> None:
            try:
                ref.tell(Flush(campaign_no, number))
            except pykka.ActorDeadError:
                pass

        try:
            self.loop.call_soon_threadsafe(self.loop.call_later, max(0.0, delay), fire)
        except RuntimeError:
            pass


class Broadcaster:
    """The runtime extension that starts the actor, subscribes it to the bus, stops it."""

    def __init__(self, deliver: Deliver, bus: EventBus, metrics: Metrics,
                 coalesce_ms: int, max_rows: int, pace: Pace | None = None) -> None:
        self.deliver = deliver
        self.bus = bus
        self.metrics = metrics
        self.coalesce_ms = coalesce_ms
        self.max_rows = max_rows
        self.pace = pace or Pace()
        self.ref: pykka.ActorRef[Any] | None = None

    async def start(self) -> None:
        self.ref = BroadcasterActor.start(
            asyncio.get_running_loop(), self.deliver, self.metrics, self.coalesce_ms,
            self.max_rows, self.pace)
        self.bus.subscribe(self.ref)

    async def stop(self) -> None:
        ref, self.ref = self.ref, None
        if ref is None:
            return
        self.bus.unsubscribe(ref)
        await asyncio.get_running_loop().run_in_executor(None, _stop, ref)

    def tell(self, message: Any) -> bool:
        """Tell the actor (from any thread); False when it is not running."""
        ref = self.ref
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True


def _stop(ref: pykka.ActorRef[Any]) -> None:
    try:
        ref.stop(block=True, timeout=5)
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
