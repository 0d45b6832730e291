"""A campaign's per-message state, kept compact, with counters updated in O(1).

One `Ledger` lives inside each campaign actor and is touched only from that actor's
thread. Per message it keeps a level byte, a failed byte and one float per timestamp
(flat arrays rather than objects: a million messages must fit in ~100 bytes each).
Applying an event follows status.py exactly; the class counts, the latency histograms
and the timeline are adjusted by the difference the event made, so a statistics read
never scans the messages.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any

from actors.status import (
    FAILED_CLASS,
    ClassCounts,
    Level,
    message_class,
    statistics_from_counts,
)

# Timestamp slots: 0 queued (registration), 1..5 pending..played, 6 failed.
TS_SLOTS = 7
TS_FAILED = 6
# Timeline series: sent, delivered, read, failed (what the chart draws).
SERIES = ("sent", "delivered", "read", "failed")


class LatencyHistogram:
    """Durations in log-spaced buckets (~10 % wide) for median / p90 in O(buckets)."""

    BASE = 1.1
    OFFSET = 0.05  # seconds; durations below fall into bucket 0

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def _bucket(self, seconds: float) -> int:
        return max(0, int(math.log(max(seconds, 0.0) / self.OFFSET + 1.0, self.BASE)))

    def add(self, seconds: float, sign: int = 1) -> None:
        b = self._bucket(seconds)
        n = self.buckets.get(b, 0) + sign
        if n:
            self.buckets[b] = n
        else:
            self.buckets.pop(b, None)
        self.count += sign

    def quantile(self, q: float) -> float | None:
        if self.count <= 0:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen > rank:
                low = (self.BASE**b - 1.0) * self.OFFSET
                high = (self.BASE ** (b + 1) - 1.0) * self.OFFSET
                return round((low + high) / 2, 2)
        return None


class Ledger:
    """All messages of one campaign, addressed by row number (0..n-1)."""

    def __init__(self) -> None:
        self.level = bytearray()
        self.failed = bytearray()
        self.ts = [array("d") for _ in range(TS_SLOTS)]  # 0.0 = not reached
        self.reasons: dict[int, str] = {}
        self.counts = ClassCounts.empty()
        self.dirty: set[int] = set()
        self.deliver_latency = LatencyHistogram()
        self.read_latency = LatencyHistogram()
        self.timeline: dict[int, list[int]] = {}  # second -> per-series increments
        self.updated_at = 0.0

    def __len__(self) -> int:
        return len(self.level)

    # --- building ---------------------------------------------------------------------

    def add(
        self,
        row: int,
        registered_at: float,
        level: int = Level.QUEUED,
        failed: bool = False,
        reason: str | None = None,
        timestamps: Iterable[float] | None = None,
    ) -> None:
        """Append row `row` (rows arrive in order; a gap is filled with queued rows)."""
        while len(self.level) < row:
            self._append_empty(registered_at)
        if row < len(self.level):
            return  # registered already: registration is idempotent
        self._append_empty(registered_at)
        self.updated_at = max(self.updated_at, registered_at)
        # A fresh queued row has no share in the timeline yet, so stamps can be set first.
        if timestamps is not None:
            for slot, value in enumerate(timestamps):
                if value:
                    self.ts[slot][row] = value
                    self.updated_at = max(self.updated_at, value)
        self._set_state(row, level, failed, reason)

    def _append_empty(self, registered_at: float) -> None:
        self.counts.move(None, Level.QUEUED)
        self.level.append(Level.QUEUED)
        self.failed.append(0)
        self.ts[0].append(registered_at)
        for slot in range(1, TS_SLOTS):
            self.ts[slot].append(0.0)

    def _set_state(self, row: int, level: int, failed: bool, reason: str | None) -> None:
        """Load a stored state without touching timestamps beyond what is given."""
        old_class = message_class(self.level[row], bool(self.failed[row]))
        self._account(row, -1)
        self.level[row] = level
        self.failed[row] = 1 if failed else 0
        if reason:
            self.reasons[row] = reason
        self._account(row, +1)
        self.counts.move(old_class, message_class(level, failed))

    # --- applying events --------------------------------------------------------------

    def apply(self, row: int, level: int, failed: bool, at: float, reason: str | None) -> bool:
        """Merge one event into the row; True when anything visible changed."""
        old_level = self.level[row]
        old_failed = self.failed[row]
        ts = self.ts
        changes = level > old_level or (failed and not old_failed)
        if not changes:
            # A duplicate or older event can still carry an earlier timestamp.
            for slot in range(Level.PENDING, level + 1):
                current = ts[slot][row]
                if current == 0.0 or at < current:
                    changes = True
                    break
            if failed and (ts[TS_FAILED][row] == 0.0 or at < ts[TS_FAILED][row]):
                changes = True
            if reason and failed and row not in self.reasons:
                changes = True
            if not changes:
                return False
        old_class = message_class(old_level, bool(old_failed))
        self._account(row, -1)
        if level > old_level:
            self.level[row] = level
        for slot in range(Level.PENDING, level + 1):
            current = ts[slot][row]
            if current == 0.0 or at < current:
                ts[slot][row] = at
        if failed:
            self.failed[row] = 1
            current = ts[TS_FAILED][row]
            if current == 0.0 or at < current:
                ts[TS_FAILED][row] = at
            if reason:
                self.reasons.setdefault(row, reason)
        self._account(row, +1)
        self.counts.move(old_class, message_class(self.level[row], bool(self.failed[row])))
        self.dirty.add(row)
        if at > self.updated_at:
            self.updated_at = at
        return True

    # --- derived figures ----------------------------------------------------------------

    def message_class(self, row: int) -> int:
        return message_class(self.level[row], bool(self.failed[row]))

    def _contribution(self, row: int) -> tuple[float, float, float, float]:
        """When this message entered each chart series (0.0 = not in it)."""
        cls = message_class(self.level[row], bool(self.failed[row]))
        ts = self.ts
        if cls == FAILED_CLASS:
            return (0.0, 0.0, 0.0, ts[TS_FAILED][row] or ts[0][row])
        sent = ts[Level.PENDING][row] if cls >= Level.PENDING else 0.0
        delivered = ts[Level.DELIVERED][row] if cls >= Level.DELIVERED else 0.0
        read = ts[Level.READ][row] if cls >= Level.READ else 0.0
        return (sent, delivered, read, 0.0)

    def _account(self, row: int, sign: int) -> None:
        """Add (+1) or remove (-1) this row's share of the timeline and latencies."""
        sent, delivered, read, failed = self._contribution(row)
        for series, when in enumerate((sent, delivered, read, failed)):
            if when:
                bucket = self.timeline.setdefault(int(when), [0, 0, 0, 0])
                bucket[series] += sign
                if not any(bucket):
                    del self.timeline[int(when)]
        start = sent or self.ts[0][row]
        if delivered and start:
            self.deliver_latency.add(max(0.0, delivered - start), sign)
        if read and start:
            self.read_latency.add(max(0.0, read - start), sign)

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = statistics_from_counts(self.counts.counts)
        stats["time_to_deliver"] = {
            "median": self.deliver_latency.quantile(0.5),
            "p90": self.deliver_latency.quantile(0.9),
        }
        stats["time_to_read"] = {
            "median": self.read_latency.quantile(0.5),
            "p90": self.read_latency.quantile(0.9),
        }
        return stats

    def timeline_points(self, points: int = 120) -> dict[str, Any]:
        """Cumulative counts per series, in at most `points` evenly spaced steps."""
        if not self.timeline:
            return {"resolution": 0, "points": []}
        seconds = sorted(self.timeline)
        start, end = seconds[0], seconds[-1]
        step = max(1, math.ceil((end - start + 1) / max(1, points)))
        out: list[dict[str, Any]] = []
        running = [0, 0, 0, 0]
        idx = 0
        t = start
        while t <= end:
            limit = t + step
            while idx < len(seconds) and seconds[idx] < limit:
                for i, v in enumerate(self.timeline[seconds[idx]]):
                    running[i] += v
                idx += 1
            out.append({"t": limit, **dict(zip(SERIES, running, strict=True))})
            t = limit
        return {"resolution": step, "points": out}

    def row_state(self, row: int) -> tuple[Any, ...]:
        """The row as stored: level, failed, class, reason, timestamps pending..failed."""
        return (
            self.level[row],
            self.failed[row],
            self.message_class(row),
            self.reasons.get(row),
            *(self.ts[slot][row] or None for slot in range(1, TS_SLOTS)),
        )

    def take_dirty(self) -> list[int]:
        rows = sorted(self.dirty)
        self.dirty.clear()
        return rows

    def load_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows as stored: (row, level, failed, reason, ts_queued, ts_pending..ts_failed)."""
        for row, level, failed, reason, *stamps in rows:
            self.add(row, stamps[0] or 0.0, level, bool(failed), reason, stamps)
