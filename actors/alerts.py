"""Alerts (SPEC 7.2): a listener actor on the event bus judges every statistics change.

`AlertActor` hears each `CampaignChanged` (and status change) and runs the rules of
domain/alerts.py on it: no polling. It asks the loop for one timer only, when an alert
is waiting out its hold time with nothing else changing. What fires is handed to the
loop, where `AlertService` announces it everywhere at once: a `campaign.alert` Pusher
event (through the bus and the broadcaster), the log, the Prometheus gauge, the signed
outbound webhook, and, for a rule with `pause = true`, the pause of a campaign campaignd
is sending. The clock is `AlertService.clock`, which tests replace.

What is firing is stored (store/alerts.py) after it is announced and taken back at
start: a restart does not announce again an alert that is still over, and each restored
campaign is judged once more on its current statistics (`Judge`), so one that went under
while the daemon was down clears after its hold time. A hold time that had begun before
the stop is stored too (`AlertService.hold`), so it goes on rather than starting again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from actors.bus import EventBus
from actors.messages import CampaignAlert, CampaignChanged, CampaignStatusChanged
from actors.outbound import post_signed
from actors.sender_service import SendingService
from core.config import Config
from core.metrics import Metrics
from domain.alerts import AlertEngine, AlertRule, Notice, StoredAlert, parse_rules
from domain.records import CampaignInfo
from domain.timefmt import iso_time
from store.alerts import AlertStates
from store.db import StoreUnavailable

log = structlog.get_logger(__name__)


@dataclass(slots=True, frozen=True)
class Recheck:
    """A hold time has ended (a loop timer): judge the campaign's alerts again."""

    info: CampaignInfo


@dataclass(slots=True, frozen=True)
class Judge:
    """A campaign whose alerts were restored at start: judge them on these statistics."""

    info: CampaignInfo
    statistics: dict[str, Any]


class AlertActor(pykka.ThreadingActor):
    def __init__(self, engine: AlertEngine, service: AlertService) -> None:
        super().__init__()
        self.engine = engine
        self.service = service
        # campaign no -> its firing alerts' hold starts, as last handed to the loop
        self._holds: dict[int, dict[str, float | None]] = {}

    def on_receive(self, message: Any) -> Any:
        try:
            now = self.service.clock()
            if isinstance(message, CampaignChanged | CampaignStatusChanged | Judge):
                notices, wake = self.engine.check(message.info.no, message.statistics, now)
                self._hand_over(message.info, notices, wake, message.statistics)
            elif isinstance(message, Recheck):
                notices, wake = self.engine.recheck(message.info.no, now)
                self._hand_over(message.info, notices, wake, None)
        except Exception:  # an exception in a tell would kill the actor (SPEC 1.1)
            log.exception("alerts.message_failed", message=type(message).__name__)
        return None

    def _hand_over(self, info: CampaignInfo, notices: list[Notice], wake: float | None,
                   stats: dict[str, Any] | None) -> None:
        if notices:
            self.service.from_actor(self.service.announce, info, notices, stats)
        holds = self.engine.holds(info.no)
        if holds != self._holds.get(info.no, {}):
            if holds:
                self._holds[info.no] = holds
            else:
                self._holds.pop(info.no, None)
            self.service.from_actor(self.service.hold, info.no, holds)
        if wake is not None:
            self.service.from_actor(self.service.arm, info, wake)


