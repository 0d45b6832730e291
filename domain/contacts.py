"""A number's history across a workspace's campaigns (SPEC 8 "Contacts"), kept as the
changes of its message rows arrive (domain/insights.py `RowChange`).

Counts move by the difference each row change makes. Three figures are not sums and
need more care to stay a function of the stored rows, whatever the order of changes:
- the latest read and the latest reply: a maximum only grows by adding; when a change
  takes away the value that was the maximum (a credit moved to another number, an
  earlier read time arrived), the contact is recounted from its rows (`RECOUNT_*`),
- the two latest sends and whether each failed as a bad number (domain/tiers.py's
  unreachable): kept as the top two by (send time, campaign, row); when a change takes
  a kept send out or moves its time, they are recounted from the rows.
Recounts are rare (they read only this number's rows: store/insights.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from domain.insights import (
    ATTEMPTED,
    BAD_NUMBER,
    DELIVERED,
    FAILED,
    READ,
    REPLIED,
    Figures,
    RowChange,
)

UNREACHABLE_SENDS = 2  # SPEC 8: "the last 2 sends failed as Not on WhatsApp / bad number"
RECOUNT_READ, RECOUNT_REPLY, RECOUNT_SENDS = 1, 2, 4
COUNTED = (("received", ATTEMPTED), ("delivered", DELIVERED), ("read", READ),
           ("replied", REPLIED), ("failed", FAILED))


class Send(NamedTuple):
    at: float
    campaign_no: int
    row: int
    bad: bool  # failed as Not on WhatsApp / bad number


@dataclass(slots=True)
class Contact:
    number: str
    received: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    last_read_at: float | None = None
    last_replied_at: float | None = None
    sends: tuple[Send, ...] = ()  # the latest first, at most UNREACHABLE_SENDS

    @property
    def unreachable(self) -> bool:
        return len(self.sends) == UNREACHABLE_SENDS and all(s.bad for s in self.sends)

    @property
    def engaged_at(self) -> float | None:
        """The latest read or reply: what domain/tiers.py's engaged looks at."""
        read, replied = self.last_read_at, self.last_replied_at
        if read is None or (replied is not None and replied > read):
            return replied
        return read


def send_of(change_no: int, row: int, f: Figures) -> Send | None:
    if not f.flags & ATTEMPTED or f.sent_at is None:
        return None
    return Send(f.sent_at, change_no, row, bool(f.flags & BAD_NUMBER))


def _order(send: Send) -> tuple[float, int, int]:
    return (send.at, send.campaign_no, send.row)


def apply_changes(contact: Contact, changes: Iterable[RowChange]) -> int:
    """Move the contact by these row changes; return the RECOUNT_* flags of what must be
    recounted from its rows (store/insights.py does, then calls `recounted`).

    What a change leaves as it was is not looked at when looking could change nothing
    (a reply credited to a row moves its replied count and latest reply, never its read
    or its send): the result is the same as moving every figure, at a fraction of the
    cost (tests/test_insights_incremental.py compares both)."""
    recount = 0
    for change in changes:
        old, new = change.old, change.new
        changed = old.flags ^ new.flags
        if changed & _COUNTED_FLAGS:
            for name, flag in COUNTED:  # received is either of two flags
                step = bool(new.flags & flag) - bool(old.flags & flag)
                if step:
                    setattr(contact, name, getattr(contact, name) + step)
        if not recount & RECOUNT_READ and _may_move(contact.last_read_at, old.read_at,
                                                    new.read_at):
            contact.last_read_at, lost = _max_moved(contact.last_read_at, old.read_at,
                                                    new.read_at)
            recount |= RECOUNT_READ if lost else 0
        if not recount & RECOUNT_REPLY and _may_move(contact.last_replied_at,
                                                     old.last_reply_at, new.last_reply_at):
            contact.last_replied_at, lost = _max_moved(contact.last_replied_at,
                                                       old.last_reply_at, new.last_reply_at)
            recount |= RECOUNT_REPLY if lost else 0
        if not recount & RECOUNT_SENDS and _send_may_move(contact, change):
            recount |= _sends_moved(contact, send_of(change.campaign_no, change.row, old),
                                    send_of(change.campaign_no, change.row, new))
    return recount


_COUNTED_FLAGS = 0
for _, _flag in COUNTED:
    _COUNTED_FLAGS |= _flag
_SEND_FLAGS = ATTEMPTED | BAD_NUMBER  # what send_of reads of the flags, with sent_at


def _may_move(current: float | None, old: float | None, new: float | None) -> bool:
    """`_max_moved` could change something: the value changed, or (only in a contact
    that does not hold its rows' maximum) the unchanged value is above it."""
    return old != new or (new is not None and (current is None or new > current))


def _send_may_move(contact: Contact, change: RowChange) -> bool:
    """`_sends_moved` could change the kept sends: the row's send changed, or (only in a
    contact that does not hold its rows' latest two) it is not kept and not older than
    the oldest kept one, or kept with another bad mark."""
    old, new = change.old, change.new
    if (old.flags ^ new.flags) & _SEND_FLAGS or old.sent_at != new.sent_at:
        return True
    if not new.flags & ATTEMPTED or new.sent_at is None:
        return False  # no send before or after
    order = (new.sent_at, change.campaign_no, change.row)
    kept = contact.sends
    for send in kept:
        if _order(send) == order:  # kept as it was, unless its bad mark differs
            return send.bad != bool(new.flags & BAD_NUMBER)
    return len(kept) < UNREACHABLE_SENDS or order > _order(kept[-1])


def _max_moved(current: float | None, old: float | None, new: float | None
               ) -> tuple[float | None, bool]:
    """The maximum after one value changed from old to new; True when it may have
    dropped (old was the maximum and went away or down): recount."""
    if old is not None and old == current and (new is None or new < old):
        return current, True
    if new is not None and (current is None or new > current):
        return new, False
    return current, False


def _sends_moved(contact: Contact, old: Send | None, new: Send | None) -> int:
    kept = list(contact.sends)
    if old is not None:
        index = next((i for i, s in enumerate(kept) if s[:3] == old[:3]), None)
        if index is not None:
            if new is None or new[:3] != old[:3]:
                return RECOUNT_SENDS  # a kept send left or moved: the third may be back
            kept[index] = new
            contact.sends = tuple(kept)
            return 0
    if new is not None and all(s[:3] != new[:3] for s in kept):
        kept.append(new)
        kept.sort(key=_order, reverse=True)
        contact.sends = tuple(kept[:UNREACHABLE_SENDS])
    return 0


def recounted(contact: Contact, what: int, last_read_at: float | None,
              last_replied_at: float | None, sends: Iterable[Send]) -> None:
    """Set what a recount found (the store read it from the number's rows)."""
    if what & RECOUNT_READ:
        contact.last_read_at = last_read_at
    if what & RECOUNT_REPLY:
        contact.last_replied_at = last_replied_at
    if what & RECOUNT_SENDS:
        contact.sends = tuple(sorted(sends, key=_order, reverse=True)[:UNREACHABLE_SENDS])
