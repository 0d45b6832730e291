"""The one normalized event every webhook becomes, whatever gateway sent it."""

from __future__ import annotations

from typing import Any, NamedTuple


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

    def to_row(self) -> tuple[Any, ...]:
        return tuple(self)

    @classmethod
    def from_row(cls, row: list[Any]) -> StatusEvent:
        return cls(row[0], row[1], bool(row[2]), row[3], row[4], row[5])
