"""Trends and comparison across a workspace's campaigns (SPEC 8): the rates, the 7 / 30 /
90-day totals with the change against the period before, and the cumulative curves of
2 to 5 campaigns against the time since each message was sent.

The rates, everywhere the same (and the same as a campaign's statistics, SPEC 2.2/6.3):
  delivery rate = delivered / sent          read rate  = read / delivered
  reply rate    = replied / delivered       opt-out rate = opted out / delivered
  failure rate  = failed / (sent + failed)  (sent here excludes failed messages)
in percent with one decimal; 0 when the denominator is 0. A change is the difference in
percentage points for a rate and the relative change in percent for a count (None when
the period before had nothing to compare with).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.insights import DELAY_EDGES, DELAY_SERIES
from domain.status import percent

COUNT_NAMES = ("sent", "delivered", "read", "replied", "failed", "opted_out")
RATE_NAMES = ("delivery_rate", "read_rate", "reply_rate", "failure_rate", "opt_out_rate")
PERIODS = (7, 30, 90)


def rates(c: Mapping[str, int]) -> dict[str, float]:
    return {
        "delivery_rate": percent(c["delivered"], c["sent"]),
        "read_rate": percent(c["read"], c["delivered"]),
        "reply_rate": percent(c["replied"], c["delivered"]),
        "failure_rate": percent(c["failed"], c["sent"] + c["failed"]),
        "opt_out_rate": percent(c["opted_out"], c["delivered"]),
    }


def figures(c: Mapping[str, int]) -> dict[str, Any]:
    return {**{name: int(c[name]) for name in COUNT_NAMES}, **rates(c)}


_DENOMINATOR = {"delivery_rate": ("sent",), "read_rate": ("delivered",),
                "reply_rate": ("delivered",), "failure_rate": ("sent", "failed"),
                "opt_out_rate": ("delivered",)}


def period(current: Mapping[str, int], previous: Mapping[str, int]) -> dict[str, Any]:
    """A period's figures, the period before, and the change between them."""
    now, before = figures(current), figures(previous)
    change: dict[str, float | None] = {}
    for name in COUNT_NAMES:
        change[name] = (round((now[name] - before[name]) * 100.0 / before[name], 1)
                        if before[name] else None)
    for name in RATE_NAMES:
        judged = sum(previous[d] for d in _DENOMINATOR[name]) and \
            sum(current[d] for d in _DENOMINATOR[name])
        change[name] = round(now[name] - before[name], 1) if judged else None
    return {"current": now, "previous": before, "change": change}


def campaign_counts(stats: Mapping[str, Any]) -> dict[str, int]:
    """A campaign's statistics (SPEC 2.2 / 6.3 names) as the counts above."""
    return {"sent": int(stats.get("total_sent_count") or 0),
            "delivered": int(stats.get("total_delivered_count") or 0),
            "read": int(stats.get("total_read_count") or 0),
            "replied": int(stats.get("total_replied_count") or 0),
            "failed": int(stats.get("total_failed_count") or 0),
            "opted_out": int(stats.get("total_opted_out_count") or 0)}


def curves(delays: Mapping[tuple[int, int], int]) -> dict[str, Any]:
    """Cumulative delivered / read / replied percentages at each DELAY_EDGES point
    (seconds since each message was sent), from one campaign's delay buckets
    {(series, bucket): count} (domain/insights.py). Each curve ends at the campaign's
    rate: delivered of sent, read and replied of delivered."""
    sent = delays.get((0, 0), 0)
    totals = {s: sum(n for (series, _), n in delays.items() if series == s)
              for s in (1, 2, 3)}
    denominators = {1: sent, 2: totals[1], 3: totals[1]}
    points = []
    running = {1: 0, 2: 0, 3: 0}
    for bucket, edge in enumerate((*DELAY_EDGES, None)):
        for s in (1, 2, 3):
            running[s] += delays.get((s, bucket), 0)
        points.append({"after": edge,
                       **{DELAY_SERIES[s]: percent(running[s], denominators[s])
                          for s in (1, 2, 3)}})
    return {"sent": sent, "delivered": totals[1], "read": totals[2], "replied": totals[3],
            "points": points}
