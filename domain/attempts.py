"""Attempts (SPEC 9): every gateway call for a recipient is an attempt with its own id.

A recipient's level is the highest level ANY of its attempts reached (delivery evidence
is real whichever attempt it came from), but only its LATEST attempt can make it failed:
a retry under way takes it out of Failed at once, it comes back only if the retry fails
too, and an older attempt's failure never sticks. So the state stays a pure function of
the set of events, with the attempt number part of each event:

- latest attempt = the highest attempt number among the row's events (1 when none);
- failed = some failure event carries the latest attempt number;
- its failure time and reason come only from the latest attempt's failures.

The ledger keeps the latest attempt number here, sparsely: most recipients have exactly
one attempt and cost nothing; a retried one costs one dict entry, two once a later
attempt was accepted. For that one it also keeps when the gateway accepted it: reply
attribution (SPEC 6.2, domain/attribution.py) credits "the latest message sent to the
number", and for a retried recipient that is its latest accepted attempt, not the first
(whose failure made the retry). Its time is the acceptance (the registration of its
gateway id, which a restart reads back from the row or the `attempts` table), so it is
the same before and after a restart. The earlier attempts'
details (gateway id, outcome, reason, times) live in SQLite (`attempts` table), not in
memory.
"""

from __future__ import annotations

from collections.abc import Iterable

# The attempt number travels in 8 bits of the id index (domain/index.py): a recipient is
# never called more than this many times.
MAX_ATTEMPT = 255
OLDER, SAME, NEWER = -1, 0, 1


class LatestAttempts:
    """Row -> its latest attempt number, stored only where it is above 1."""

    __slots__ = ("_latest", "_sent")

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}
        # row -> (attempt, tick) of its latest ACCEPTED attempt above the first
        self._sent: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def __bool__(self) -> bool:
        return bool(self._latest)

    def get(self, row: int) -> int:
        return self._latest.get(row, 1)

    def compare(self, row: int, attempt: int) -> int:
        """OLDER: the event belongs to an earlier attempt (its failure is history);
        SAME: to the latest; NEWER: it starts a later attempt."""
        latest = self._latest.get(row, 1)
        return SAME if attempt == latest else (NEWER if attempt > latest else OLDER)

    def advance(self, row: int, attempt: int) -> None:
        if attempt > 1:
            self._latest[row] = attempt

    def accepted(self, row: int, attempt: int, tick: int) -> bool:
        """Attempt `attempt` (> 1) was accepted at `tick`; True when it is now the row's
        latest accepted attempt or was accepted earlier than known (a join: the highest
        attempt wins, then the earliest time)."""
        if attempt <= 1:
            return False
        known = self._sent.get(row)
        if known is not None and (known[0] > attempt or (known[0] == attempt
                                                          and known[1] <= tick)):
            return False
        self._sent[row] = (attempt, tick)
        return True

    def sent(self, row: int) -> tuple[int, int] | None:
        """(attempt, tick) of the row's latest accepted attempt above the first."""
        return self._sent.get(row)

    def load(self, pairs: Iterable[tuple[int, ...]]) -> None:
        """(row, latest attempt) as stored, optionally followed by the latest accepted
        attempt above the first and its tick (None, None: none); rows at attempt 1 need
        not be given."""
        for row, attempt, *sent in pairs:
            if attempt > self._latest.get(row, 1):
                self._latest[row] = attempt
            if sent and sent[0] is not None and sent[1] is not None:
                self.accepted(row, sent[0], sent[1])

    def items(self) -> list[tuple[int, int]]:
        return sorted(self._latest.items())

    # --- recovery images (domain/image.py) ----------------------------------------

    def sent_items(self) -> list[tuple[int, tuple[int, int]]]:
        """Every row's latest accepted attempt above the first, with its tick."""
        return sorted(self._sent.items())

    def restore(self, latest: list[list[int | None]], sent: list[list[int]]) -> None:
        """Set the state domain/image.py saved: (row, latest attempt, accepted attempt
        or None, its tick or None) per retried row, and (row, accepted attempt, tick)
        for rows with an accepted attempt above 1 but no latest above 1."""
        for row, attempt, sent_attempt, tick in latest:
            assert row is not None and attempt is not None
            self._latest[row] = attempt
            if sent_attempt is not None and tick is not None:
                self._sent[row] = (sent_attempt, tick)
        for row, sent_attempt, tick in sent:
            self._sent[row] = (sent_attempt, tick)


# What an attempt came to (the sender stores it with the outcome; an accepted attempt
# shows as "failed" when a failure ACK for it arrived):
OUTCOMES = (
    "accepted",  # the gateway took it and gave an id
    "failed",  # refused by the gateway, or a failure ACK for its id
    "unknown",  # the daemon died during the call: nobody knows
    "retried",  # a transient error (timeout, 5xx): tried again automatically
    "not_sent",  # refused before taking it (429, credentials): sent again later
)

