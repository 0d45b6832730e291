"""What one message row adds to the workspace aggregates (SPEC 8), and how a change of
the row moves them.

The analytics read aggregates, never the messages: per workspace a row of counts per
quarter-hour slot (sent, delivered, read, replied, failed, opted out by the slot the
message was SENT in; reads and replies by the slot they HAPPENED in), per campaign the
time from sending to delivered / read / replied in fixed buckets, and per number a
contact (store/insights.py). A row's *figures* are what those aggregates count of it.

The figures a row was last counted with are stored in the row itself (`messages.ag_*`).
Whoever writes a row's state (a checkpoint, a registration, the sender) recounts it in
the same transaction: new figures minus the stored ones moves the aggregates, and the
new figures are stored. So the aggregates are always the sum over the stored rows, a
function of the SET of events like the counters: a replayed event leaves a row as it
was (nothing moves), a crash loses the row's write and its recount together, and a
database of an older release is counted once by its migration.

Pure: no I/O. Times are epoch seconds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from domain.engagement import Touch
from domain.inbound import STOP
from domain.status import FAILED_CLASS, Level

SLOT_SECONDS = 900  # a quarter of an hour: whole in every time zone (+05:30, +05:45 too)
# Time from a message's sending to its delivery / read / reply: bucket i holds delays
# up to DELAY_EDGES[i] seconds (and above the previous edge); the last bucket the rest.
DELAY_EDGES = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
               86400, 172800, 259200, 604800)
DELAY_SERIES = ("sent", "delivered", "read", "replied")  # 0: the count, no delay
NOT_ON_WHATSAPP = "not_on_whatsapp"  # domain/failures.py's category of bad numbers

# Figure flags: what a row counts as. SENT and FAILED exclude each other (status.py's
# classes: a message is failed only while no delivery evidence exists).
SENT, DELIVERED, READ, FAILED, BAD_NUMBER, REPLIED, OPTED_OUT = 1, 2, 4, 8, 16, 32, 64
ATTEMPTED = SENT | FAILED  # left the queue: a send, for the contact and the heatmap
# A workspace slot's counts, in this order (store/insights.py's columns).
SLOT_FIELDS = ("sent", "delivered", "read", "replied", "failed", "opted_out", "reads",
               "replies")
_SLOT_FLAGS = ((0, SENT), (1, DELIVERED), (2, READ), (3, REPLIED), (4, FAILED),
               (5, OPTED_OUT))
PENDING, DELIVERED_LEVEL, READ_LEVEL = int(Level.PENDING), int(Level.DELIVERED), int(Level.READ)


class Engagement(NamedTuple):
    """A row's replies and opt-out as the aggregates count them."""

    first_reply: float | None = None
    last_reply: float | None = None
    opted_out: bool = False


NO_ENGAGEMENT = Engagement()


def engagement_of(touches: Iterable[Touch]) -> Engagement:
    """From the inbound events credited to a row (domain/engagement.py's rules: a reply
    is something written or tapped that is not a keyword; a STOP opts out)."""
    first = last = None
    opted = False
    for touch in touches:
        if touch.is_reply:
            first = touch.at if first is None else min(first, touch.at)
            last = touch.at if last is None else max(last, touch.at)
        if touch.kind == STOP:
            opted = True
    return Engagement(first, last, opted) if (first is not None or opted) else NO_ENGAGEMENT


class Figures(NamedTuple):
    """What the aggregates count of one message row (stored as messages.ag_*)."""

    flags: int = 0
    sent_at: float | None = None
    read_at: float | None = None
    reply_at: float | None = None  # the first reply
    last_reply_at: float | None = None
    delays: int = 0  # delay buckets + 1 of delivered, read, replied: 5 bits each, 0 = none

    @property
    def engagement(self) -> Engagement:
        """What the row's engagement was counted as (kept when the sender rewrites it)."""
        return Engagement(self.reply_at, self.last_reply_at, bool(self.flags & OPTED_OUT))

    def delay_bucket(self, series: int) -> int | None:
        """Bucket of delivered (1), read (2) or replied (3); None when not in it."""
        packed = (self.delays >> (5 * (series - 1))) & 31
        return packed - 1 if packed else None


ZERO = Figures()


def delay_bucket(seconds: float) -> int:
    """The DELAY_EDGES bucket of a delay (negative delays, clocks apart, count as 0)."""
    return bisect_left(DELAY_EDGES, max(0.0, seconds))


