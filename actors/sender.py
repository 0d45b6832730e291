"""One sender actor per running campaign: decides what to send next, and when.

The actor owns the campaign's send queue, its retry schedule and its own token bucket;
it shares its gateway account's rate (actors/accounts.py) with every other campaign on
that account, and keeps to the campaign's send window. It never does I/O and never
waits: a send is handed to the event loop (`dispatch`), whose coroutine records the
attempt, calls the gateway, stores the outcome and `tell`s a `SendResult` back. Timers
are the loop's `call_later`, which `tell`s a `Tick`. Time comes from a `Clock`, so a
test can move it by hand.

Skips (SPEC 9): before the next job costs a token or a slot of the account's rate,
`skip_of` (from the service: the suppression list, the unreachable tier) may say it is
not to be sent; the job is then handed to `dispatch_skip` instead of `dispatch`, which
stores it as skipped and `tell`s a `SendResult` of kind "skipped" back. Asked when the
job is about to go, so a stop that arrives mid-campaign is honoured.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pykka
import structlog

from actors.accounts import SharedAccount
from core.clock import SYSTEM_CLOCK, Clock
from domain.pacing import TokenBucket
from domain.sendwindow import SendWindow
from domain.timefmt import iso_time

log = structlog.get_logger(__name__)


@dataclass(slots=True, frozen=True)
class Job:
    row: int
    recipient: str
    contact_id: str | None
    variables: str | None  # JSON object or None
    attempt: int = 0  # the row's attempt number (durable: attempts made, ever)
    tries: int = 0  # attempts made by this run, for max_attempts and the backoff


@dataclass(slots=True, frozen=True)
class SendWork:
    jobs: tuple[Job, ...]


@dataclass(slots=True, frozen=True)
class Tick:
    pass


@dataclass(slots=True, frozen=True)
class SendResult:
    row: int
    # accepted | transient | permanent | halt | unknown | later | not_attempted, and for a
    # skip: skipped | skip_failed (not stored: asked again later)
    kind: str
    reason: str | None = None
    retry_after: float | None = None
    throttled: bool = False  # HTTP 429 / Meta 130429: the account's rate goes down


@dataclass(slots=True, frozen=True)
class SetPaused:
    paused: bool


@dataclass(slots=True)
class SenderPolicy:
    rate: float
    max_in_flight: int
    max_attempts: int
    backoff_base: float
    backoff_max: float
    failure_threshold: float
    failure_min_sample: int
    window: SendWindow | None = None  # None: always open


# The loop side, as callables (see actors/sender_service.py):
Dispatch = Callable[[Job], None]  # start sending this job on the loop
Schedule = Callable[[float, Any], None]  # tell(message) to this actor after a delay
# "drained" | "auto_pause" | "halt" | "progress" (what the page shows changed), reason
Notify = Callable[[str, str | None], None]
SkipOf = Callable[[Job], Any]  # a domain.skips.Skip when the job must not be sent, else None
DispatchSkip = Callable[[Job, Any], None]  # store the skip on the loop, tell a SendResult


class SenderActor(pykka.ThreadingActor):
    RATE_WINDOW = 5.0

    def __init__(self, campaign_no: int, policy: SenderPolicy, account: SharedAccount,
                 dispatch: Dispatch, schedule: Schedule, notify: Notify,
                 progress: dict[int, dict[str, Any]], clock: Clock = SYSTEM_CLOCK,
                 skip_of: SkipOf | None = None, dispatch_skip: DispatchSkip | None = None
                 ) -> None:
        super().__init__()
        self.skip_of = skip_of
        self.dispatch_skip = dispatch_skip
        self.no = campaign_no
        self.policy = policy
        self.clock = clock
        self.bucket = TokenBucket(policy.rate, clock.monotonic())
        self.account = account
        self.dispatch = dispatch
        self.schedule = schedule
        self.notify = notify
        self.progress = progress
        self.queue: deque[Job] = deque()
        self.retries: list[tuple[float, int, Job]] = []  # (due monotonic, seq, job)
        self.in_flight: dict[int, Job] = {}
        self.known: set[int] = set()
        self.paused = False
        self.slot: float | None = None  # a send time reserved on the account
        self.window_until: float | None = None  # wall time the window state holds until
        self.window_open = True
        self.ok = self.failed = 0
        self.done_times: deque[float] = deque()
        self._seq = itertools.count()
        self._tick_due: float | None = None
        self._drained_sent = False
        self._window_state(clock.time(), force=True)

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, Tick):
                self._tick_due = None
            elif isinstance(message, SendWork):
                self._add(message.jobs)
            elif isinstance(message, SendResult):
                self._result(message)
            elif isinstance(message, SetPaused):
                self.paused = message.paused
                self._drained_sent = False
            self._pump()
            self._publish()
        except Exception:  # an exception in a tell would kill the sender (SPEC 1.1)
            log.exception("sender.message_failed", campaign_no=self.no,
                          message=type(message).__name__)
        return None

    # --- queue ------------------------------------------------------------------------

    def _add(self, jobs: tuple[Job, ...]) -> None:
        for job in jobs:
            if job.row not in self.known:
                self.known.add(job.row)
                self.queue.append(job)
        self._drained_sent = False

    def _result(self, result: SendResult) -> None:
        job = self.in_flight.pop(result.row, None)
        if job is None:
            return
        now = self.clock.monotonic()
        if result.kind == "skipped":  # done: neither sent nor failed
            self.known.discard(job.row)
            return
        if result.kind == "skip_failed":  # not stored: asked again after a pause
            heapq.heappush(self.retries, (now + self.policy.backoff_base, next(self._seq), job))
            return
        if result.kind == "later":
            # This recipient only (Limited by Meta): no hold on the campaign or the
            # account, no backoff.
            heapq.heappush(self.retries, (now + (result.retry_after or 0.0),
                                          next(self._seq), job))
            return
        if result.throttled:
            if self.account.throttled(result.retry_after):
                log.warning("sender.account_throttled", gateway=self.account.name,
                            rate=self.account.rate(), reason=result.reason)
        elif result.retry_after is not None:
            self.account.hold(result.retry_after)  # the service asked everyone to wait
        if result.kind in ("transient", "not_attempted"):
            if result.kind == "not_attempted":  # not recorded, so not sent: same numbers
                job = replace(job, attempt=job.attempt - 1, tries=job.tries - 1)
            delay = min(self.policy.backoff_max,
                        self.policy.backoff_base * 2 ** max(0, job.tries - 1))
            delay *= random.uniform(0.5, 1.5)  # jitter: retries of many rows spread out
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            heapq.heappush(self.retries, (now + delay, next(self._seq), job))
            return
        if result.kind == "halt":
            self.queue.appendleft(job)
            self.paused = True
            self.notify("halt", result.reason)
            return
        self.known.discard(job.row)
        self.done_times.append(now)
        if result.kind == "accepted":
            self.ok += 1
        elif result.kind != "unknown":  # an unknown outcome is neither sent nor failed
            self.failed += 1
            judged = self.ok + self.failed
            if (judged >= self.policy.failure_min_sample and not self.paused
                    and self.failed / judged > self.policy.failure_threshold):
                self.paused = True
                self.notify("auto_pause", f"{self.failed} of {judged} sends failed (more than "
                            f"{self.policy.failure_threshold:.0%}); last: {result.reason}")

    def _has_work(self, now: float) -> bool:
        return bool(self.queue) or (bool(self.retries) and self.retries[0][0] <= now)

    def _next_job(self, now: float) -> Job:
        if self.retries and self.retries[0][0] <= now:
            return heapq.heappop(self.retries)[2]
        return self.queue.popleft()

    def _window_state(self, wall: float, force: bool = False) -> bool:
        """Open now? Asks the window only when its last answer has run out."""
        window = self.policy.window
        if window is None:
            return True
        if force or (self.window_until is not None and wall >= self.window_until):
            self.window_open, self.window_until = window.state(wall)
        return self.window_open

    def _pump(self) -> None:
        """Dispatch as much as the window, the rates and the in-flight limit allow."""
        if self.paused:
            return
        now = self.clock.monotonic()
        while len(self.in_flight) < self.policy.max_in_flight:
            if not self._has_work(now):
                if self.retries:
                    self._wake(self.retries[0][0] - now)
                break
            wall = self.clock.time()
            if not self._window_state(wall):
                if self.window_until is not None:
                    self._wake(self.window_until - wall)
                return
            if self._skip_next(now):
                continue
            wait = self.bucket.wait_time(now)
            if wait > 0:
                self._wake(wait)
                return
            if self.slot is None:
                self.slot = self.account.reserve()
            hold = self.account.hold_until()
            if self.slot < hold:  # a Retry-After came after the slot was reserved
                self.slot = None
                self._wake(hold - now)
                return
            if self.slot > now:
                self._wake(self.slot - now)
                return
            self.slot = None
            self.bucket.try_take(now)
            job = self._next_job(now)
            job = replace(job, attempt=job.attempt + 1, tries=job.tries + 1)
            self.in_flight[job.row] = job
            self.dispatch(job)
        if not self.queue and not self.retries and not self.in_flight and not self._drained_sent:
            self._drained_sent = True
            self.notify("drained", None)

    def _skip_next(self, now: float) -> bool:
        """Hand the next job to `dispatch_skip` if it must not be sent (SPEC 9): it costs
        no token and no slot of the account's rate, and is never given an attempt."""
        if self.skip_of is None or self.dispatch_skip is None:
            return False
        due = self.retries and self.retries[0][0] <= now
        job = self.retries[0][2] if due else self.queue[0]
        skip = self.skip_of(job)
        if skip is None:
            return False
        self._next_job(now)
        self.in_flight[job.row] = job
        self.dispatch_skip(job, skip)
        return True

    def _wake(self, delay: float) -> None:
        due = self.clock.monotonic() + delay
        if self._tick_due is not None and self._tick_due <= due:
            return
        self._tick_due = due
        self.schedule(max(0.001, delay), Tick())

    # --- progress ---------------------------------------------------------------------

    def _publish(self) -> None:
        now = self.clock.monotonic()
        while self.done_times and self.done_times[0] < now - self.RATE_WINDOW:
            self.done_times.popleft()
        window = min(self.RATE_WINDOW, max(1.0, now - (self.done_times[0] if self.done_times
                                                        else now)))
        rate = round(len(self.done_times) / window, 2) if self.done_times else 0.0
        remaining = len(self.queue) + len(self.retries) + len(self.in_flight)
        account_rate = self.account.rate()
        speed = rate or min(self.policy.rate, account_rate or self.policy.rate)
        wall = self.clock.time()
        waiting = remaining and not self.paused and not self._window_state(wall)
        opens = self.window_until if waiting else None
        eta: float | None = None
        if remaining and not self.paused:
            eta = remaining / speed
            if self.policy.window is not None:
                done = self.policy.window.finish_time(wall, eta)
                eta = None if done is None else done - wall
        elif not remaining:
            eta = 0.0
        before = self.progress.get(self.no) or {}
        progress = self.progress[self.no] = {
            "total_remaining_count": remaining,
            "in_flight_count": len(self.in_flight),
            "retrying_count": len(self.retries),
            "send_rate": rate,
            "eta_seconds": None if eta is None else round(eta, 1),
            "account_rate": account_rate,
            "waiting_for": "send_window" if waiting else None,
            "window_opens_at": iso_time(opens) if opens else None,
            "window_opens": self.policy.window.label(opens, wall)
            if opens and self.policy.window else None,
        }
        if (progress["waiting_for"], progress["window_opens"]) != (
                before.get("waiting_for"), before.get("window_opens")):
            self.notify("progress", None)  # no counter moves while it waits: say so
