"""Engagement tiers of a workspace's contacts (SPEC 8), the one place they are defined.

Every contact is in exactly one tier, the first of these that holds (precedence):
1. opted_out    on the workspace's suppression list (SPEC 6.4): they asked us to stop,
2. unreachable  its last 2 sends both failed as Not on WhatsApp / bad number
                (domain/failures.py category not_on_whatsapp): sending again is waste,
3. engaged      read or replied within the last `engaged_days` (90),
4. unengaged    at least `unengaged_min_delivered` (5) messages delivered, and no read or
                reply within those days,
5. new          everything else: too little data to judge.
An opt-out outranks everything (the person said so); a number that stopped existing
outranks an old read; engagement is judged only where it could be seen.

The rules are data (`rules`): `tier_of` evaluates them here and store/insights.py turns
the same conditions into SQL to filter a page of contacts, so the two cannot disagree.
The audience filter of a new campaign (`Audience`) uses `tier_of` per recipient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

TIERS = ("opted_out", "unreachable", "engaged", "unengaged", "new")  # precedence order
DAY = 86400.0


@dataclass(frozen=True)
class TierPolicy:
    engaged_days: float = 90.0
    unengaged_min_delivered: int = 5


class ContactFacts(NamedTuple):
    """What a tier is decided from (a contact row plus the suppression list)."""

    suppressed: bool = False
    unreachable: bool = False
    engaged_at: float | None = None  # the latest read or reply
    delivered: int = 0


NO_FACTS = ContactFacts()


class Condition(NamedTuple):
    """`fact` `op` `value`: fact is a ContactFacts field; op is "is", ">=" or "<"."""

    fact: str
    op: str
    value: Any


def rules(now: float, policy: TierPolicy) -> tuple[tuple[str, tuple[Condition, ...]], ...]:
    """Each tier with the conditions that put a contact in it, in precedence order; a
    contact belongs to the first tier whose conditions all hold."""
    return (
        ("opted_out", (Condition("suppressed", "is", True),)),
        ("unreachable", (Condition("unreachable", "is", True),)),
        ("engaged", (Condition("engaged_at", ">=", now - policy.engaged_days * DAY),)),
        ("unengaged", (Condition("delivered", ">=", policy.unengaged_min_delivered),)),
        ("new", ()),
    )


def holds(condition: Condition, facts: ContactFacts) -> bool:
    value = getattr(facts, condition.fact)
    if condition.op == "is":
        return bool(value) is condition.value
    if value is None:  # never read or replied: no time is recent enough
        return False
    return value >= condition.value if condition.op == ">=" else value < condition.value


def tier_from(rule_set: Iterable[tuple[str, tuple[Condition, ...]]],
              truth: Callable[[Condition], bool]) -> str:
    """The first tier whose conditions all hold, given whether each condition holds."""
    for tier, conditions in rule_set:
        if all(truth(c) for c in conditions):
            return tier
    raise AssertionError("the last tier has no condition")  # pragma: no cover


def tier_of(facts: ContactFacts, now: float, policy: TierPolicy) -> str:
    return tier_from(rules(now, policy), lambda c: holds(c, facts))


# --- audiences: a new campaign filtered by tiers ----------------------------------------


class AudienceError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Audience:
    """`{"include_tiers": [...], "exclude_tiers": [...]}` of a new campaign: keep only the
    recipients in an included tier (all tiers when none is named), then drop those in an
    excluded tier. A recipient is in one tier, so each removal has one rule and tier."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, doc: Any, field: str = "audience") -> Audience:
        if not isinstance(doc, dict):
            raise AudienceError(f"{field} must be an object with include_tiers and/or "
                                "exclude_tiers", field)
        unknown = sorted(set(doc) - {"include_tiers", "exclude_tiers"})
        if unknown:
            raise AudienceError(f"{field}.{unknown[0]} is not an audience rule "
                                "(include_tiers, exclude_tiers)", f"{field}.{unknown[0]}")
        lists = []
        for name in ("include_tiers", "exclude_tiers"):
            value = doc.get(name, [])
            if not isinstance(value, list):
                raise AudienceError(f"{field}.{name} must be an array of tiers "
                                    f"({', '.join(TIERS)})", f"{field}.{name}")
            for i, tier in enumerate(value):
                if tier not in TIERS:
                    raise AudienceError(f"{field}.{name}[{i}] must be one of "
                                        f"{', '.join(TIERS)}", f"{field}.{name}[{i}]")
            lists.append(tuple(dict.fromkeys(value)))
        both = [t for t in lists[0] if t in lists[1]]
        if both:
            raise AudienceError(f"tier {both[0]!r} is both included and excluded",
                                f"{field}.exclude_tiers")
        return cls(lists[0], lists[1])

    @property
    def empty(self) -> bool:
        return not self.include and not self.exclude

    def keeps(self, tier: str) -> bool:
        return (not self.include or tier in self.include) and tier not in self.exclude

    def report(self, tiers: Sequence[str]) -> dict[str, Any]:
        """What the rules do to recipients of these tiers (one per recipient)."""
        found = Counter(tiers)
        removed = []
        for tier in TIERS:
            if not found[tier]:
                continue
            if self.include and tier not in self.include:
                removed.append({"rule": "include_tiers", "tier": tier, "count": found[tier]})
            elif tier in self.exclude:
                removed.append({"rule": "exclude_tiers", "tier": tier, "count": found[tier]})
        kept = sum(n for t, n in found.items() if self.keeps(t))
        return {"include_tiers": list(self.include), "exclude_tiers": list(self.exclude),
                "recipients": len(tiers), "kept": kept,
                "removed_count": len(tiers) - kept, "removed": removed,
                "tiers": {t: found[t] for t in TIERS}}


def tiers_of(facts: Iterable[ContactFacts], now: float, policy: TierPolicy) -> list[str]:
    return [tier_of(f, now, policy) for f in facts]
