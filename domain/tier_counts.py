"""Contacts per tier from kept counters, not from reading every contact (SPEC 8,
docs/insights.md "How it stays fast").

Two of the tier facts (domain/tiers.py) are stored and never change by themselves:
`unreachable` and `delivered`. The third, "read or replied within the last 90 days",
depends on the time of asking: a contact engaged today is new or unengaged 90 days from
now with no event in between. So the counters do not count tiers; they count contacts
by their stored facts, `FactKey` = (unreachable, the UTC day of the latest read or reply,
delivered), and the store moves them in the transaction that changes a contact
(store/aggregates.py). A tier count is derived when asked (`tally`): a day wholly after
the cutoff (now - engaged_days) is recent, one wholly before it is not, and the contacts
of the one day the cutoff falls in are split by an exact count of that day's part of
the contacts index (store/insights.py). Counting by days keeps the counters small: one
per day with engagement and delivered count, not one per contact.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from domain.tiers import TIERS, ContactFacts, TierPolicy, holds, rules, tier_from

DAY = 86400.0
# The day of a time as SQLite computes it in store/tier_counts.py (the same IEEE
# division and truncation toward zero, times are positive): CAST(at / 86400.0 AS INTEGER).
NEVER = 0  # the day of a contact that never read or replied (engaged_at stored as 0)
# Where a contact's engagement lies against the cutoff: none at all, before it, on the
# cutoff's own day (either side: split by an exact count), at or after it.
NONE, OLD, CUTOFF_DAY, RECENT = -1, 0, 1, 2


def engaged_day(engaged_at: float | None) -> int:
    return int(engaged_at / DAY) if engaged_at else NEVER


class FactKey(NamedTuple):
    """What a contact is counted under: its tier facts other than the suppression list,
    with the time of engagement as a day."""

    unreachable: bool
    engaged_day: int
    delivered: int


def key_of(unreachable: bool, engaged_at: float | None, delivered: int) -> FactKey:
    return FactKey(bool(unreachable), engaged_day(engaged_at), int(delivered))


def cutoff_of(now: float, policy: TierPolicy) -> float:
    """The one time a tier rule compares engagement with (engaged: at or after it)."""
    cutoffs = {c.value for _, conditions in rules(now, policy) for c in conditions
               if c.fact == "engaged_at"}
    if len(cutoffs) != 1:  # the split below is by one cutoff; a new rule needs more
        raise ValueError(f"tier rules compare engagement with {len(cutoffs)} times")
    return cutoffs.pop()


class Group(NamedTuple):
    """Contacts counted alike: the same facts, their engagement NONE, OLD or RECENT."""

    unreachable: bool
    engaged: int
    delivered: int


def tally(groups: Iterable[tuple[Group, int]], now: float, policy: TierPolicy
          ) -> dict[str, int]:
    """Contacts per tier as if none were on the suppression list: each group named by
    the tier rules with facts standing for it (an engagement time before the cutoff, at
    it, or none). The cutoff day's contacts come split already (store/insights.py)."""
    rule_set = rules(now, policy)
    cutoff = cutoff_of(now, policy)
    moment = {NONE: None, OLD: cutoff - DAY, RECENT: cutoff}
    counts = dict.fromkeys(TIERS, 0)
    for group, n in groups:
        facts = ContactFacts(False, group.unreachable, moment[group.engaged], group.delivered)
        counts[tier_from(rule_set, lambda c, f=facts: holds(c, f))] += n
    return counts


def split_cutoff_day(counters: Iterable[tuple[bool, int, int, int]],
                     engaged_on_cutoff_day: Mapping[tuple[bool, int], int]
                     ) -> list[tuple[Group, int]]:
    """Counter sums as (unreachable, where the day lies: NONE, OLD, CUTOFF_DAY or RECENT,
    delivered, n) into groups: the cutoff day's split by the exact count of its contacts
    engaged at or after the cutoff, per (unreachable, delivered)."""
    out: list[tuple[Group, int]] = []
    for unreachable, where, delivered, n in counters:
        if where == CUTOFF_DAY:
            recent = engaged_on_cutoff_day.get((bool(unreachable), delivered), 0)
            if recent > n:  # both come from one snapshot: cannot happen
                raise ValueError("more contacts engaged on the cutoff day than counted")
            out += [(Group(bool(unreachable), RECENT, delivered), recent),
                    (Group(bool(unreachable), OLD, delivered), n - recent)]
        else:
            out.append((Group(bool(unreachable), where, delivered), n))
    return out
