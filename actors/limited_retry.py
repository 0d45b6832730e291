"""Limited by Meta, retried later (SPEC 7.1), when `sender.retry_limited_by_meta` is on.

Meta reports its per-person marketing cap (131049, Twilio 63049) in a status webhook
after it accepted the send. A message campaignd sent that failed so is queued again
once `sender.marketing_cap_retry_after` has passed since the failure, once (a re-sent
row is `resent` and is not picked up again), and its campaign sends it (a completed one
goes back to processing; a paused or cancelled one keeps it for an operator).

A listener actor notices a campaign's Limited by Meta count growing (statistics changes,
no polling) and the loop sets one timer per campaign for the earliest failure's due
time; the timer reads the due rows from SQLite, so the wait survives restarts (the
start-up arms the timers of every campaign with rows waiting).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from actors.bus import EventBus
from actors.messages import CampaignChanged
from actors.sender_service import SendingService
from core.config import Config
from domain.records import CampaignInfo

log = structlog.get_logger(__name__)
CATEGORY = "limited_by_meta"


def limited_count(stats: dict[str, Any]) -> int:
    return next((e["count"] for e in stats.get("failures") or ()
                 if e.get("category") == CATEGORY), 0)


class LimitedWatch(pykka.ThreadingActor):
    """Tells the loop when a campaign's Limited by Meta count grows."""

    def __init__(self, grew: Callable[[CampaignInfo], None]) -> None:
        super().__init__()
        self.grew = grew
        self.seen: dict[int, int] = {}

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, CampaignChanged):
                count = limited_count(message.statistics)
                if count > self.seen.get(message.info.no, 0):
                    self.grew(message.info)
                self.seen[message.info.no] = count
        except Exception:  # an exception in a tell would kill the actor (SPEC 1.1)
            log.exception("limited_retry.message_failed")
        return None


class LimitedRetry:
    """The runtime extension (started after the sender)."""

    def __init__(self, config: Config, bus: EventBus, sending: SendingService,
                 checkpoint: Callable[[], Any]) -> None:
        self.enabled = bool(config["sender.retry_limited_by_meta"])
        self.after = float(config["sender.marketing_cap_retry_after"])
        self.bus = bus
        self.sending = sending
        self.checkpoint = checkpoint
        self.clock: Callable[[], float] = time.time
        self.ref: pykka.ActorRef[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._uuids: dict[int, str] = {}

    async def start(self) -> None:
        if not self.enabled:
            return
        self.loop = asyncio.get_running_loop()
        infos = await self.sending.ctx.campaigns.all_infos()
        self._uuids = {no: info.uuid for no, info in infos.items()}
        for no, failed_at in await self.sending.ctx.campaigns.limited_waiting():
            self._arm(no, failed_at + self.after)
        self.ref = LimitedWatch.start(self._grew)
        self.bus.subscribe(self.ref)

    async def stop(self) -> None:
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        ref, self.ref = self.ref, None
        if ref is not None:
            self.bus.unsubscribe(ref)
            await asyncio.get_running_loop().run_in_executor(None, _stop, ref)
        for task in list(self._tasks):
            task.cancel()

    def _grew(self, info: CampaignInfo) -> None:
        """In the watch actor's thread: a new Limited by Meta failure of `info`."""
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._noted, info)
        except RuntimeError:
            pass  # the loop is closed: shutting down

    def _noted(self, info: CampaignInfo) -> None:
        self._uuids[info.no] = info.uuid
        self._arm(info.no, self.clock() + self.after)

    def _arm(self, no: int, due: float) -> None:
        """One timer per campaign, for the earliest due time."""
        assert self.loop is not None
        current = self._timers.get(no)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        handle = self.loop.call_later(max(0.0, due - self.clock()), self._fire, no)
        self._timers[no] = (due, handle)

    def _fire(self, no: int) -> None:
        self._timers.pop(no, None)
        task = asyncio.get_running_loop().create_task(self._retry(no))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, no: int) -> None:
        try:
            await self.checkpoint()  # the failures are in the rows
            queued, earliest = await self.sending.ctx.campaigns.requeue_limited(
                no, self.clock() - self.after)
            if queued:
                uuid = self._uuids.get(no)
                sending = uuid is not None and await self.sending.resume_sending(uuid)
                log.info("sender.limited_retry", campaign_no=no, queued=queued,
                         sending=sending)
            if earliest is not None:
                self._arm(no, earliest + self.after)
        except Exception as exc:  # storage failing: try again in a minute
            log.warning("sender.limited_retry_failed", campaign_no=no, error=str(exc))
            self._arm(no, self.clock() + 60.0)


def _stop(ref: pykka.ActorRef[Any]) -> None:
    try:
        ref.stop(block=True, timeout=5)
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