class AlertService:
    """The runtime extension: starts the actor when rules exist, announces on the loop."""

    def __init__(self, config: Config, bus: EventBus, metrics: Metrics,
                 sending: SendingService, states: AlertStates | None = None,
                 infos: Callable[[], Awaitable[dict[int, CampaignInfo]]] | None = None,
                 latest: Callable[[int], dict[str, Any] | None] = lambda no: None) -> None:
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.sending = sending
        self.rules: list[AlertRule] = parse_rules(config["alerts"])[0]
        self.clock: Callable[[], float] = time.time
        self.ref: pykka.ActorRef[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # campaign no -> rule name -> the alert as shown (replaced whole: readable anywhere)
        self.active: dict[int, dict[str, dict[str, Any]]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.states = states
        self._infos = infos
        self._latest = latest  # a campaign's statistics as last published, if any
        # (campaign no, rule name) -> the alert to store (None: to delete), in order
        self._unwritten: dict[tuple[int, str], StoredAlert | None] = {}
        # (campaign no, rule name) -> the alert as stored, while it fires
        self._stored: dict[tuple[int, str], StoredAlert] = {}
        self._writing = False
        for rule in self.rules:
            metrics.alerts_firing.labels(rule.name).set(0)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        stored = await self.states.firing() if self.states is not None else []
        engine = AlertEngine(self.rules)
        infos = await self._infos() if stored and self._infos is not None else {}
        judge: dict[int, Judge] = {}
        for alert, stats in stored:
            info = infos.get(alert.campaign_no)
            if info is None or engine.restore(alert) is None:  # campaign or rule gone
                self._unwritten[(alert.campaign_no, alert.rule)] = None
                continue
            self.active[alert.campaign_no] = {**self.active.get(alert.campaign_no, {}),
                                              alert.rule: alert.alert}
            self._stored[(alert.campaign_no, alert.rule)] = alert
            stats = self._latest(alert.campaign_no) or stats
            if stats:
                judge[info.no] = Judge(info, stats)
        for rule in self.rules:
            self._show_firing(rule.name)
        if self.active:
            log.info("alerts.restored", firing=sum(len(a) for a in self.active.values()))
        self._write_soon()
        if not self.rules:
            return
        self.ref = AlertActor.start(engine, self)
        self.bus.subscribe(self.ref)
        for message in judge.values():
            self.ref.tell(message)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        ref, self.ref = self.ref, None
        if ref is not None:
            self.bus.unsubscribe(ref)
            await asyncio.get_running_loop().run_in_executor(None, _stop, ref)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3)
        for task in list(self._tasks):
            task.cancel()

    def alerts_of(self, campaign_no: int) -> list[dict[str, Any]]:
        """The alerts firing now on a campaign, for the API and the page's banner."""
        return list(self.active.get(campaign_no, {}).values())

    # --- from the actor's thread --------------------------------------------------------

    def from_actor(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: shutting down

    # --- on the loop ------------------------------------------------------------------

    def arm(self, info: CampaignInfo, due: float) -> None:
        """Tell the actor `Recheck` when the hold time ends (one timer per campaign)."""
        assert self.loop is not None
        old = self._timers.pop(info.no, None)
        if old is not None:
            old.cancel()
        ref = self.ref

        def fire() -> None:
            self._timers.pop(info.no, None)
            if ref is not None:
                try:
                    ref.tell(Recheck(info))
                except pykka.ActorDeadError:
                    pass

        self._timers[info.no] = self.loop.call_later(max(0.0, due - self.clock()), fire)

    def announce(self, info: CampaignInfo, notices: list[Notice],
                 stats: dict[str, Any] | None) -> None:
        for notice in notices:
            alert = {**notice.as_dict(), "at": iso_time(notice.at)}
            current = dict(self.active.get(info.no, {}))
            if notice.state == "firing":
                current[notice.rule.name] = alert
            else:
                current.pop(notice.rule.name, None)
            if current:
                self.active[info.no] = current
            else:
                self.active.pop(info.no, None)
            self._show_firing(notice.rule.name)
            self.metrics.alert_notices.labels(notice.rule.name, notice.state).inc()
            logger = log.warning if notice.state == "firing" else log.info
            logger("campaign.alert", campaign_uuid=info.uuid, rule=notice.rule.name,
                   state=notice.state, value=notice.value, threshold=notice.rule.threshold,
                   direction=notice.rule.direction, volume=int(notice.volume),
                   message=alert["message"])
            self.bus.publish(CampaignAlert(info, alert))
            key = (info.no, notice.rule.name)
            if notice.state == "firing":
                self._stored[key] = StoredAlert(info.no, notice.rule.name,
                                                notice.rule.fingerprint(), notice.at, alert)
            else:
                self._stored.pop(key, None)
            self._unwritten[key] = self._stored.get(key)
            if self.config["sender.webhook_url"]:
                self._spawn(self._webhook(info, alert, stats))
            if notice.state == "firing" and notice.rule.pause:
                self._spawn(self._pause(info, alert))
        self._write_soon()

    def hold(self, campaign_no: int, holds: dict[str, float | None]) -> None:
        """Store since when each firing alert of a campaign has stayed under (after its
        announcement, which the actor handed over first)."""
        for rule, under_since in holds.items():
            stored = self._stored.get((campaign_no, rule))
            if stored is not None and stored.under_since != under_since:
                stored = dataclasses.replace(stored, under_since=under_since)
                self._stored[(campaign_no, rule)] = self._unwritten[(campaign_no, rule)] = stored
        self._write_soon()

    def _show_firing(self, rule_name: str) -> None:
        """The gauge of a rule: the campaigns it fires on now."""
        self.metrics.alerts_firing.labels(rule_name).set(
            sum(1 for alerts in self.active.values() if rule_name in alerts))

    def _write_soon(self) -> None:
        """Store what changed, one writer at a time so the latest state is the one kept."""
        if self._unwritten and not self._writing and self.states is not None:
            self._writing = True
            self._spawn(self._write())

    async def _write(self) -> None:
        assert self.states is not None
        try:
            while self._unwritten:
                changes, self._unwritten = self._unwritten, {}
                try:
                    await self.states.write(changes)
                except StoreUnavailable as exc:
                    # kept for the next try; anything newer announced meanwhile wins
                    self._unwritten = {**changes, **self._unwritten}
                    log.warning("alerts.not_stored", error=str(exc), alerts=len(changes))
                    await asyncio.sleep(1.0)
        finally:
            self._writing = False

    async def _pause(self, info: CampaignInfo, alert: dict[str, Any]) -> None:
        paused = await self.sending.pause_for(info.no, f"alert: {alert['message']}")
        if paused:
            log.warning("campaign.paused_by_alert", campaign_uuid=info.uuid,
                        rule=alert["rule"])

    async def _webhook(self, info: CampaignInfo, alert: dict[str, Any],
                       stats: dict[str, Any] | None) -> None:
        session = self.sending.session
        if session is None or session.closed:
            return
        c = self.config
        await post_signed(session, c["sender.webhook_url"], c["sender.webhook_secret"], {
            "event": "campaign.alert",
            "campaign": {"uuid": info.uuid, "id": info.no, "workspace_id": info.workspace_id,
                         "name": info.name},
            "alert": alert,
            "statistics": stats,
            "timestamp": iso_time(time.time()),
        }, backoff_base=c["sender.backoff_base"], backoff_max=c["sender.backoff_max"],
            campaign_uuid=info.uuid)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _stop(ref: pykka.ActorRef[Any]) -> None:
    try:
        ref.stop(block=True, timeout=5)
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
