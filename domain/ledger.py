"""A campaign's per-message state, kept compact, with counters updated in O(1).

One `Ledger` lives inside each campaign actor and is touched only from that actor's
thread. Per message it keeps a level byte, a failed byte, a dirty byte and seven int32
timestamps, the played and failed ones made on first use (flat arrays, not objects: a
million messages must fit in well under 150 bytes each, the id index included).
Timestamps are tenths of a second relative to the campaign's first registration
(`base`), which covers ±6.8 years exactly and survives a round trip through SQLite
unchanged. Applying an event follows status.py; the class
counts, the latency histograms and the timeline move by the difference the event made,
so a statistics read never scans the messages.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, floordiv, mul, sub
from typing import Any

from domain.attempts import NEWER, OLDER, LatestAttempts
from domain.failure_book import FailureBook
from domain.failures import Failure, lookup
from domain.status import (
    FAILED_CLASS,
    ClassCounts,
    Level,
    message_class,
    statistics_from_counts,
)

# A provider time earlier than this before the message's registration is not believed.
MAX_BACKDATE_SECONDS = 24 * 3600
MAX_BACKDATE_TICKS = MAX_BACKDATE_SECONDS * 10


def bounded_time(t: int, registered: int) -> int:
    """A provider time (tenths) as counted: the registration time when it is more than
    MAX_BACKDATE before it, else itself (domain/attribution.py bounds send times alike)."""
    return registered if t < registered - MAX_BACKDATE_TICKS else t

# Timestamp slots: 0 queued (registration), 1..5 pending..played, 6 failed.
TS_SLOTS = 7
TS_PLAYED = 5
TS_FAILED = 6
# --- memory9 (issue 20): columns made on first use -------------------------------------
# Most campaigns never see a played or a failed status: those two columns are 8 bytes per
# message of NONE. They stay EMPTY arrays (every row NONE) until a row needs a time in
# them, then are filled to the ledger's length in place (the same array object, so a
# caller holding it stays right). Invariant: a lazy column is empty or as long as `level`.
LAZY_SLOTS = (TS_PLAYED, TS_FAILED)
# Plain ints for the hot path (an IntEnum attribute lookup costs more than the compare).
PENDING, DELIVERED, READ = int(Level.PENDING), int(Level.DELIVERED), int(Level.READ)
LEVEL_SLOTS = tuple(tuple(range(PENDING, top + 1)) for top in range(int(Level.PLAYED) + 1))
NONE = 2**31 - 1  # "not reached": larger than any time, so min() needs no special case
LOWEST = -(2**31) + 1
# Timeline series: sent, delivered, read, failed (what the chart draws).
SERIES = ("sent", "delivered", "read", "failed")


@dataclass(slots=True)
class DirtyRows:
    """Changed rows of one campaign, compact: a checkpoint may carry a million of them,
    and a tuple of floats per row would cost ~300 bytes where this costs ~35."""

    campaign_no: int
    base: int
    rows: array[int]
    levels: bytes
    faileds: bytes
    classes: bytes
    # pending, sent, delivered, read, played, failed; memory9: a column with every row
    # NONE may be empty (the ledger's lazy columns not made yet): `tick_column` fills it
    ticks: tuple[array[int], ...]
    # row -> (reason, failure, failure tick) for rows that keep a failure
    failures: dict[int, tuple[str | None, Failure, int]]
    # --- hotpath (issue 20): whether any row of the campaign is on a later attempt. Only
    # a later attempt clears a row's kept failure (`_start_attempt`); without one, a row
    # that keeps none never stored one, and the checkpoint skips clearing its columns.
    retried: bool = True

    def __len__(self) -> int:
        return len(self.rows)

    def tick_column(self, index: int) -> array[int]:
        """ticks[index] at the block's length (an empty one is every row NONE)."""
        column = self.ticks[index]
        return column if column or not self.rows else array("i", [NONE]) * len(self.rows)

    def params(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[Any, ...]]:
        """One UPDATE's parameters per row (of rows[lo:hi]): store/row_writes.py's
        STATE_COLUMNS, then campaign_no and row. Made a column at a time (C-level zip),
        then the few rows that keep a failure get their failure's fields."""
        rows = self.rows
        hi = len(rows) if hi is None else min(hi, len(rows))
        base, no, failures = self.base, self.campaign_no, self.failures
        count = hi - lo
        nothing = repeat(None, count)
        times = [[None if t == NONE else (t + base) / 10 for t in column[lo:hi]]
                 if column else [None] * count for column in self.ticks]
        out = list(zip(self.levels[lo:hi], self.faileds[lo:hi], self.classes[lo:hi], nothing,
                       *times, *([None] * count,) * 6, repeat(no, count), rows[lo:hi],
                       strict=False))
        # The few rows that keep a failure, found in the ascending rows by bisection: a
        # loop over every row would cost a million steps at a start with one failure.
        for row, (reason, f, tick) in failures.items():
            i = bisect_left(rows, row, lo, hi)
            if i < hi and rows[i] == row:
                current = out[i - lo]
                out[i - lo] = (*current[:3], reason, *current[4:10], f.source or None, f.code,
                               f.title, f.details, lookup(f.code).category,
                               (tick + base) / 10, no, row)
        return iter(out)


DIRTY_RUNS = re.compile(rb"[^\x00]+")  # runs of changed rows in a ledger's dirty bytes


def _runs_of(column: array[int], runs: list[tuple[int, int]]) -> array[int]:
    """The column's values in these [start, end) runs, one after the other.

    memory100 (issue 20): made at its final size and filled in place. Grown run by run,
    each column went through ~log(n) reallocations on the actor's thread, and the holes
    they left stayed in its glibc arena until the next malloc_trim."""
    out = array(column.typecode, bytes(column.itemsize * sum(b - a for a, b in runs)))
    at = 0
    for a, b in runs:
        out[at:at + b - a] = column[a:b]
        at += b - a
    return out


def to_tenths(seconds: float) -> int:
    """Epoch seconds -> tenths of a second, rounded half up (as SQLite does it)."""
    return int(seconds * 10 + 0.5)


# message_class for every (level, failed) as one byte table: code = level + 8 * failed.
CLASS_TABLE = bytes(message_class(code % 8, code >= 8) if code % 8 <= Level.PLAYED else 0
                    for code in range(256))


def _mask(classes: bytes, wanted: Iterable[int]) -> bytes:
    """1 where the row's class is one of `wanted`, else 0 (bytes.translate: C speed)."""
    wanted = set(wanted)
    table = bytes(1 if c in wanted else 0 for c in range(256))
    return classes.translate(table)


BUCKETS: dict[float, int] = {}  # duration -> LatencyHistogram bucket (shared, bounded)


def chart_entries(klass: int, level: int, pending: int, delivered: int, read: int,
                  failed_at: int, queued: int) -> tuple[int, int, int, int]:
    """When a message entered each chart series (sent, delivered, read, failed), in ticks;
    NONE = not in it. The one rule for `Ledger._contribution` and the bulk apply
    (domain/ledger_bulk.py): a failed message counts in the failed series only, from its
    failure (or its registration when the gateway gave no time)."""
    if klass == FAILED_CLASS:
        return (NONE, NONE, NONE, failed_at if failed_at != NONE else queued)
    if level < PENDING:
        return (NONE, NONE, NONE, NONE)
    return (pending, delivered if level >= DELIVERED else NONE,
            read if level >= READ else NONE, NONE)


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
        # Durations are whole tenths of a second, and a campaign's repeat a lot: the
        # bucket of each is computed once (a logarithm per status was 4 % of a batch).
        b = BUCKETS.get(seconds)
        if b is None:
            b = self._bucket(seconds)
            if len(BUCKETS) < 1 << 16:
                BUCKETS[seconds] = b
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
        self.base: int | None = None  # tenths of a second since the epoch, set by row 0
        self.level = bytearray()
        self.failed = bytearray()
        self.dirty = bytearray()  # 1 = changed since the last checkpoint
        self.dirty_count = 0
        self.ts = [array("i") for _ in range(TS_SLOTS)]
        self.failures = FailureBook()  # the kept failure per message, and the breakdown
        self.counts = ClassCounts.empty()
        self.deliver_latency = LatencyHistogram()
        self.read_latency = LatencyHistogram()
        self.timeline: dict[int, list[int]] = {}  # second -> per-series increments
        self.updated = LOWEST  # latest time seen, in ticks
        self.attempts = LatestAttempts()  # SPEC 9: sparse, see the attempts block below

    def __len__(self) -> int:
        return len(self.level)

    # --- time ------------------------------------------------------------------------

    def tick(self, seconds: float) -> int:
        """Seconds since the epoch -> int32 tenths relative to base (clamped).

        `int(x * 10 + 0.5)` on purpose: SQLite computes the same ticks when a campaign
        is loaded (`CAST(ts * 10 + 0.5 AS INTEGER)`, store/campaigns.py)."""
        if self.base is None:
            self.base = to_tenths(seconds)
        value = to_tenths(seconds) - self.base
        return LOWEST if value < LOWEST else (NONE - 1 if value >= NONE else value)

    def seconds(self, tick: int) -> float | None:
        if tick == NONE or self.base is None:
            return None
        return (tick + self.base) / 10

    def timestamp(self, slot: int, row: int) -> float | None:
        return self.seconds(self.tick_at(slot, row))

    def tick_at(self, slot: int, row: int) -> int:
        """The row's time in a slot, in ticks (NONE: not reached), lazy columns included."""
        column = self.ts[slot]
        return column[row] if column else NONE

    def column(self, slot: int) -> array[int]:
        """The slot's column, made now at the ledger's length if it is a lazy one not
        made yet (memory9): for a caller about to write a time into it."""
        column = self.ts[slot]
        if not column and self.level:
            column.extend(array("i", [NONE]) * len(self.level))
        return column

    def column_values(self, slot: int, lo: int = 0, hi: int | None = None) -> array[int]:
        """A copy of rows lo..hi of the slot's column (NONE-filled for a lazy one not made
        yet), without making it."""
        hi = len(self.level) if hi is None else min(hi, len(self.level))
        column = self.ts[slot]
        return column[lo:hi] if column else array("i", [NONE]) * max(0, hi - lo)

    @property
    def updated_at(self) -> float | None:
        return None if self.updated == LOWEST else self.seconds(self.updated)

    # --- building ---------------------------------------------------------------------

    def add(
        self,
        row: int,
        registered_at: float,
        level: int = Level.QUEUED,
        failed: bool = False,
        reason: str | None = None,
        timestamps: Sequence[float | None] | None = None,
        failure: Failure | None = None,
        failure_at: float | None = None,
    ) -> None:
        """Append row `row` (rows arrive in order; a gap is filled with queued rows)."""
        if row < len(self.level):
            return  # registered already: registration is idempotent
        self._grow(row + 1 - len(self.level), self.tick(registered_at))
        self.fill(row, registered_at, level, failed, reason, timestamps, failure, failure_at)

    def fill(
        self,
        row: int,
        registered_at: float,
        level: int = Level.QUEUED,
        failed: bool = False,
        reason: str | None = None,
        timestamps: Sequence[float | None] | None = None,
        failure: Failure | None = None,
        failure_at: float | None = None,
    ) -> None:
        """Set a fresh row that `add` or `reserve` has just made room for."""
        self.ts[0][row] = self.tick(registered_at)
        # A fresh queued row has no share in the timeline yet, so stamps can be set first.
        if timestamps is not None:
            for slot, value in enumerate(timestamps):
                if value:
                    self.column(slot)[row] = self.tick(value)
        for slot in range(TS_SLOTS):
            t = self.tick_at(slot, row)
            if t != NONE and t > self.updated:
                self.updated = t
        failure_tick = self.tick(failure_at) if failure_at else self.tick_at(TS_FAILED, row)
        if failure_tick == NONE:
            failure_tick = self.ts[0][row]
        self._set_state(row, level, failed, reason, failure, failure_tick)

    def reserve(self, rows: int, registered_at: float) -> None:
        """Grow every array once for a batch of new rows (one realloc, not thousands:
        growing eight arrays element by element fragments the heap)."""
        if rows > len(self.level):
            self._grow(rows - len(self.level), self.tick(registered_at))

    def _grow(self, count: int, queued: int) -> None:
        self.counts.counts[Level.QUEUED] += count
        self.level.extend(bytes(count))
        self.failed.extend(bytes(count))
        self.dirty.extend(bytes(count))
        self.ts[0].extend(array("i", [queued]) * count)
        empty = array("i", [NONE]) * count
        for slot in range(1, TS_SLOTS):
            if slot < TS_PLAYED or self.ts[slot]:  # a lazy column grows once it is made
                self.ts[slot].extend(empty)

    def _set_state(self, row: int, level: int, failed: bool, reason: str | None,
                   failure: Failure | None = None, failure_tick: int = 0) -> None:
        """Load a stored state without touching timestamps beyond what is given."""
        old_class = message_class(self.level[row], bool(self.failed[row]))
        new_class = message_class(level, failed)
        self._account(row, -1)
        if old_class == FAILED_CLASS:
            self.failures.count(row, -1)
        self.level[row] = level
        self.failed[row] = 1 if failed else 0
        if reason or failure:
            self.failures.set(row, failure_tick, failure, reason)
        if new_class == FAILED_CLASS:
            self.failures.count(row, +1)
        self._account(row, +1)
        self.counts.move(old_class, new_class)

    # --- applying events --------------------------------------------------------------

    def apply(self, row: int, level: int, failed: bool, at: float, reason: str | None,
              failure: Failure | None = None, attempt: int = 1) -> bool:
        """Merge one event of attempt `attempt` into the row; True when anything visible
        changed."""
        started = False
        if attempt != 1 or self.attempts:  # the common case (one attempt) skips this
            failed, reason, failure, started = self._attempt_gate(row, attempt, failed,
                                                                  reason, failure)
        t = self.tick(at)
        ts = self.ts
        # --- times outside the message's life (issue 22, docs/architecture.md "Times") --
        # A provider time more than MAX_BACKDATE before the row was registered (a
        # replayed fixture, a badly set gateway clock) counts as the registration time,
        # so the chart and the time-to-X figures stay inside the campaign. Closer times
        # are real: a gateway often sends before campaignd hears of the message. The
        # bound is the row's own queued time, fixed at registration: the result is still
        # a function of the event set.
        t = bounded_time(t, ts[0][row])
        slots = LEVEL_SLOTS[level]
        if level > READ and not ts[TS_PLAYED]:
            self.column(TS_PLAYED)
        if failed and not ts[TS_FAILED]:
            self.column(TS_FAILED)
        old_level = self.level[row]
        old_failed = self.failed[row]
        changes = started or level > old_level or (failed and not old_failed)
        if not changes:
            # A duplicate or older event can still carry an earlier timestamp.
            for slot in slots:
                if t < ts[slot][row]:
                    changes = True
                    break
            if failed and (t < ts[TS_FAILED][row]
                           or self.failures.better(row, t, failure, reason)):
                changes = True
            if not changes:
                return False
        old_class = message_class(old_level, bool(old_failed))
        before = self._shares(row)
        if level > old_level:
            self.level[row] = level
        for slot in slots:
            if t < ts[slot][row]:
                ts[slot][row] = t
        if failed:
            self.failed[row] = 1
            if t < ts[TS_FAILED][row]:
                ts[TS_FAILED][row] = t
            # The kept failure is the first by failures.rank, whatever the arrival order.
            self.failures.offer(row, t, failure, reason, old_class == FAILED_CLASS)
        after = self._shares(row)
        if after != before:
            self._reshare(before, after)
        counts = self.counts.counts
        counts[old_class] -= 1
        new_class = message_class(self.level[row], self.failed[row])
        counts[new_class] += 1
        if new_class != old_class and FAILED_CLASS in (old_class, new_class):
            self.failures.count(row, 1 if new_class == FAILED_CLASS else -1)
        if not self.dirty[row]:
            self.dirty[row] = 1
            self.dirty_count += 1
        if t > self.updated:
            self.updated = t
        return True

    # --- attempts (SPEC 9, domain/attempts.py) -----------------------------------------
    # Only the latest attempt's failure counts: an event of an older attempt brings its
    # level (delivery evidence) but not its failure; the first event of a newer attempt
    # clears the row's failure, its time and reason before it is merged.

    def _attempt_gate(self, row: int, attempt: int, failed: bool, reason: str | None,
                      failure: Failure | None
                      ) -> tuple[bool, str | None, Failure | None, bool]:
        """(failed, reason, failure, started a newer attempt) as the event may apply them."""
        order = self.attempts.compare(row, attempt)
        if order == OLDER:
            return False, None, None, False
        if order == NEWER:
            self._start_attempt(row, attempt)
            return failed, reason, failure, True
        return failed, reason, failure, False

    def _start_attempt(self, row: int, attempt: int) -> None:
        self.attempts.advance(row, attempt)
        if not self.failed[row] and self.tick_at(TS_FAILED, row) == NONE \
                and row not in self.failures.kept:
            return
        old_class = self.message_class(row)
        before = self._shares(row)
        if old_class == FAILED_CLASS:
            self.failures.count(row, -1)  # leaves the failure breakdown
        self.failed[row] = 0
        if self.ts[TS_FAILED]:
            self.ts[TS_FAILED][row] = NONE
        self.failures.kept.pop(row, None)  # the old attempt's failure is history now
        after = self._shares(row)
        if after != before:
            self._reshare(before, after)
        self.counts.move(old_class, self.message_class(row))

    def load_attempts(self, pairs: Iterable[tuple[int, ...]]) -> None:
        """Latest attempt numbers as stored (rows above attempt 1 only), each optionally
        with its latest accepted attempt above the first and that one's tick."""
        self.attempts.load(pairs)

    def attempt_accepted(self, row: int, attempt: int, at: float) -> bool:
        """The gateway accepted attempt `attempt` of the row at `at` (its registration at
        pending); True when the row's send time for reply attribution moved."""
        if attempt <= 1:
            return False  # the first attempt's send time is the row's pending time
        return self.attempts.accepted(row, attempt, bounded_time(self.tick(at),
                                                                 self.ts[0][row]))

    def sent_tick(self, row: int) -> tuple[int, int]:
        """(attempt, tick) of the latest message sent to the recipient (SPEC 6.2): its
        latest accepted attempt above the first, else the row's pending time (NONE: never
        sent) as attempt 1."""
        sent = self.attempts.sent(row)
        return sent if sent is not None else (1, self.ts[1][row])

    def sent_at(self, row: int) -> float | None:
        """When the latest message was sent to the recipient, in seconds (None: never)."""
        return self.seconds(self.sent_tick(row)[1])

    # --- derived figures ----------------------------------------------------------------

    def message_class(self, row: int) -> int:
        return message_class(self.level[row], bool(self.failed[row]))

    def _contribution(self, row: int) -> tuple[int, int, int, int]:
        """When this message entered each chart series, in ticks (NONE = not in it)."""
        level = self.level[row]
        ts = self.ts
        failed_at = ts[TS_FAILED]
        return chart_entries(message_class(level, self.failed[row]), level, ts[PENDING][row],
                             ts[DELIVERED][row], ts[READ][row],
                             failed_at[row] if failed_at else NONE, ts[0][row])

    def _shares(self, row: int) -> tuple[tuple[int, int, int, int], int]:
        """The row's chart entry times and the start its latencies are measured from."""
        contribution = self._contribution(row)
        sent = contribution[0]
        return contribution, (sent if sent != NONE else self.ts[0][row])

    def _reshare(self, before: tuple[tuple[int, int, int, int], int],
                 after: tuple[tuple[int, int, int, int], int]) -> None:
        """Move only the timeline buckets and latencies that an event changed."""
        (old, old_start), (new, new_start) = before, after
        base = self.base or 0
        timeline = self.timeline
        for series in range(4):
            if old[series] == new[series]:
                continue
            for when, sign in ((old[series], -1), (new[series], 1)):
                if when == NONE:
                    continue
                second = (when + base) // 10
                bucket = timeline.get(second)
                if bucket is None:
                    bucket = timeline[second] = [0, 0, 0, 0]
                bucket[series] += sign
                if not any(bucket):
                    del timeline[second]
        for index, histogram in ((1, self.deliver_latency), (2, self.read_latency)):
            if old[index] == new[index] and old_start == new_start:
                continue
            if old[index] != NONE:
                histogram.add(max(0, old[index] - old_start) / 10, -1)
            if new[index] != NONE:
                histogram.add(max(0, new[index] - new_start) / 10, 1)

    def _account(self, row: int, sign: int) -> None:
        """Add (+1) or remove (-1) this row's share of the timeline and latencies."""
        contribution = self._contribution(row)
        if contribution == (NONE, NONE, NONE, NONE):
            return
        base = self.base or 0
        timeline = self.timeline
        for series, when in enumerate(contribution):
            if when != NONE:
                second = (when + base) // 10
                bucket = timeline.get(second)
                if bucket is None:
                    bucket = timeline[second] = [0, 0, 0, 0]
                bucket[series] += sign
                if not any(bucket):
                    del timeline[second]
        sent, delivered, read, _ = contribution
        start = sent if sent != NONE else self.ts[0][row]
        if delivered != NONE:
            self.deliver_latency.add(max(0, delivered - start) / 10, sign)
        if read != NONE:
            self.read_latency.add(max(0, read - start) / 10, sign)

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = statistics_from_counts(self.counts.counts)
        stats["failures"] = self.failures.statistics()
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
        """The row as stored: level, failed, class, reason, timestamps pending..failed,
        and the kept failure (a `Failure` or None)."""
        return (
            self.level[row],
            self.failed[row],
            self.message_class(row),
            self.failures.reason(row),
            *(self.seconds(self.tick_at(slot, row)) for slot in range(1, TS_SLOTS)),
            self.failures.failure(row),
        )

    def failure_at(self, row: int) -> float | None:
        """When the kept failure happened (it is not always the first failure's time:
        an informative failure is kept over an earlier one without a reason)."""
        tick = self.failures.tick(row)
        return None if tick is None else self.seconds(tick)

    def take_dirty_rows(self, campaign_no: int) -> DirtyRows | None:
        """The changed rows in compact form, for a checkpoint; None when nothing changed."""
        if not self.dirty_count:
            return None
        dirty = self.dirty
        # Only the span from the first changed row to the last (a flood changes a window
        # of rows between two collections; an image under a flood is taken every 20,000
        # events): scanning and renewing all of a million-row ledger's marks cost ~20 ms
        # of the actor's time per collection, more than the rows taken.
        lo, hi = dirty.find(1), dirty.rfind(1) + 1
        if lo < 0:  # counted but none marked: nothing to take
            lo = hi = 0
        rows = array("I", compress(range(lo, hi), dirty[lo:hi]))
        level, failed, ts = self.level, self.failed, self.ts
        kept = self.failures.kept
        # rows that keep a failure are few: picked from those, not by a Python step per
        # dirty row (a start after a flood hands a million rows to its first checkpoint)
        failing = [r for r in kept if r < len(dirty) and dirty[r]] if kept else []
        failing.sort()
        runs = [m.span() for m in DIRTY_RUNS.finditer(dirty, lo, hi)]
        if len(dirty) == len(self.level):  # the marks taken are cleared in place
            dirty[lo:hi] = bytes(hi - lo)
            self.dirty_count = 0
        else:
            self.clear_dirty()
        if len(runs) * 8 <= len(rows):
            # Changed rows mostly in runs (a flood raises messages in order, a start marks
            # an image's pending rows): copied a run at a time, where a step per row costs
            # ~1 s per million on the actor's thread.
            levels = b"".join([level[a:b] for a, b in runs])
            faileds = b"".join([failed[a:b] for a, b in runs])
            ticks = tuple(_runs_of(ts[slot], runs) if ts[slot] else array("i")
                          for slot in range(1, TS_SLOTS))
        else:
            levels = bytes(map(level.__getitem__, rows))  # C-level loops: a checkpoint
            faileds = bytes(map(failed.__getitem__, rows))  # may carry a million rows
            ticks = tuple(array("i", map(ts[slot].__getitem__, rows)) if ts[slot] else
                          array("i") for slot in range(1, TS_SLOTS))  # unmade: NONE
        return DirtyRows(
            campaign_no, self.base or 0, rows, levels, faileds,
            bytes(map(add, levels, map(mul, faileds, repeat(8)))).translate(CLASS_TABLE),
            ticks,
            {r: (kept[r].reason, kept[r].failure, kept[r].tick) for r in failing},
            bool(self.attempts),
        )

    def take_dirty(self) -> list[int]:
        """Rows changed since the last call (a C-speed scan of one byte per message)."""
        if not self.dirty_count:
            return []
        rows = list(compress(range(len(self.dirty)), self.dirty))
        self.clear_dirty()
        return rows

    def clear_dirty(self) -> None:
        self.dirty = bytearray(len(self.level))
        self.dirty_count = 0

    def mark_dirty(self, rows: Iterable[int]) -> None:
        """Have the next checkpoint write these rows (a recovery image's pending ones)."""
        dirty = self.dirty
        size = len(dirty)
        # A plain loop, then counted once: 70 ns per row where map(dirty.__setitem__, ...)
        # took 260 (a method-wrapper call per row) and held the GIL for all of it (three
        # million listed rows after a flood: 0.2 s against 0.8 s).
        for row in rows:
            if row < size:
                dirty[row] = 1
        self.dirty_count = size - dirty.count(0)

    def load_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows as stored: (row, level, failed, reason, ts_queued, ts_pending..ts_failed,
        and optionally failure_source, failure_code, failure_title, failure_details,
        failure_at).

        A campaign coming back from SQLite arrives in contiguous chunks; those are loaded
        a column at a time (a million rows in about a second instead of eight). Anything
        else goes row by row."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        start = len(self.level)
        if rows[0][0] != start or rows[-1][0] != start + len(rows) - 1:
            for stored in rows:
                self._add_stored(stored)
            return
        try:
            self._load_columns(list(zip(*rows, strict=True)))
        except (OverflowError, TypeError, ValueError):  # a time out of range: go row by row
            for stored in rows[len(self.level) - start:]:
                self._add_stored(stored)

    def _add_stored(self, stored: tuple[Any, ...]) -> None:
        row, level, failed, reason, *rest = stored
        stamps, extra = rest[:TS_SLOTS], rest[TS_SLOTS:]
        failure = Failure(extra[0] or "", *extra[1:4]) if extra and extra[1:4] != (
            None, None, None) else None
        self.add(row, stamps[0] or 0.0, level, bool(failed), reason, stamps, failure,
                 extra[4] if extra else None)

    def _load_columns(self, cols: list[tuple[Any, ...]]) -> None:
        stamps = cols[4:]
        if self.base is None:
            self.tick(stamps[0][0] or 0.0)
        base = self.base or 0
        ticks = [[NONE if not v else to_tenths(v) - base for v in column]
                 for column in stamps[:TS_SLOTS]]
        failure_cols = list(stamps[TS_SLOTS:])
        if failure_cols:
            failure_cols[4] = [NONE if not v else to_tenths(v) - base for v in failure_cols[4]]
        self.load_ticks(base, [*cols[:4], *ticks, *failure_cols])

    def load_ticks(self, base: int, cols: Sequence[Sequence[Any]]) -> None:
        """Load contiguous rows given as columns, times already in ticks of `base`:
        (rows, levels, faileds, reasons, 7 tick columns with NONE for "not reached"),
        optionally followed by the kept failures' columns (source, code, title, details,
        failure tick)."""
        if self.base is None:
            self.base = base
        if base != self.base:
            raise ValueError("rows loaded against another base")
        row_numbers, levels, faileds, reasons = cols[0], cols[1], cols[2], cols[3]
        # Both raise before any change (a time out of range): the caller goes row by row.
        ticks = [array("i", column) for column in cols[4:4 + TS_SLOTS]]
        failure_cols = [*cols[4 + TS_SLOTS:8 + TS_SLOTS],
                        array("i", cols[8 + TS_SLOTS])] if len(cols) > 4 + TS_SLOTS else []
        for slot in range(TS_SLOTS):  # before `level` grows: a lazy column is made to it
            if slot in LAZY_SLOTS and not self.ts[slot] and \
                    ticks[slot].count(NONE) == len(ticks[slot]):
                continue  # still every row NONE: the lazy column stays unmade
            self.column(slot).extend(ticks[slot])
        self.level.extend(levels)
        self.failed.extend(faileds)
        self.dirty.extend(bytes(len(levels)))
        classes = bytes(map(add, levels, map(mul, faileds, repeat(8)))).translate(CLASS_TABLE)
        self._load_failures(row_numbers, reasons, ticks[TS_FAILED], failure_cols, classes)
        for cls in range(FAILED_CLASS + 1):
            self.counts.counts[cls] += classes.count(cls)
        latest = max((max(filter(NONE.__ne__, t), default=LOWEST) for t in ticks),
                     default=LOWEST)
        self.updated = max(self.updated, latest)
        self._account_columns(classes, ticks)

    def _load_failures(self, row_numbers: Sequence[int], reasons: Sequence[str | None],
                       failed_ticks: Sequence[int], cols: Sequence[Sequence[Any]],
                       classes: bytes) -> None:
        """The kept failures of loaded rows, and the breakdown of the failed ones. Rows
        stored by release 0.1 have a reason only: its fields come from the text."""
        book = self.failures
        if cols:
            sources, codes, titles, details, ticks = cols[:5]
            for i, row in enumerate(row_numbers):
                if reasons[i] or codes[i] or titles[i]:
                    failure = (Failure(sources[i] or "", codes[i], titles[i], details[i])
                               if codes[i] or titles[i] or details[i] else None)
                    tick = ticks[i] if ticks[i] != NONE else failed_ticks[i]
                    book.set(row, tick, failure, reasons[i])
        else:
            for i, row in enumerate(row_numbers):
                if reasons[i]:
                    book.set(row, failed_ticks[i], None, reasons[i])
        index = classes.find(FAILED_CLASS)
        while index != -1:
            book.count(row_numbers[index], +1)
            index = classes.find(FAILED_CLASS, index + 1)

    def _account_columns(self, classes: bytes, ticks: list[array[int]]) -> None:
        """The chart and latency shares of freshly loaded rows, a series at a time, with
        C-level iteration (map / compress / Counter) over byte masks of the classes."""
        base = self.base or 0
        queued, pending, delivered, read, failed_at = (
            ticks[0], ticks[PENDING], ticks[DELIVERED], ticks[READ], ticks[TS_FAILED])
        sent_mask = _mask(classes, range(PENDING, FAILED_CLASS))
        delivered_mask = _mask(classes, range(DELIVERED, FAILED_CLASS))
        read_mask = _mask(classes, range(READ, FAILED_CLASS))
        failed_mask = _mask(classes, (FAILED_CLASS,))
        failed_when = [q if f == NONE else f
                       for f, q in zip(compress(failed_at, failed_mask),
                                       compress(queued, failed_mask), strict=True)]
        series = (compress(pending, sent_mask), compress(delivered, delivered_mask),
                  compress(read, read_mask), failed_when)
        timeline = self.timeline
        for index, whens in enumerate(series):
            seconds = map(floordiv, map(add, whens, repeat(base)), repeat(10))
            for second, count in Counter(seconds).items():
                timeline.setdefault(second, [0, 0, 0, 0])[index] += count
        # A delivered or read row has a pending time (apply sets every level up to its
        # own), unless it was stored without one: those few start from their queued time.
        starts = array("i", pending)
        if NONE in starts:
            for i, value in enumerate(starts):
                if value == NONE:
                    starts[i] = queued[i]
        for histogram, mask, ends in ((self.deliver_latency, delivered_mask, delivered),
                                      (self.read_latency, read_mask, read)):
            durations = Counter(map(sub, compress(ends, mask), compress(starts, mask)))
            for duration, count in durations.items():
                histogram.add(max(0, duration) / 10, count)
