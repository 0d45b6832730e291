"""Many events into one ledger in one call: the same ledger as `Ledger.apply` per event.

A restart hands each campaign actor the journal after its image in bulks of tens of
thousands of statuses (actors/runtime.py `_replay`), and a Cloud batch brings up to a
thousand; `Ledger.apply` costs ~5 µs per event, most of it the row's chart and latency
shares (`_shares` / `_reshare`), its class counts and the method calls around them, done
again for every event of the same row. Here the plain events (not failed, of attempt 1:
nearly all of a flood) go through one loop that changes only the
row's level, times and dirty mark, exactly as `apply` would in the same order (so each
event is found applied or duplicate exactly as there); the derived parts move once per
changed row at the end: the class counts, the failure breakdown's membership, and the
chart's and histograms' buckets by the row's net change, summed over the bulk first.

Any other event (a failure, an attempt after the first) goes through
`Ledger.apply` after its row's pending derived parts are settled, so the ledger is
consistent wherever `apply` looks. The derived parts are sums of per-row terms, so moving
them by each row's net change gives what moving them event by event gives (the
hypothesis test tests/test_ledger_bulk.py compares the two over shuffled, duplicated
events with failures, attempts and times out of range). Touched only from the campaign
actor's thread, like the ledger.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from domain.ledger import (
    DELIVERED,
    LEVEL_SLOTS,
    LOWEST,
    MAX_BACKDATE_TICKS,
    NONE,
    PENDING,
    READ,
    TS_FAILED,
    TS_PLAYED,
    Ledger,
    chart_entries,
)
from domain.status import FAILED_CLASS


def apply_events(ledger: Ledger, items: Sequence[tuple[int, Any]],
                 attempts: dict[int, int] | None = None) -> tuple[list[int], int, int]:
    """Apply (row, event) pairs in order; event: a StatusEvent (message id, level, failed,
    at, reason, recipient, failure). `attempts`: position -> attempt number for events of
    a later attempt (actors/messages.py CampaignEvents). Rows the ledger does not have
    are skipped.

    Returns (the changed rows, each once, in the order they first changed; how many
    events changed something; how many changed nothing)."""
    size = len(ledger.level)
    base = ledger.base
    if base is None:  # no rows yet (a ledger with rows has its base): nothing to apply
        return [], 0, 0
    level_of, dirty, ts = ledger.level, ledger.dirty, ledger.ts
    queued, pending, delivered, read = ts[0], ts[PENDING], ts[DELIVERED], ts[READ]
    # A changed row's level, pending, delivered and read times before its first change in
    # this bulk (all a plain event can change), 4 ints from first[row]: flat, so a bulk
    # of 20,000 rows leaves the collector nothing to walk. Its keys are the changed rows.
    first: dict[int, int] = {}
    saved = array("q")
    unknown = duplicate = 0
    dirty_count = ledger.dirty_count
    updated = ledger.updated
    position = -1
    for row, (_, level, failed, at, reason, _, failure) in items:
        position += 1
        if row >= size:
            unknown += 1
            continue
        # An attempt-1 status that is not a failure needs no attempt bookkeeping: on a row
        # whose latest attempt is later, `apply` drops only an older attempt's failure.
        attempt = attempts.get(position, 1) if attempts else 1
        if failed or attempt != 1:
            # The rare kinds: through `apply`, with the row's derived parts settled first
            # and its state taken again after (`apply` moved its derived parts itself).
            if row in first:
                _settle(ledger, {row: first[row]}, saved)
            ledger.dirty_count = dirty_count
            ledger.updated = updated
            if ledger.apply(row, level, failed, at, reason, failure, attempt):
                first[row] = len(saved)
                saved.extend((level_of[row], pending[row], delivered[row], read[row]))
            else:
                duplicate += 1
                if row in first:
                    first[row] = len(saved)
                    saved.extend((level_of[row], pending[row], delivered[row], read[row]))
            dirty_count = ledger.dirty_count
            updated = ledger.updated
            continue
        # Ledger.tick and bounded_time, inline (the same arithmetic).
        t = int(at * 10 + 0.5) - base
        if t < LOWEST:
            t = LOWEST
        elif t >= NONE:
            t = NONE - 1
        q = queued[row]
        if t < q - MAX_BACKDATE_TICKS:
            t = q
        slots = LEVEL_SLOTS[level]
        if level > READ and not ts[TS_PLAYED]:
            ledger.column(TS_PLAYED)  # made on first use (memory9), in place
        old_level = level_of[row]
        if level <= old_level:
            for slot in slots:
                if t < ts[slot][row]:
                    break
            else:
                duplicate += 1
                continue
        if row not in first:
            first[row] = len(saved)
            saved.extend((old_level, pending[row], delivered[row], read[row]))
        if level > old_level:
            level_of[row] = level
        for slot in slots:
            column = ts[slot]
            if t < column[row]:
                column[row] = t
        if not dirty[row]:
            dirty[row] = 1
            dirty_count += 1
        if t > updated:
            updated = t
    ledger.dirty_count = dirty_count
    ledger.updated = updated
    _settle(ledger, first, saved)
    return list(first), len(items) - unknown - duplicate, duplicate


def _settle(ledger: Ledger, first: dict[int, int], saved: array[int]) -> None:
    """Move each changed row's class and shares (`chart_entries`: when it entered
    each chart series, and its latencies) from what `saved` says it was before its first
    change to what it is now: the class counts and the failure breakdown's membership at
    once, the chart and latency buckets summed first and moved once per bucket."""
    base = ledger.base or 0
    level_of, failed_of, ts = ledger.level, ledger.failed, ledger.ts
    queued, pending, delivered, read, failed_at = (
        ts[0], ts[PENDING], ts[DELIVERED], ts[READ], ts[TS_FAILED])
    counts = ledger.counts.counts
    timeline: dict[int, int] = {}  # second * 4 + series -> count
    deliver: dict[int, int] = {}  # duration in ticks -> count
    reads: dict[int, int] = {}
    for row, at in first.items():
        old_level, old_pending, old_delivered, old_read = saved[at:at + 4]
        new_level = level_of[row]
        if not failed_of[row]:
            # Most rows by far (never failed): `chart_entries`, `_move` and `_latency`
            # inline, the same arithmetic without their ~8 calls per row. The class is
            # the level; the failed series is not touched (no failure, before or after).
            if old_level != new_level:
                counts[old_level] -= 1
                counts[new_level] += 1
            if old_level >= PENDING:
                os_ = old_pending
                od = old_delivered if old_level >= DELIVERED else NONE
                orr = old_read if old_level >= READ else NONE
            else:
                os_ = od = orr = NONE
            if new_level >= PENDING:
                ns = pending[row]
                nd = delivered[row] if new_level >= DELIVERED else NONE
                nr = read[row] if new_level >= READ else NONE
            else:
                ns = nd = nr = NONE
            q = queued[row]
            if os_ != ns:
                if os_ != NONE:
                    key = (os_ + base) // 10 * 4
                    timeline[key] = timeline.get(key, 0) - 1
                if ns != NONE:
                    key = (ns + base) // 10 * 4
                    timeline[key] = timeline.get(key, 0) + 1
            if od != nd:
                if od != NONE:
                    key = (od + base) // 10 * 4 + 1
                    timeline[key] = timeline.get(key, 0) - 1
                if nd != NONE:
                    key = (nd + base) // 10 * 4 + 1
                    timeline[key] = timeline.get(key, 0) + 1
            if orr != nr:
                if orr != NONE:
                    key = (orr + base) // 10 * 4 + 2
                    timeline[key] = timeline.get(key, 0) - 1
                if nr != NONE:
                    key = (nr + base) // 10 * 4 + 2
                    timeline[key] = timeline.get(key, 0) + 1
            old_start = os_ if os_ != NONE else q
            new_start = ns if ns != NONE else q
            moved = old_start != new_start
            if od != nd or moved:
                if od != NONE:
                    d = od - old_start if od > old_start else 0
                    deliver[d] = deliver.get(d, 0) - 1
                if nd != NONE:
                    d = nd - new_start if nd > new_start else 0
                    deliver[d] = deliver.get(d, 0) + 1
            if orr != nr or moved:
                if orr != NONE:
                    d = orr - old_start if orr > old_start else 0
                    reads[d] = reads.get(d, 0) - 1
                if nr != NONE:
                    d = nr - new_start if nr > new_start else 0
                    reads[d] = reads.get(d, 0) + 1
            continue
        # A failed row. A plain event changes neither the failed mark nor the failure time.
        old_class = FAILED_CLASS if old_level < DELIVERED else old_level
        new_class = FAILED_CLASS if new_level < DELIVERED else new_level
        if old_class != new_class:
            counts[old_class] -= 1
            counts[new_class] += 1
            if old_class == FAILED_CLASS or new_class == FAILED_CLASS:
                ledger.failures.count(row, 1 if new_class == FAILED_CLASS else -1)
        elif old_class == FAILED_CLASS:
            continue  # failed before and after: in the failed series at the same time
        # the row's chart entries before (o*) and now (n*), in ticks; NONE: not in it
        # a plain event changes neither (the failed column may be lazy: all NONE)
        q, fa = queued[row], (failed_at[row] if failed_at else NONE)
        os_, od, orr, of = chart_entries(old_class, old_level, old_pending, old_delivered,
                                         old_read, fa, q)
        ns, nd, nr, nf = chart_entries(new_class, new_level, pending[row], delivered[row],
                                       read[row], fa, q)
        if os_ != ns:
            _move(timeline, os_, ns, base, 0)
        if od != nd:
            _move(timeline, od, nd, base, 1)
        if orr != nr:
            _move(timeline, orr, nr, base, 2)
        if of != nf:
            _move(timeline, of, nf, base, 3)
        # latencies are measured from the sent entry, else the registration
        old_start = os_ if os_ != NONE else q
        new_start = ns if ns != NONE else q
        if od != nd or old_start != new_start:
            _latency(deliver, od, old_start, nd, new_start)
        if orr != nr or old_start != new_start:
            _latency(reads, orr, old_start, nr, new_start)
    buckets = ledger.timeline
    for key, delta in timeline.items():
        if delta:
            second, series = divmod(key, 4)
            bucket = buckets.get(second)
            if bucket is None:
                bucket = buckets[second] = [0, 0, 0, 0]
            bucket[series] += delta
            if not any(bucket):  # as `_reshare` drops a bucket left at zero
                del buckets[second]
    for histogram, deltas in ((ledger.deliver_latency, deliver), (ledger.read_latency, reads)):
        for duration, delta in deltas.items():
            if delta:
                histogram.add(duration / 10, delta)


def _move(timeline: dict[int, int], was: int, now: int, base: int, series: int) -> None:
    """One chart entry moved from `was` to `now` (ticks; NONE: not in the series)."""
    if was != NONE:
        key = (was + base) // 10 * 4 + series
        timeline[key] = timeline.get(key, 0) - 1
    if now != NONE:
        key = (now + base) // 10 * 4 + series
        timeline[key] = timeline.get(key, 0) + 1


def _latency(deltas: dict[int, int], was: int, was_start: int, now: int, now_start: int
             ) -> None:
    """One latency moved (ticks from its start; NONE: the row has none)."""
    if was != NONE:
        duration = max(0, was - was_start)
        deltas[duration] = deltas.get(duration, 0) - 1
    if now != NONE:
        duration = max(0, now - now_start)
        deltas[duration] = deltas.get(duration, 0) + 1
