"""The clock the sender reads, so that tests can hold it in their hand.

Rates, retries and send windows are decided from `monotonic()` (intervals) and `time()`
(wall time, for windows and schedules). Production uses the system clock; a test passes
a clock it advances itself and so checks a rate or a window without waiting for one.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()
