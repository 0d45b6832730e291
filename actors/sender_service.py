"""The sending runtime extension: lifecycle, gateway calls and durable outcomes.

Runs on the event loop. It owns the aiohttp ClientSession, the gateway clients and
their accounts (one shared rate each), one `SenderActor` per running campaign, the
schedule of `scheduled` campaigns and every status change. Exactly-once intent: each
gateway call is an attempt (SPEC 9), recorded (committed) before the call; the gateway
id, or the failure, is committed before the campaign actor hears of it. At start-up an
attempt without an outcome is marked `unknown` and only re-sent on request.

Storing an attempt or an outcome and telling the campaign actor happen under the
runtime's state gate (shared), so a checkpoint (exclusive) never writes a row's state
as it was before an outcome already stored here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pykka
import structlog

from actors.accounts import COEXISTENCE_RATE, SharedAccount
from actors.bus import EventBus, StatsBoard
from actors.messages import (
    CampaignStatusChanged,
    GetStatistics,
    PublishStatistics,
    RegisterMessages,
    SkipRows,
)
from actors.outbound import post_signed
from actors.scheduler import Scheduler
from actors.send_rules import duration_text, judge_outcome, render
from actors.sender import (
    Job,
    SenderActor,
    SenderPolicy,
    SendResult,
    SendWork,
    SetPaused,
)
from actors.suppressions import SuppressionList
from core.aio import SharedExclusive
from core.clock import SYSTEM_CLOCK, Clock
from core.config import Config
from core.metrics import Metrics
from domain import skips
from domain.attempts import MAX_ATTEMPT
from domain.failures import Failure, slows_account
from domain.inbound import opt_out_of_refusal
from domain.pacing import Aimd
from domain.phones import e164_digits
from domain.records import CampaignInfo, RegisteredMessage
from domain.sendwindow import SendWindow, parse_window
from domain.status import Level, bare_message_id
from domain.tiers import TierPolicy, is_unreachable
from domain.timefmt import iso_time
from gateways.base import Gateway, Outbound, Outcome
from gateways.cloud import CloudGateway
from gateways.http import HttpGateway
from gateways.simulator import SimSettings, Simulator
from gateways.waha import WahaGateway
from store.campaigns import CampaignStore
from store.db import StoreUnavailable
from store.insights import InsightStore

log = structlog.get_logger(__name__)

GATEWAYS = ("simulator", "http", "waha", "cloud")
# action -> (statuses it is allowed from, status after it)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("pending", "scheduled"), "processing"),
    "schedule": (("pending", "scheduled"), "scheduled"),
    "pause": (("processing",), "paused"),
    "resume": (("paused",), "processing"),
    "cancel": (("pending", "scheduled", "processing", "paused"), "cancelled"),
    "retry-failed": (("processing", "paused", "completed", "failed"), "processing"),
    "retry-unknown": (("processing", "paused", "completed", "failed"), "processing"),
}
NOTIFY_STATUSES = ("completed", "paused", "failed")


class TransitionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Run:
    """One running campaign: its actor and what its sends need."""

    def __init__(self, campaign: dict[str, Any], options: dict[str, Any],
                 ref: pykka.ActorRef[Any]) -> None:
        self.no: int = campaign["no"]
        self.uuid: str = campaign["uuid"]
        self.text: str = campaign["message"] or ""
        self.gateway: str = campaign["gateway"]
        self.workspace_id: int = campaign["workspace_id"]
        self.options = options
        self.ref = ref
        # SPEC 9: skip recipients in the unreachable tier (the campaign's choice), judged
        # from the contacts each time its rows are (re)loaded: launch, resume, retries.
        self.skip_unreachable = bool(options.pop("skip_unreachable", False))
        self.unreachable: frozenset[str] = frozenset()  # recipients as stored


@dataclass(frozen=True)
class SendingContext:
    """What the sender needs from the runtime, and nothing more."""

    config: Config
    campaigns: CampaignStore
    metrics: Metrics
    bus: EventBus
    board: StatsBoard
    journal_append: Callable[..., Awaitable[Any]]  # simulated ACKs take the webhook path
    # told to the ingest actor
    register: Callable[[RegisterMessages | SkipRows | PublishStatistics], None]
    ask: Callable[..., Awaitable[Any]]
    checkpoint: Callable[[], Awaitable[int]]
    gate: SharedExclusive  # shared here, exclusive while a checkpoint collects and writes
    clock: Clock = SYSTEM_CLOCK
    # The workspace suppression lists (SPEC 6.4): a listed number is skipped (SPEC 9).
    suppressions: SuppressionList | None = None


class SendingService:
    def __init__(self, ctx: SendingContext) -> None:
        self.ctx = ctx
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session: aiohttp.ClientSession | None = None
        self.gateways: dict[str, Gateway] = {}
        self.unconfigured: dict[str, str] = {}  # gateway -> missing key
        self.accounts: dict[str, SharedAccount] = {}  # gateway -> its account's rate
        self.runs: dict[int, Run] = {}
        self.progress: dict[int, dict[str, Any]] = {}
        self.unknown: dict[int, int] = {}
        self.calls: Counter[int] = Counter()  # gateway calls under way, per campaign
        self.lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Longest pause between tries to store a send's outcome (a test hook: the tests
        # shorten it to go past any number of failed tries quickly).
        self.outcome_retry_max_delay = 2.0
        self.scheduler = Scheduler(self._start_scheduled, ctx.clock)
        c = ctx.config
        self.window_defaults = {"days": c["sender.window_days"], "from": c["sender.window_from"],
                                "to": c["sender.window_to"],
                                "timezone": c["sender.window_timezone"]}

    # --- extension lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        rt = self.ctx
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession()
        c = rt.config
        timeout = c["sender.request_timeout"]
        self.gateways["simulator"] = Simulator(SimSettings.from_config(c), rt.journal_append)
        if c["gateways.http.url"]:
            self.gateways["http"] = HttpGateway(c["gateways.http.url"], c["gateways.http.token"],
                                                c["gateways.http.id_field"],
                                                c["gateways.http.session_id"], timeout,
                                                c["gateways.http.preset"])
        else:
            self.unconfigured["http"] = "gateways.http.url"
        if c["gateways.waha.base_url"]:
            self.gateways["waha"] = WahaGateway(c["gateways.waha.base_url"],
                                                c["gateways.waha.api_key"],
                                                c["gateways.waha.session"], timeout)
        else:
            self.unconfigured["waha"] = "gateways.waha.base_url"
        if c["gateways.cloud.phone_number_id"] and c["gateways.cloud.access_token"]:
            self.gateways["cloud"] = CloudGateway(
                c["gateways.cloud.base_url"], c["gateways.cloud.version"],
                c["gateways.cloud.phone_number_id"], c["gateways.cloud.access_token"], timeout)
        else:
            self.unconfigured["cloud"] = ("gateways.cloud.phone_number_id and "
                                          "gateways.cloud.access_token")
        aimd = Aimd(c["sender.throttle_decrease"], c["sender.throttle_recovery"],
                    c["sender.throttle_min_rate"])
        for name in GATEWAYS:
            rate = c[f"gateways.{name}.rate"]
            if name == "cloud" and c["gateways.cloud.coexistence"]:
                rate = min(rate or COEXISTENCE_RATE, COEXISTENCE_RATE)
            self.accounts[name] = SharedAccount(name, rate, aimd, rt.clock)
        for no, count in await rt.campaigns.mark_unknown():
            log.warning("sender.unknown_outcomes", campaign_no=no, messages=count)
        self.unknown.update(await rt.campaigns.unknown_counts())
        for campaign in await rt.campaigns.list(None, "processing", None, 1_000_000):
            await self._launch(campaign)
        now = rt.clock.time()
        for campaign in await rt.campaigns.list(None, "scheduled", None, 1_000_000):
            if campaign["send_at"] is not None and campaign["send_at"] <= now:
                await self._start_scheduled(campaign["uuid"], late=True)
            else:
                self.scheduler.set(campaign["uuid"], campaign["send_at"] or now)
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        runs, self.runs = list(self.runs.values()), {}
        await asyncio.get_running_loop().run_in_executor(None, _stop_all, runs)
        if self._tasks:  # in-flight sends: let them store their outcome
            await asyncio.wait(list(self._tasks), timeout=3)
        for task in list(self._tasks):
            task.cancel()
        sim = self.gateways.get("simulator")
        if isinstance(sim, Simulator):
            await sim.close()
        if self.session is not None:
            await self.session.close()

    # --- lifecycle --------------------------------------------------------------------

    def check_gateway(self, name: str) -> str | None:
        if name not in GATEWAYS:
            return f"gateway must be one of {', '.join(GATEWAYS)}"
        if name in self.unconfigured:
            return f"gateway {name!r} is not configured: set {self.unconfigured[name]}"
        return None

    async def transition(self, uuid: str, action: str, send_at: float | None = None,
                         reason: str | None = None) -> tuple[dict[str, Any], int]:
        """Apply a lifecycle action; (campaign, rows affected). TransitionError if invalid.
        `schedule` needs `send_at`; `reason` is shown as the status reason."""
        allowed, target = TRANSITIONS[action]
        async with self.lock:
            campaign = await self.ctx.campaigns.get(uuid)
            assert campaign is not None
            status = campaign["status"]
            if campaign["message"] is None and campaign.get("gateway") is None:
                raise TransitionError("not_sendable", "this campaign was created without "
                                      "recipients and a message: it is sent elsewhere")
            if status not in allowed:
                raise TransitionError("invalid_transition", f"cannot {action} a campaign that "
                                      f"is {status} (allowed from: {', '.join(allowed)})")
            affected = 0
            no = campaign["no"]
            if action in ("retry-failed", "retry-unknown"):
                if action == "retry-failed":
                    await self.ctx.checkpoint()  # failure ACKs are in the rows
                affected = await self.ctx.campaigns.requeue(
                    no, "failed" if action == "retry-failed" else "unknown")
                if not affected:
                    what = "failed" if action == "retry-failed" else "unknown-outcome"
                    raise TransitionError("nothing_to_retry", f"no {what} messages to re-send")
                if action == "retry-unknown":
                    self.unknown[no] = 0
            if action == "schedule":
                assert send_at is not None
                await self.ctx.campaigns.set_schedule(no, status, send_at)
                self.scheduler.set(uuid, send_at)
            elif status == "scheduled":  # started now, or cancelled: no longer due
                self.scheduler.discard(uuid)
            await self._set_status(campaign, target, reason)
            if target == "processing":
                run = self.runs.get(no)
                if run is None:
                    await self._launch({**campaign, "status": target})
                else:
                    jobs = await self._jobs(no)
                    run.ref.tell(SendWork(jobs))
                    run.ref.tell(SetPaused(False))
            elif target == "paused":
                run = self.runs.get(no)
                if run is not None:
                    run.ref.tell(SetPaused(True))
            elif target == "cancelled":
                await self._drop(no)
            campaign = await self.ctx.campaigns.get(uuid)
            assert campaign is not None
            return campaign, affected

    async def _start_scheduled(self, uuid: str, late: bool = False) -> None:
        """A scheduled campaign's time has come (or passed while the daemon was down)."""
        campaign = await self.ctx.campaigns.get(uuid)
        if campaign is None or campaign["status"] != "scheduled":
            return
        reason = None
        send_at = campaign["send_at"] or self.ctx.clock.time()
        lateness = self.ctx.clock.time() - send_at
        if late:
            reason = (f"scheduled for {iso_time(send_at)}; the daemon was not running then, "
                      f"so it started {duration_text(lateness)} late")
            log.warning("sender.schedule_missed", campaign_uuid=uuid,
                        send_at=iso_time(send_at), late_seconds=round(lateness, 1))
            await self.ctx.campaigns.set_start_note(campaign["no"], reason)
        try:
            await self.transition(uuid, "start", reason=reason)
        except TransitionError as exc:  # cancelled meanwhile
            log.info("sender.schedule_skipped", campaign_uuid=uuid, reason=str(exc))
        else:
            log.info("sender.schedule_started", campaign_uuid=uuid, send_at=iso_time(send_at))

    def window_of(self, campaign: dict[str, Any]) -> SendWindow:
        """The campaign's send window: its own, else the [sender] defaults."""
        raw = campaign.get("send_window")
        return parse_window(orjson.loads(raw) if raw else None, self.window_defaults)

    async def _jobs(self, no: int) -> tuple[Job, ...]:
        rows = await self.ctx.campaigns.sendable_rows(no)
        run = self.runs.get(no)
        if run is not None and run.skip_unreachable and rows:
            run.unreachable = await self._unreachable(run.workspace_id, [r[1] for r in rows])
        return tuple(Job(r[0], r[1], r[2], r[3], r[4]) for r in rows)

    async def _unreachable(self, workspace: int, recipients: list[str]) -> frozenset[str]:
        """The recipients in the unreachable tier (domain/tiers.py), from the contacts
        facts as of the analytics' last recount (store/insights.py)."""
        c = self.ctx.config
        policy = TierPolicy(c["analytics.engaged_days"], c["analytics.unengaged_min_delivered"])
        numbers = [e164_digits(r) or "" for r in recipients]
        facts = await InsightStore(self.ctx.campaigns.store).facts(workspace, numbers,
                                                                   frozenset())
        now = self.ctx.clock.time()
        return frozenset(r for r, f in zip(recipients, facts, strict=True)
                         if is_unreachable(f, now, policy))

    async def _launch(self, campaign: dict[str, Any]) -> None:
        assert self.loop is not None
        c = self.ctx.config
        no = campaign["no"]
        gateway = campaign["gateway"] or c["sender.default_gateway"]
        raw_options, _ = await self.ctx.campaigns.send_options(no)
        options = orjson.loads(raw_options) if raw_options else {}
        problem = self.check_gateway(gateway)
        if problem:
            await self._set_status(campaign, "failed", problem)
            return
        policy = SenderPolicy(
            rate=campaign["rate"] or c["sender.default_rate"],
            max_in_flight=c["sender.max_in_flight"], max_attempts=c["sender.max_attempts"],
            backoff_base=c["sender.backoff_base"], backoff_max=c["sender.backoff_max"],
            failure_threshold=c["sender.failure_threshold"],
            failure_min_sample=c["sender.failure_min_sample"],
        )
        window = self.window_of(campaign)
        policy.window = None if window.always_open else window
        counts = await self.ctx.campaigns.send_state_counts(no)
        self.unknown[no] = counts.get("unknown", 0)
        ref = SenderActor.start(
            no, policy, self.accounts[gateway],
            lambda job: self._dispatch(no, job),
            lambda delay, msg: self._schedule(no, delay, msg),
            lambda kind, reason: self._notify(no, kind, reason),
            self.progress, self.ctx.clock,
            lambda job: self._skip_of(no, job),
            lambda job, skip: self._dispatch_skip(no, job, skip),
        )
        run = Run({**campaign, "gateway": gateway}, options, ref)
        self.runs[no] = run
        ref.tell(SendWork(await self._jobs(no)))
        log.info("sender.launched", campaign_uuid=run.uuid, gateway=gateway, rate=policy.rate)

    async def _drop(self, no: int) -> None:
        run = self.runs.pop(no, None)
        if run is not None:
            await asyncio.get_running_loop().run_in_executor(None, _stop_all, [run])
        progress = self.progress.get(no)
        if progress:
            self.progress[no] = {**progress, "in_flight_count": 0, "send_rate": 0.0,
                                 "eta_seconds": None, "waiting_for": None,
                                 "window_opens_at": None, "window_opens": None}

    async def _set_status(self, campaign: dict[str, Any], status: str,
                          reason: str | None) -> None:
        previous = campaign["status"]
        await self.ctx.campaigns.set_status_reason(campaign["no"], status, reason)
        info = CampaignInfo(campaign["no"], campaign["uuid"], campaign["workspace_id"],
                            campaign["name"])
        stats = await self.statistics(campaign["no"])
        self.ctx.bus.publish(CampaignStatusChanged(info, status, previous, stats))
        log.info("campaign.status_changed", campaign_uuid=campaign["uuid"], status=status,
                 previous=previous, reason=reason,
                 sent=stats.get("total_sent_count"), failed=stats.get("total_failed_count"),
                 unknown=stats.get("total_unknown_count"))
        if status in NOTIFY_STATUSES and self.ctx.config["sender.webhook_url"]:
            self._spawn(self._outbound_webhook(info, status, previous, reason, stats))

    # --- statistics -------------------------------------------------------------------

    def progress_of(self, no: int) -> dict[str, Any]:
        out = {"total_remaining_count": 0, "in_flight_count": 0, "retrying_count": 0,
               "send_rate": 0.0, "eta_seconds": None, "account_rate": None,
               "waiting_for": None, "window_opens_at": None, "window_opens": None,
               **self.progress.get(no, {})}
        if no not in self.runs:  # cancelled or done: only calls still under way
            out["in_flight_count"] = self.calls.get(no, 0)
        out["total_unknown_count"] = self.unknown.get(no, 0)
        return out

    def extras(self, no: int) -> dict[str, Any]:
        """Progress fields for a campaign's statistics; {} if campaignd never sent it.

        Safe from any thread (it only reads dicts the sender actors replace whole), so a
        campaign actor may merge it into every statistics dict it builds.
        """
        if no not in self.progress and not self.unknown.get(no):
            return {}
        return self.progress_of(no)

    async def statistics(self, no: int, timeout: float = 5.0) -> dict[str, Any]:
        """The campaign actor's statistics plus the send progress; after `timeout` the
        figures last published (a slow actor must not hold up a status change)."""
        try:
            stats = dict(await self.ctx.ask(lambda reply: GetStatistics(no, reply),
                                            timeout=timeout))
        except Exception:  # a slow actor must not block a status change
            stats = dict(self.ctx.board.get(no) or {})
        stats.update(self.progress_of(no))
        return stats

    # --- called from the sender actor's thread ----------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: shutting down

    def _dispatch(self, no: int, job: Job) -> None:
        self._call(lambda: self._spawn(self._send(no, job)))

    def _skip_of(self, no: int, job: Job) -> skips.Skip | None:
        """Why this job must not be sent, if it must not (SPEC 9); O(1), no I/O: the
        suppression list as it is now, the run's unreachable recipients."""
        run = self.runs.get(no)
        if run is None:
            return None
        if self.ctx.suppressions is not None:
            entry = self.ctx.suppressions.entry(run.workspace_id, job.recipient)
            if entry is not None:
                return skips.suppressed(self.ctx.clock.time(), entry.reason, entry.source)
        if job.recipient in run.unreachable:
            return skips.unreachable(self.ctx.clock.time())
        return None

    def _dispatch_skip(self, no: int, job: Job, skip: skips.Skip) -> None:
        self._call(lambda: self._spawn(self._skip(no, job, skip)))

    def _schedule(self, no: int, delay: float, message: Any) -> None:
        def later() -> None:
            assert self.loop is not None
            self.loop.call_later(delay, _tell, self.runs.get(no), message)
        self._call(later)

    def _notify(self, no: int, kind: str, reason: str | None) -> None:
        if kind == "progress":  # from the actor's thread: a tell, nothing to wait for
            self.ctx.register(PublishStatistics(no))
            return
        self._call(lambda: self._spawn(self._on_notify(no, kind, reason)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- on the loop ------------------------------------------------------------------

    async def _send(self, no: int, job: Job) -> None:
        assert self.session is not None
        run = self.runs.get(no)
        if run is None:  # cancelled (or stopped) before this send began: nothing is sent
            return
        campaigns = self.ctx.campaigns
        result = SendResult(job.row, "not_attempted", "not attempted")
        self.calls[no] += 1
        try:
            if job.attempt > MAX_ATTEMPT:  # no further gateway id fits the id index
                outcome = Outcome("permanent", reason=f"not sent again: {MAX_ATTEMPT} "
                                  "attempts were made")
                await self._store_outcome(no, replace(job, attempt=MAX_ATTEMPT), outcome)
                result = SendResult(job.row, "permanent", outcome.reason)
                return
            now = self.ctx.clock.time()
            try:
                async with self.ctx.gate.shared():
                    await campaigns.record_attempt(no, job.row, job.attempt, now)
                    if job.attempt > 1:  # a retry under way is not failed any more
                        self.ctx.register(RegisterMessages(no, (RegisteredMessage(
                            job.row, None, Level.QUEUED, False, None, now,
                            attempt=job.attempt),)))
            except StoreUnavailable as exc:  # not recorded, so not sent: retry later
                result = SendResult(job.row, "not_attempted", f"storage unavailable: {exc}")
                return
            # Recorded: whatever happens now, this attempt number is used.
            result = SendResult(job.row, "transient", "the send did not complete")
            outbound = Outbound(run.uuid, job.row, job.recipient, render(run.text, job.variables),
                                job.contact_id, run.options, run.workspace_id)
            outcome = await self.gateways[run.gateway].send(self.session, outbound)
            outcome = judge_outcome(outcome, job.tries, run.gateway, self.ctx.config)
            self.ctx.metrics.sends.labels(run.gateway, outcome.kind).inc()
            await self._store_outcome(no, job, outcome)
            if outcome.kind == "permanent":
                await self._suppress_refused(no, job, outcome.failure)
            # HTTP 429, Meta 130429, ...: the account's shared rate goes down (SPEC 9).
            throttled = outcome.failure is not None and slows_account(outcome.failure.code)
            result = SendResult(job.row, outcome.kind, outcome.reason, outcome.retry_after,
                                throttled)
        except Exception:
            log.exception("sender.send_failed", campaign_no=no, row=job.row)
        finally:
            self.calls[no] -= 1
            if not self.calls[no]:
                del self.calls[no]
            _tell(self.runs.get(no), result)

    async def _skip(self, no: int, job: Job, skip: skips.Skip) -> None:
        """Store a skip (durable before the campaign actor counts it), then tell the
        sender. A kill -9 before the write leaves the row queued: asked again at start."""
        result = SendResult(job.row, "skip_failed", "the skip was not stored")
        try:
            async def write() -> None:
                await self.ctx.campaigns.record_skipped(no, job.row, skip)
                self.ctx.register(SkipRows(no, ((job.row, skip),)))

            await self._until_stored(write, "sender.skip_store_failed", campaign_no=no,
                                     row=job.row)
            run = self.runs.get(no)
            self.ctx.metrics.sends.labels(run.gateway if run else "", "skipped").inc()
            log.info("sender.skipped", campaign_no=no, row=job.row, reason=skip.reason,
                     detail=skip.detail)
            result = SendResult(job.row, "skipped", skip.reason)
        except Exception:
            log.exception("sender.skip_failed", campaign_no=no, row=job.row)
        finally:
            _tell(self.runs.get(no), result)

    async def _suppress_refused(self, no: int, job: Job, failure: Failure | None) -> None:
        """A send refused as opted out (131050, 63014, Twilio 21610: domain/failures.py)
        puts the number on the workspace's suppression list, so the next campaign skips it
        (status webhooks with those codes do so through engagement, domain/inbound.py)."""
        run = self.runs.get(no)
        if run is None or failure is None:
            return
        event = opt_out_of_refusal(f"sender:{run.uuid}:{job.row}:{job.attempt}",
                                   e164_digits(job.recipient), run.workspace_id,
                                   self.ctx.clock.time(), failure)
        if event is None:
            return
        try:
            await self.ctx.journal_append("sender", [event])
        except StoreUnavailable as exc:
            log.warning("sender.suppress_failed", campaign_no=no, row=job.row, error=str(exc))

    async def _store_outcome(self, no: int, job: Job, outcome: Outcome) -> None:
        now = self.ctx.clock.time()
        # The message may be out: its outcome must be stored, however long storage fails
        # (giving up would leave the row `attempting` and the campaign never finished).
        # A shutdown cancels this; the row is then an unknown outcome at the next start.
        await self._until_stored(lambda: self._write_outcome(no, job, outcome, now),
                                 "sender.outcome_store_failed", campaign_no=no, row=job.row)

    async def _until_stored(self, write: Callable[[], Awaitable[None]], event: str,
                            **fields: Any) -> None:
        """Run `write` under the shared gate until storage takes it (logged every tenth
        refusal as `event`), backing off up to sender.outcome_retry_max_delay."""
        for attempt in itertools.count():
            try:
                async with self.ctx.gate.shared():
                    await write()
                return
            except StoreUnavailable as exc:
                if attempt % 10 == 0:
                    log.warning(event, attempt=attempt, error=str(exc), **fields)
                await asyncio.sleep(min(self.outcome_retry_max_delay, 0.1 * (attempt + 1)))

    async def _write_outcome(self, no: int, job: Job, outcome: Outcome, now: float) -> None:
        campaigns = self.ctx.campaigns
        if outcome.kind == "accepted":
            assert outcome.message_id is not None
            bare = bare_message_id(outcome.message_id)
            await campaigns.record_accepted(no, job.row, bare, outcome.message_id, now)
            self.ctx.register(RegisterMessages(no, (RegisteredMessage(
                job.row, bare, Level.PENDING, False, None, now, attempt=job.attempt),)))
        elif outcome.kind in ("permanent", "later"):
            # "later" (Limited by Meta) is shown failed until its retry goes out.
            reason = (outcome.reason or "refused by the gateway")[:500]
            failure = outcome.failure or Failure(self.runs[no].gateway
                                                 if no in self.runs else "", None,
                                                 reason, None)
            await campaigns.record_failed(no, job.row, reason, now, failure)
            self.ctx.register(RegisterMessages(no, (RegisteredMessage(
                job.row, None, Level.QUEUED, True, reason, now, failure,
                attempt=job.attempt),)))
        elif outcome.kind == "halt" or outcome.retry_after is not None:
            # Refused before taking the message (credentials, 429): not sent.
            await campaigns.record_requeued(no, job.row, outcome.reason, now)
        elif outcome.kind == "unknown":  # taken, but no id: maybe out, not re-sent
            await campaigns.record_unknown(no, job.row, outcome.reason, now)
            self.unknown[no] = self.unknown.get(no, 0) + 1
            log.warning("sender.unknown_outcome", campaign_no=no, row=job.row,
                        reason=outcome.reason)
        else:  # transient: retried by the actor
            await campaigns.record_transient(no, job.row, outcome.reason or "transient", now)

    async def _on_notify(self, no: int, kind: str, reason: str | None) -> None:
        async with self.lock:
            run = self.runs.get(no)
            if run is None:
                return
            campaign = await self.ctx.campaigns.get(run.uuid)
            if campaign is None or campaign["status"] != "processing":
                return
            if kind in ("auto_pause", "halt"):
                await self._set_status(campaign, "paused", reason)
                return
            counts = await self.ctx.campaigns.send_state_counts(no)
            if counts.get("queued", 0):
                run.ref.tell(SendWork(await self._jobs(no)))
                return
            if counts.get("attempting", 0):
                return  # an outcome is still on its way; the actor tells us again
            await self._drop(no)
            # The stored send states say nothing is left; the stopped actor's last
            # progress may still count an outcome it had not heard of yet.
            self.progress[no] = {**self.progress.get(no, {}), "total_remaining_count": 0,
                                 "retrying_count": 0, "eta_seconds": 0.0}
            ok = counts.get("accepted", 0) + counts.get("resent", 0)
            status = "failed" if not ok and counts.get("failed", 0) else "completed"
            why = "every message was refused by the gateway" if status == "failed" else None
            await self._set_status(campaign, status, why)

    async def _outbound_webhook(self, info: CampaignInfo, status: str, previous: str | None,
                                reason: str | None, stats: dict[str, Any]) -> None:
        assert self.session is not None
        c = self.ctx.config
        await post_signed(self.session, c["sender.webhook_url"], c["sender.webhook_secret"], {
            "event": "campaign.status.changed",
            "campaign": {"uuid": info.uuid, "id": info.no, "workspace_id": info.workspace_id,
                         "name": info.name, "status": status, "previous": previous,
                         # the name of release 0.1, kept so existing receivers still work
                         "previous_status": previous, "reason": reason},
            "statistics": stats,
            "timestamp": iso_time(time.time()),
        }, backoff_base=c["sender.backoff_base"], backoff_max=c["sender.backoff_max"],
            campaign_uuid=info.uuid)

    async def resume_sending(self, uuid: str) -> bool:
        """Rows were queued again outside an action (a Limited by Meta retry): send them,
        bringing a completed campaign back to processing. False when it is paused,
        cancelled or failed (the rows wait for an operator)."""
        async with self.lock:
            campaign = await self.ctx.campaigns.get(uuid)
            if campaign is None or campaign["status"] not in ("processing", "completed"):
                return False
            run = self.runs.get(campaign["no"])
            if campaign["status"] == "completed" or run is None:
                await self._set_status(campaign, "processing", None)
                if run is None:
                    await self._launch({**campaign, "status": "processing"})
                    return True
            run = self.runs[campaign["no"]]
            run.ref.tell(SendWork(await self._jobs(campaign["no"])))
            run.ref.tell(SetPaused(False))
            return True

    async def pause_for(self, no: int, reason: str) -> bool:
        """Pause a campaign campaignd is sending, with the reason (an alert rule, a paused
        template); False when it is not processing."""
        async with self.lock:
            run = self.runs.get(no)
            if run is None:
                return False
            campaign = await self.ctx.campaigns.get(run.uuid)
            if campaign is None or campaign["status"] != "processing":
                return False
            run.ref.tell(SetPaused(True))
            await self._set_status(campaign, "paused", reason)
            return True


def _tell(run: Run | None, message: Any) -> None:
    if run is None:
        return
    try:
        run.ref.tell(message)
    except pykka.ActorDeadError:
        pass


def _stop_all(runs: list[Run]) -> None:
    for run in runs:
        try:
            run.ref.stop(block=True, timeout=5)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass
