"""Best time to send (SPEC 8): a weekday x hour heatmap of SEND time in the workspace's
time zone, the rates shrunk toward the workspace average, the read-time heatmap, and
one line of advice when the data supports one.

Time zones: the counts are kept per UTC quarter-hour slot (domain/insights.py) and
folded into local weekday x hour here, at question time, with the IANA zone's rules
for THAT slot (zoneinfo). A summer slot and a winter slot at the same UTC hour land in
different local hours, the hour skipped when clocks go forward gets nothing, and the
hour repeated when they go back gets both. Changing `analytics.timezone` re-folds the
same counts; nothing stored depends on it.

Shrinkage (empirical Bayes with a Beta prior of strength k centred on the workspace
average a): a cell with x reads of n delivered shows (x + k·a) / (n + k). With n much
larger than k that is the cell's own rate; with n = 0 it is the average; a cell with
3 of 4 read cannot outshine one with 480 of 1,000.

Pure: no I/O (zoneinfo reads the system's zone files, which is configuration).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.insights import SLOT_FIELDS, SLOT_SECONDS

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SENT, DELIVERED, READ, REPLIED, FAILED, OPTED_OUT, READS, REPLIES = range(len(SLOT_FIELDS))
ADVICE_HOURS = 2  # the advice names a block of two hours on one weekday ("Tue 19-21 h")
ADVICE_Z = 3.5  # ~5 % family-wise over the 7 x 23 blocks tried (Bonferroni)
ADVICE_MIN_LIFT = 0.10  # the block's shrunk rate at least 10 % above the average


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone, or None when the name is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def local_cell(at: float, tz: ZoneInfo) -> tuple[int, int]:
    """(weekday Mon=0, hour) of an epoch time in the zone."""
    local = datetime.fromtimestamp(at, tz)
    return local.weekday(), local.hour


def fold(slots: Iterable[tuple[int, Sequence[int]]], tz: ZoneInfo) -> list[list[list[int]]]:
    """Per-slot counts (SLOT_FIELDS) summed into [weekday][hour] cells of local time,
    each slot placed by the zone's rules for it (the definition; the route sums a
    week's worth of slots per offset first: `offset_spans`, `fold_weeks`)."""
    cells = _empty_cells()
    for slot, counts in slots:
        weekday, hour = local_cell(slot * SLOT_SECONDS, tz)
        _add(cells[weekday], hour, counts)
    return cells


def _empty_cells() -> list[list[list[int]]]:
    return [[[0] * len(SLOT_FIELDS) for _ in range(24)] for _ in range(7)]


def _add(row: list[list[int]], hour: int, counts: Sequence[int]) -> None:
    row[hour] = [a + b for a, b in zip(row[hour], counts, strict=True)]


# --- the same fold with a week of slots summed in SQL ------------------------------------
# Within a stretch of time where the zone's UTC offset does not change, a slot's local
# weekday and hour depend only on its place in the week (a week is a whole number of
# slots), so the store sums each stretch's slots by `slot % WEEK_SLOTS`: a year of
# slots becomes at most 672 rows per offset, instead of 35,000 rows placed one by one.
WEEK_SLOTS = 7 * 86400 // SLOT_SECONDS
EPOCH_WEEKDAY = 3  # 1970-01-01, slot 0, was a Thursday
PROBE_SLOTS = 96  # offsets are looked at once a day, and bisected where they differ


