"""Which failure each message keeps, and the failure breakdown of a campaign, in O(1).

A message may receive several failures (two providers, a retry, a duplicate with
another text). It keeps the smallest by `failures.rank` (the earliest informative one,
ties broken by code and the other fields), so the kept failure is a function of the
SET of events, like every other part of a message's state (SPEC 2.1).

The breakdown counts the messages that count as failed (status.FAILED_CLASS) by the
category and code of their kept failure; the ledger tells the book when a message
enters or leaves the failed class, so a statistics read never scans the messages.
Owned by one `Ledger`, touched only from its campaign actor's thread.
"""

from __future__ import annotations

from typing import Any

from domain.failures import CATEGORIES, Failure, RankKey, from_text, lookup, rank

NO_CODE = "none"  # the breakdown's key for failures without a code
INTERN_LIMIT = 10_000


class Kept:
    """One message's kept failure (slots: a campaign may keep many)."""

    __slots__ = ("failure", "key", "reason", "tick")

    def __init__(self, key: RankKey, tick: int, failure: Failure, reason: str | None) -> None:
        self.key = key
        self.tick = tick
        self.failure = failure
        self.reason = reason


class FailureBook:
    def __init__(self) -> None:
        self.kept: dict[int, Kept] = {}
        # category -> code -> messages counted as failed with it
        self.breakdown: dict[str, dict[str, int]] = {}
        self._interned: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self.kept)

    # --- reading ---------------------------------------------------------------------

    def reason(self, row: int) -> str | None:
        kept = self.kept.get(row)
        return None if kept is None else kept.reason

    def failure(self, row: int) -> Failure | None:
        kept = self.kept.get(row)
        return None if kept is None else kept.failure

    def tick(self, row: int) -> int | None:
        kept = self.kept.get(row)
        return None if kept is None else kept.tick

    def statistics(self) -> list[dict[str, Any]]:
        """`statistics.failures`: one entry per category with failed messages, in the
        table's order."""
        out = []
        for category in CATEGORIES:
            codes = self.breakdown.get(category.name)
            if codes:
                out.append({"category": category.name, "label": category.label,
                            "count": sum(codes.values()), "codes": dict(sorted(codes.items()))})
        return out

    # --- changing --------------------------------------------------------------------

    def better(self, row: int, tick: int, failure: Failure | None, reason: str | None) -> bool:
        """Would this failure replace the kept one? (One that says nothing never does.)"""
        failure = _fill(failure, reason)
        if not _says_something(failure, reason):
            return False
        kept = self.kept.get(row)
        return kept is None or rank(tick, failure, reason) < kept.key

    def offer(self, row: int, tick: int, failure: Failure | None, reason: str | None,
              counted: bool) -> bool:
        """Keep this failure if it ranks before the kept one; True if it did. `counted`:
        the message is in the breakdown now (its class is failed)."""
        failure = _fill(failure, reason)
        if not _says_something(failure, reason):
            return False  # counted as `other` / "none" while nothing better comes
        key = rank(tick, failure, reason)
        kept = self.kept.get(row)
        if kept is not None and key >= kept.key:
            return False
        if counted:
            self._count(kept, -1)
        new = Kept(key, tick, self._intern(failure), self._intern(reason))
        self.kept[row] = new
        if counted:
            self._count(new, +1)
        return True

    def set(self, row: int, tick: int, failure: Failure | None, reason: str | None) -> None:
        """Load a stored failure as it is (the row must not be counted yet)."""
        failure = _fill(failure, reason)
        if not _says_something(failure, reason):
            self.kept.pop(row, None)
            return
        self.kept[row] = Kept(rank(tick, failure, reason), tick, self._intern(failure),
                              self._intern(reason))

    def count(self, row: int, sign: int) -> None:
        """The message entered (+1) or left (-1) the failed class."""
        self._count(self.kept.get(row), sign)

    def _count(self, kept: Kept | None, sign: int) -> None:
        code = kept.failure.code if kept is not None else None
        category = lookup(code).category
        codes = self.breakdown.setdefault(category, {})
        key = code or NO_CODE
        n = codes.get(key, 0) + sign
        if n:
            codes[key] = n
        else:
            codes.pop(key, None)
            if not codes:
                del self.breakdown[category]

    def _intern(self, value: Any) -> Any:
        """Failures repeat across thousands of messages: keep one copy of each."""
        if value is None:
            return None
        hit = self._interned.get(value)
        if hit is not None:
            return hit
        if len(self._interned) < INTERN_LIMIT:
            self._interned[value] = value
        return value


def _says_something(failure: Failure, reason: str | None) -> bool:
    return bool(failure.code or failure.title or failure.details or reason)


def _fill(failure: Failure | None, reason: str | None) -> Failure:
    """A failure known only by its text gets its fields from the text."""
    if failure is not None:
        return failure
    return from_text(reason, "")