def slot_of(at: float) -> int:
    return int(at // SLOT_SECONDS)


def figures(cls: int, category: str | None, queued: float, pending: float | None,
            delivered: float | None, read: float | None, failed_at: float | None,
            engagement: Engagement = NO_ENGAGEMENT) -> Figures:
    """A stored row's figures: its class (status.py), kept failure category, times and
    engagement. A row still queued counts for nothing."""
    if cls == 0:
        return ZERO
    failed = cls == FAILED_CLASS
    flags = FAILED if failed else SENT
    if failed and category == NOT_ON_WHATSAPP:
        flags |= BAD_NUMBER
    # Sent: when the gateway took it; a refusal before that was sent (and failed) then.
    sent_at = pending if pending is not None else (failed_at if failed_at is not None
                                                   else queued)
    read_at = None
    delays = 0
    if not failed and cls >= DELIVERED_LEVEL:
        flags |= DELIVERED
        delays |= delay_bucket((delivered if delivered is not None else sent_at)
                               - sent_at) + 1
        if cls >= READ_LEVEL:
            flags |= READ
            read_at = read if read is not None else (delivered or sent_at)
            delays |= (delay_bucket(read_at - sent_at) + 1) << 5
    first, last, opted = engagement
    if first is not None:
        flags |= REPLIED
        delays |= (delay_bucket(first - sent_at) + 1) << 10
    if opted:
        flags |= OPTED_OUT
    return Figures(flags, sent_at, read_at, first, last, delays)


# --- moving the aggregates --------------------------------------------------------------


class RowChange(NamedTuple):
    """One row's old and new figures, for its contact (domain/contacts.py)."""

    campaign_no: int
    row: int
    old: Figures
    new: Figures


@dataclass
class Deltas:
    """The aggregate changes of a batch of rows, summed before they are written."""

    slots: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (ws, slot)
    delays: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (no, s, b)
    contacts: dict[tuple[int, str], list[RowChange]] = field(default_factory=dict)

    def move(self, workspace: int, campaign_no: int, row: int, number: str | None,
             old: Figures, new: Figures) -> None:
        """Take out what the row counted as, put in what it counts as now."""
        if old == new:
            return
        if (old.flags & ATTEMPTED and new.flags & ATTEMPTED and old.sent_at == new.sent_at
                and old.sent_at is not None):
            self._difference(workspace, campaign_no, old, new)
        else:
            self._count(workspace, campaign_no, old, -1)
            self._count(workspace, campaign_no, new, +1)
        if number is not None and (old.flags or new.flags):
            self.contacts.setdefault((workspace, number), []).append(
                RowChange(campaign_no, row, old, new))

    def _difference(self, workspace: int, campaign_no: int, old: Figures,
                    new: Figures) -> None:
        """`_count(old, -1)` then `_count(new, +1)` for a row sent at the same time in
        both (a status or a reply moved it, the common case): only what differs is
        touched, not every count twice. A reply credited to a row counts 3 things (its
        slot's replied, the reply's own slot, its delay bucket) where the two counts
        took 2 x (6 flags, 2 event slots, 4 delay series)."""
        changed = old.flags ^ new.flags
        slots = self.slots
        if changed:
            key = (workspace, slot_of(new.sent_at))  # type: ignore[arg-type]
            counts = slots.get(key)
            if counts is None:
                counts = slots[key] = [0] * len(SLOT_FIELDS)
            for index, flag in _SLOT_FLAGS:
                if changed & flag:
                    counts[index] += 1 if new.flags & flag else -1
        if old.read_at != new.read_at:
            self._event(workspace, 6, old.read_at, new.read_at)
        if old.reply_at != new.reply_at:
            self._event(workspace, 7, old.reply_at, new.reply_at)
        delays = self.delays
        if changed & SENT:
            key3 = (campaign_no, 0, 0)
            delays[key3] = delays.get(key3, 0) + (1 if new.flags & SENT else -1)
        moved = old.delays ^ new.delays
        if moved:
            for series in (1, 2, 3):
                shift = 5 * (series - 1)
                if not (moved >> shift) & 31:
                    continue
                for packed, sign in (((old.delays >> shift) & 31, -1),
                                     ((new.delays >> shift) & 31, +1)):
                    if packed:  # bucket + 1 (Figures.delay_bucket)
                        key3 = (campaign_no, series, packed - 1)
                        delays[key3] = delays.get(key3, 0) + sign

    def _event(self, workspace: int, index: int, before: float | None,
               after: float | None) -> None:
        """An event's time moved (its count by the slot it happened in)."""
        slots = self.slots
        for at, sign in ((before, -1), (after, +1)):
            if at is not None:
                key = (workspace, slot_of(at))
                counts = slots.get(key)
                if counts is None:
                    counts = slots[key] = [0] * len(SLOT_FIELDS)
                counts[index] += sign

    def _count(self, workspace: int, campaign_no: int, f: Figures, sign: int) -> None:
        if not f.flags & ATTEMPTED or f.sent_at is None:
            return
        slots = self.slots
        key = (workspace, slot_of(f.sent_at))
        counts = slots.get(key)
        if counts is None:
            counts = slots[key] = [0] * len(SLOT_FIELDS)
        for index, flag in _SLOT_FLAGS:
            if f.flags & flag:
                counts[index] += sign
        for at, index in ((f.read_at, 6), (f.reply_at, 7)):
            if at is not None:
                other = slots.setdefault((workspace, slot_of(at)), [0] * len(SLOT_FIELDS))
                other[index] += sign
        delays = self.delays
        if f.flags & SENT:
            delays[(campaign_no, 0, 0)] = delays.get((campaign_no, 0, 0), 0) + sign
        for series in (1, 2, 3):
            bucket = f.delay_bucket(series)
            if bucket is not None:
                key3 = (campaign_no, series, bucket)
                delays[key3] = delays.get(key3, 0) + sign

    def nonzero_slots(self) -> list[tuple[int, int, list[int]]]:
        return [(ws, slot, counts) for (ws, slot), counts in self.slots.items() if any(counts)]

    def nonzero_delays(self) -> list[tuple[int, int, int, int]]:
        return [(no, s, b, n) for (no, s, b), n in self.delays.items() if n]
