"""The one normalized event every webhook becomes, whatever gateway sent it."""

from __future__ import annotations

from typing import Any, NamedTuple

from domain.failures import Failure, from_text


class StatusEvent(NamedTuple):
    """One delivery status of one message, whatever gateway reported it.

    `at` is the event's time in epoch seconds: the provider's ACK time where it gives
    one, otherwise the time campaignd received it (fixed when journaled, so a replay
    reproduces it exactly). A NamedTuple, not a dataclass: every status of every
    webhook becomes one, and a tuple is made (and journaled) at half the cost.
    """

    message_id: str  # bare id (see status.bare_message_id)
    level: int  # status.Level; QUEUED when the event carries no level evidence
    failed: bool
    at: float
    reason: str | None = None
    recipient: str | None = None
    # The failure as fields (domain/failures.py); None on events that are not failures.
    failure: Failure | None = None

    def to_row(self) -> tuple[Any, ...]:
        if self.failure is None:
            return tuple(self[:6])
        return (*self[:6], list(self.failure))

    @classmethod
    def from_row(cls, row: list[Any], source: str = "") -> StatusEvent:
        """A journaled event back. Rows written by release 0.1 have six fields and a
        failure only as text: its code is read from the text where it starts with one."""
        failure = Failure.from_row(row[6]) if len(row) > 6 else None
        if failure is None and row[2]:
            failure = from_text(row[4], source)
        return cls(row[0], row[1], bool(row[2]), row[3], row[4], row[5], failure)
