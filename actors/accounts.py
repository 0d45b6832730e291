"""Gateway accounts (SPEC 9): one effective rate per account, shared by its campaigns.

Every configured gateway is one account (one Cloud API phone number, one whatsapp-web.js
or WAHA session). Its `AccountPacer` (domain/pacing.py) is touched by the threads of
every sender actor on it, hence the lock here; the arithmetic stays pure.
"""

from __future__ import annotations

import threading
from typing import Any

from core.clock import SYSTEM_CLOCK, Clock
from domain.pacing import AccountPacer, Aimd
from domain.timefmt import iso_time

COEXISTENCE_RATE = 20.0  # Meta: numbers also used in the WhatsApp Business app


class SharedAccount:
    def __init__(self, name: str, rate: float, aimd: Aimd | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.name = name
        self.clock = clock
        self.pacer = AccountPacer(rate, aimd)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """The monotonic time at which the caller may send (see AccountPacer.reserve)."""
        with self._lock:
            return self.pacer.reserve(self.clock.monotonic())

    def hold_until(self) -> float:
        with self._lock:
            return self.pacer.hold_until

    def throttled(self, retry_after: float | None) -> bool:
        with self._lock:
            return self.pacer.throttled(self.clock.monotonic(), retry_after)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self.pacer.hold(self.clock.monotonic(), seconds)

    def rate(self) -> float | None:
        """The effective rate now (None: no limit)."""
        with self._lock:
            rate = self.pacer.effective(self.clock.monotonic())
        return None if rate is None else round(rate, 2)

    def snapshot(self) -> dict[str, Any]:
        """What the API and the page show about the account."""
        with self._lock:
            now = self.clock.monotonic()
            rate = self.pacer.effective(now)
            wall = self.clock.time()
            last = self.pacer.last_decrease
            return {
                "gateway": self.name,
                "configured_rate": self.pacer.ceiling or None,
                "effective_rate": None if rate is None else round(rate, 2),
                "throttled_count": self.pacer.throttles,
                "last_throttled_at": iso_time(wall - (now - last)) if last is not None
                else None,
                "held_until": iso_time(wall + (self.pacer.hold_until - now))
                if self.pacer.hold_until > now else None,
            }