def utc_offset(slot: int, tz: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(slot * SLOT_SECONDS, tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def offset_spans(tz: ZoneInfo, start: int, end: int) -> list[tuple[int, int, int]]:
    """The slots [start, end) as stretches (first, after last, UTC offset in seconds)
    of one offset each. Found by looking once a day (PROBE_SLOTS) and bisecting between
    two looks that differ: a zone changing its offset and back within one day would be
    missed (no zone's rules do; transitions are months apart). Ten years: 3,650 looks."""
    if start >= end:
        return []
    spans = []
    first, offset = start, utc_offset(start, tz)
    at = start
    while at < end - 1:
        look = min(at + PROBE_SLOTS, end - 1)
        if utc_offset(look, tz) == offset:
            at = look
            continue
        same, other = at, look  # the first slot of the new offset is in (same, other]
        while other - same > 1:
            middle = (same + other) // 2
            if utc_offset(middle, tz) == offset:
                same = middle
            else:
                other = middle
        spans.append((first, other, offset))
        first, offset, at = other, utc_offset(other, tz), other
    spans.append((first, end, offset))
    return spans


def week_cell(week_slot: int, offset: int) -> tuple[int, int]:
    """(weekday Mon=0, hour) of a slot's place in the week (slot % WEEK_SLOTS) at a
    UTC offset."""
    local = (week_slot * SLOT_SECONDS + offset) % (WEEK_SLOTS * SLOT_SECONDS)
    return (local // 86400 + EPOCH_WEEKDAY) % 7, local % 86400 // 3600


def fold_weeks(sums: Iterable[tuple[int, int, Sequence[int]]]) -> list[list[list[int]]]:
    """`fold` from (UTC offset, slot % WEEK_SLOTS, counts summed over a stretch of that
    offset: `offset_spans`) rows."""
    cells = _empty_cells()
    for offset, week_slot, counts in sums:
        weekday, hour = week_cell(week_slot, offset)
        _add(cells[weekday], hour, counts)
    return cells


def shrunk(part: int, whole: int, average: float, k: float) -> float:
    """(part + k·average) / (whole + k): additive smoothing toward the average."""
    if whole + k <= 0:
        return average
    return (part + k * average) / (whole + k)


def wilson_low(part: int, whole: int, z: float) -> float:
    """Lower end of the Wilson score interval of part/whole."""
    if whole <= 0:
        return 0.0
    p = part / whole
    z2 = z * z
    centre = p + z2 / (2 * whole)
    spread = z * math.sqrt(p * (1 - p) / whole + z2 / (4 * whole * whole))
    return (centre - spread) / (1 + z2 / whole)


@dataclass(frozen=True)
class BestTimePolicy:
    prior_strength: float = 50.0  # k
    min_cell_messages: int = 30  # delivered messages a cell needs to be judged
    advice_min_messages: int = 200  # delivered messages the advised block needs


def pct(value: float) -> float:
    return round(value * 100.0, 1)


def best_time(cells: list[list[list[int]]], policy: BestTimePolicy) -> dict[str, Any]:
    """The heatmaps and the advice from folded cells (see `fold`)."""
    totals = [sum(cells[d][h][i] for d in range(7) for h in range(24))
              for i in range(len(SLOT_FIELDS))]
    delivered = totals[DELIVERED]
    read_avg = totals[READ] / delivered if delivered else 0.0
    reply_avg = totals[REPLIED] / delivered if delivered else 0.0
    k = policy.prior_strength
    out_cells = []
    read_cells = []
    all_reads = totals[READS] or 0
    for d in range(7):
        for h in range(24):
            c = cells[d][h]
            n = c[DELIVERED]
            out_cells.append({
                "weekday": d, "hour": h, "sent": c[SENT] + c[FAILED], "delivered": n,
                "read": c[READ], "replied": c[REPLIED],
                "read_rate": pct(c[READ] / n) if n else None,
                "reply_rate": pct(c[REPLIED] / n) if n else None,
                "read_rate_shrunk": pct(shrunk(c[READ], n, read_avg, k)),
                "reply_rate_shrunk": pct(shrunk(c[REPLIED], n, reply_avg, k)),
                "enough": n >= policy.min_cell_messages,
            })
            read_cells.append({"weekday": d, "hour": h, "reads": c[READS],
                               "replies": c[REPLIES],
                               "share": pct(c[READS] / all_reads) if all_reads else 0.0})
    return {
        "average": {"sent": totals[SENT] + totals[FAILED], "delivered": delivered,
                    "read": totals[READ], "replied": totals[REPLIED],
                    "read_rate": pct(read_avg), "reply_rate": pct(reply_avg)},
        "cells": out_cells,
        "read_times": read_cells,
        "advice": advice(cells, totals, policy),
    }


def advice(cells: list[list[list[int]]], totals: Sequence[int], policy: BestTimePolicy
           ) -> dict[str, Any] | None:
    """The two-hour block on one weekday whose messages were read best, when the data
    says so: enough messages in it, its shrunk read rate at least ADVICE_MIN_LIFT above
    the workspace average, and the average below the lower end of its Wilson interval
    at z = ADVICE_Z (so that trying 161 blocks does not find a winner by chance).
    Read receipts switched off everywhere (no reads at all): no advice."""
    delivered, reads = totals[DELIVERED], totals[READ]
    if delivered < policy.advice_min_messages or reads == 0:
        return None
    average = reads / delivered
    best: tuple[float, int, int, int, int] | None = None
    for d in range(7):
        for h in range(24 - ADVICE_HOURS + 1):
            if not cells[d][h][DELIVERED]:  # a block starts where its messages start
                continue
            n = sum(cells[d][h + i][DELIVERED] for i in range(ADVICE_HOURS))
            x = sum(cells[d][h + i][READ] for i in range(ADVICE_HOURS))
            if n < policy.advice_min_messages:
                continue
            rate = shrunk(x, n, average, policy.prior_strength)
            if best is None or rate > best[0]:
                best = (rate, d, h, x, n)
    if best is None:
        return None
    rate, d, h, x, n = best
    if rate < average * (1 + ADVICE_MIN_LIFT) or wilson_low(x, n, ADVICE_Z) <= average:
        return None
    to = h + ADVICE_HOURS
    return {"weekday": d, "from_hour": h, "to_hour": to, "metric": "read",
            "rate": pct(rate), "average": pct(average), "n": n,
            "text": f"{WEEKDAYS[d]} {h:02d}-{to:02d} h: read {pct(rate):g} % vs "
                    f"{pct(average):g} % average, n = {n:,}"}
