"""How fast to send: a campaign's own rate, and one rate per gateway account (SPEC 9).

Pure arithmetic on times the caller passes in (seconds on a monotonic clock), so a test
checks a rate by moving its own clock instead of waiting for the wall clock.

- `TokenBucket`: a campaign's `rate` messages per second, at most `burst` saved up.
- `AccountPacer`: the rate of one gateway account (a WhatsApp number), shared by every
  campaign on it. Campaigns RESERVE send times, spaced 1/rate apart in the order they
  ask (a campaign holds at most one reservation, so campaigns take turns). A throttling
  answer (HTTP 429, Meta 130429) lowers the rate multiplicatively; every second without
  one raises it additively, back up to the configured rate (AIMD, as TCP does). A
  Retry-After holds the whole account until then.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved; rate 0 means no limit."""

    def __init__(self, rate: float, now: float, burst: float = 1.0) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, float(burst))
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is there (0.0: now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def try_take(self, now: float) -> float:
        """Take a token now (0.0) or say how long until one is there."""
        wait = self.wait_time(now)
        if wait == 0.0 and self.rate > 0:
            self.tokens -= 1.0
        return wait


@dataclass(slots=True)
class Aimd:
    """Additive increase, multiplicative decrease (sender.throttle_* in daemon.toml)."""

    decrease: float = 0.5  # the rate is multiplied by this on a throttling answer
    recovery: float = 1.0  # messages/s added per second without one
    floor: float = 0.5  # never below this many messages/s
    cooldown: float = 1.0  # throttling answers within this many seconds count once


class AccountPacer:
    """One gateway account's effective rate; `ceiling` 0 means no configured limit."""

    MEASURE = 2.0  # seconds of reservations to measure an unlimited account's pace

    def __init__(self, ceiling: float, aimd: Aimd | None = None) -> None:
        self.ceiling = float(ceiling)
        self.aimd = aimd or Aimd()
        self.rate: float | None = self.ceiling or None  # None: unlimited
        self.next_free = 0.0  # the earliest time the next reservation may have
        self.hold_until = 0.0
        self.updated = 0.0  # of the additive increase
        self.last_decrease: float | None = None
        self.throttles = 0
        self._recent: deque[float] = deque(maxlen=4096)  # reservation times

    # --- the rate ---------------------------------------------------------------------

    def effective(self, now: float) -> float | None:
        """Messages per second now (None: no limit), after the additive increase."""
        if self.rate is not None and self.last_decrease is not None and now > self.updated:
            raised = self.rate + self.aimd.recovery * (now - self.updated)
            self.rate = min(raised, self.ceiling) if self.ceiling else raised
            self.updated = now
        return self.rate

    def throttled(self, now: float, retry_after: float | None = None) -> bool:
        """A throttling answer: lower the rate (once per cooldown); True if lowered."""
        if retry_after:
            self.hold(now, retry_after)
        if self.last_decrease is not None and now - self.last_decrease < self.aimd.cooldown:
            return False
        current = self.effective(now)
        if current is None:  # unlimited so far: start from the pace actually reached
            while self._recent and self._recent[0] < now - self.MEASURE:
                self._recent.popleft()
            current = len(self._recent) / self.MEASURE
        self.rate = max(self.aimd.floor, current * self.aimd.decrease)
        self.last_decrease = self.updated = now
        self.throttles += 1
        return True

    def hold(self, now: float, seconds: float) -> None:
        """Retry-After: nobody on this account sends before then."""
        self.hold_until = max(self.hold_until, now + seconds)

    # --- sending ----------------------------------------------------------------------

    def reserve(self, now: float) -> float:
        """The time the caller may send its next message (>= now). Each call takes a
        slot: ask only when there is something to send, and send at that time."""
        start = max(now, self.hold_until)
        rate = self.effective(now)
        if rate is None:
            self._recent.append(start)
            return start
        slot = max(start, self.next_free)
        self.next_free = slot + 1.0 / rate
        self._recent.append(slot)
        return slot
