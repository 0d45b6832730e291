"""One sender actor per running campaign: decides what to send next, and when.

The actor owns the campaign's send queue, its retry schedule and its token bucket. It
never does I/O and never waits: a send is handed to the event loop (`dispatch`), whose
coroutine records the attempt, calls the gateway, stores the outcome and `tell`s a
`SendResult` back. Timers are the loop's `call_later`, which `tell`s a `Tick`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

log = structlog.get_logger(__name__)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved; rate 0 means no limit.

    Shared by every campaign on one gateway, hence the lock.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, float(burst))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self) -> float:
        if self.rate <= 0:
            return 0.0
        with self._lock:
            self._refill()
            return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def try_take(self) -> float:
        """Take a token now (0.0) or say how long until one is there."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            self._refill()
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


@dataclass(slots=True, frozen=True)
class Job:
    row: int
    recipient: str
    contact_id: str | None
    variables: str | None  # JSON object or None
    attempt: int = 0  # attempts made so far


@dataclass(slots=True, frozen=True)
class SendWork:
    jobs: tuple[Job, ...]


@dataclass(slots=True, frozen=True)
class Tick:
    pass


@dataclass(slots=True, frozen=True)
class SendResult:
    row: int
    kind: str  # accepted | transient | permanent | halt | unknown
    reason: str | None = None
    retry_after: float | None = None


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


# The loop side, as callables (see actors/sender_service.py):
Dispatch = Callable[[Job], None]  # start sending this job on the loop
Schedule = Callable[[float, Any], None]  # tell(message) to this actor after a delay
Notify = Callable[[str, str | None], None]  # "drained" | "auto_pause" | "halt", reason


class SenderActor(pykka.ThreadingActor):
    RATE_WINDOW = 5.0

    def __init__(self, campaign_no: int, policy: SenderPolicy, gateway_bucket: TokenBucket,
                 dispatch: Dispatch, schedule: Schedule, notify: Notify,
                 progress: dict[int, dict[str, Any]]) -> None:
        super().__init__()
        self.no = campaign_no
        self.policy = policy
        self.bucket = TokenBucket(policy.rate)
        self.gateway_bucket = gateway_bucket
        self.dispatch = dispatch
        self.schedule = schedule
        self.notify = notify
        self.progress = progress
        self.queue: deque[Job] = deque()
        self.retries: list[tuple[float, int, Job]] = []  # (due monotonic, seq, job)
        self.in_flight: dict[int, Job] = {}
        self.known: set[int] = set()
        self.paused = False
        self.hold_until = 0.0  # a 429's Retry-After holds the whole campaign
        self.ok = self.failed = 0
        self.done_times: deque[float] = deque()
        self._seq = itertools.count()
        self._tick_due: float | None = None
        self._drained_sent = False

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
        now = time.monotonic()
        if result.kind == "transient":
            delay = min(self.policy.backoff_max,
                        self.policy.backoff_base * 2 ** max(0, job.attempt - 1))
            delay *= random.uniform(0.5, 1.5)  # jitter: retries of many rows spread out
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
                self.hold_until = max(self.hold_until, now + result.retry_after)
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

    def _next_job(self, now: float) -> Job | None:
        if self.retries and self.retries[0][0] <= now:
            return heapq.heappop(self.retries)[2]
        if self.queue:
            return self.queue.popleft()
        return None

    def _pump(self) -> None:
        """Dispatch as much as the buckets and the in-flight limit allow."""
        if self.paused:
            return
        now = time.monotonic()
        while len(self.in_flight) < self.policy.max_in_flight:
            if now < self.hold_until:
                self._wake(self.hold_until - now)
                return
            has_due = bool(self.retries) and self.retries[0][0] <= now
            if not has_due and not self.queue:
                if self.retries:
                    self._wake(self.retries[0][0] - now)
                break
            wait = self.bucket.wait_time()
            if wait > 0:
                self._wake(wait)
                return
            wait = self.gateway_bucket.try_take()
            if wait > 0:
                self._wake(wait)
                return
            self.bucket.try_take()
            job = self._next_job(now)
            assert job is not None
            job = Job(job.row, job.recipient, job.contact_id, job.variables, job.attempt + 1)
            self.in_flight[job.row] = job
            self.dispatch(job)
        if not self.queue and not self.retries and not self.in_flight and not self._drained_sent:
            self._drained_sent = True
            self.notify("drained", None)

    def _wake(self, delay: float) -> None:
        due = time.monotonic() + delay
        if self._tick_due is not None and self._tick_due <= due:
            return
        self._tick_due = due
        self.schedule(max(0.001, delay), Tick())

    # --- progress ---------------------------------------------------------------------

    def _publish(self) -> None:
        now = time.monotonic()
        while self.done_times and self.done_times[0] < now - self.RATE_WINDOW:
            self.done_times.popleft()
        window = min(self.RATE_WINDOW, max(1.0, now - (self.done_times[0] if self.done_times
                                                        else now)))
        rate = round(len(self.done_times) / window, 2) if self.done_times else 0.0
        remaining = len(self.queue) + len(self.retries) + len(self.in_flight)
        speed = rate or self.policy.rate
        self.progress[self.no] = {
            "total_remaining_count": remaining,
            "in_flight_count": len(self.in_flight),
            "retrying_count": len(self.retries),
            "send_rate": rate,
            "eta_seconds": round(remaining / speed, 1) if remaining and not self.paused
            else (0.0 if not remaining else None),
        }
