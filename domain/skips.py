"""Recipients the sender skips (SPEC 9): suppressed numbers and, when asked, unreachable
ones end as `skipped` with the reason, are never handed to a gateway, and are counted in
`total_skipped_count`.

A skip is a fact about a row, decided at send time: `suppressed` (the number is on the
workspace's suppression list, SPEC 6.4; the entry's reason and source are kept) or
`unreachable` (the contact's tier, domain/tiers.py). A row counts as skipped when it has
a skip AND nothing was sent or failed for it (its class is queued): a recipient whose
earlier attempt failed and whose retry was skipped still counts as failed, since its
latest attempt is the failed one and nothing new went out. So the count is a function of
the set of status events and skip facts: order and duplicates never change it. A row's
skip is the earliest one (ties broken by the fields), whatever order they come in.

Sparse and single-threaded: one `SkipBook` per campaign actor.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from domain.status import Level, percent
from domain.timefmt import iso_time

SUPPRESSED = "suppressed"
UNREACHABLE = "unreachable"
SKIP_REASONS = (SUPPRESSED, UNREACHABLE)
SKIPPED = "skipped"  # the status a skipped row shows (rows API, CSV, live table)
UNREACHABLE_DETAIL = "its last 2 sends failed as Not on WhatsApp / bad number"


class Skip(NamedTuple):
    """Why a row was not sent, and when that was decided."""

    at: float
    reason: str  # SUPPRESSED | UNREACHABLE
    detail: str | None = None  # the suppression's reason, or the tier rule
    source: str | None = None  # where the suppression came from (webjs, api, sender, ...)

    def rank(self) -> tuple[float, str, str, str]:
        """The earliest skip of a row wins; ties by the fields (None sorts first)."""
        return (self.at, self.reason, self.detail or "", self.source or "")

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "source": self.source,
                "at": iso_time(self.at)}


def suppressed(at: float, reason: str | None, source: str | None) -> Skip:
    return Skip(at, SUPPRESSED, reason, source)


def unreachable(at: float) -> Skip:
    return Skip(at, UNREACHABLE, UNREACHABLE_DETAIL, "tiers")


def row_status(status: str, skip_reason: str | None) -> str:
    """A row's status name: `skipped` for a skipped row nothing was sent or failed for."""
    return SKIPPED if skip_reason and status == "queued" else status


class SkipBook:
    """The skipped rows of one campaign and how many of them count (class queued)."""

    def __init__(self) -> None:
        self.skips: dict[int, Skip] = {}
        self.counted: set[int] = set()

    def __contains__(self, row: int) -> bool:
        return row in self.skips

    def __len__(self) -> int:
        return len(self.skips)

    def get(self, row: int) -> Skip | None:
        return self.skips.get(row)

    def offer(self, row: int, skip: Skip, cls: int) -> bool:
        """A skip fact for the row, whose class is `cls`; True if anything changed."""
        old = self.skips.get(row)
        changed = False
        if old is None or skip.rank() < old.rank():
            self.skips[row] = skip
            changed = True
        return self.refresh(row, cls) or changed

    def refresh(self, row: int, cls: int) -> bool:
        """The row's class may have moved (an event applied): count it or not."""
        if row not in self.skips:
            return False
        counts = cls == Level.QUEUED
        if counts == (row in self.counted):
            return False
        if counts:
            self.counted.add(row)
        else:
            self.counted.discard(row)
        return True

    @property
    def count(self) -> int:
        return len(self.counted)


def with_skips(stats: dict[str, Any], skipped: int) -> dict[str, Any]:
    """The statistics with skipped rows taken out of the queued ones: a skipped row is
    done, so progress is (sent + failed + skipped) / total (SPEC 2.2, 9)."""
    stats["total_skipped_count"] = skipped
    stats["total_queued_count"] = stats["total_queued_count"] - skipped
    done = stats["total_sent_count"] + stats["total_failed_count"] + skipped
    stats["progress"] = percent(done, stats["total_message_count"])
    return stats
