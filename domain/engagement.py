"""What recipients did with one campaign's messages (SPEC 6.3): replies, button taps,
opt-outs, kept sparse and counted in O(1).

Most messages never get an answer, so nothing here is per message: an `EngagementBook`
keeps, only for the rows that have any, the inbound events credited to them (by
inbound id, so a duplicate counts once and a credit can be withdrawn when attribution
moves it to another message, domain/attribution.py). Every figure of a row is derived
from that set (`summarize`), and the campaign's counters move by the difference a
change made, so reading the statistics never scans.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from domain.inbound import MESSAGE, REPLY, STOP
from domain.ledger import LatencyHistogram
from domain.status import percent
from domain.timefmt import iso_time

MAX_BUTTONS = 20  # the statistics list the most tapped buttons (payloads may be per send)
# Filters of the per-recipient table beside the status ones: rows with a reply (a
# message that is not a keyword) or with an opt-out, as (kind[, via]) of their events.
ENGAGEMENT_FILTERS: dict[str, tuple[int, ...]] = {"replied": (REPLY, MESSAGE),
                                                   "opted_out": (STOP,)}


class Touch(NamedTuple):
    """An inbound event as credited to one message."""

    at: float
    kind: int  # inbound.REPLY / STOP / START
    via: int  # inbound.MESSAGE / PREFERENCE / FAILURE
    payload: str | None = None
    title: str | None = None
    text: str | None = None

    @property
    def is_reply(self) -> bool:
        """A reply is something the recipient wrote or tapped that is not a keyword."""
        return self.kind == REPLY and self.via == MESSAGE

    @property
    def button(self) -> tuple[str | None, str | None] | None:
        return (self.payload, self.title) if (self.payload or self.title) else None


@dataclass(frozen=True, slots=True)
class RowEngagement:
    """One message's engagement, as the API, the CSV and the live table show it."""

    replied_at: float | None = None  # first reply
    reply_count: int = 0
    button: tuple[str | None, str | None] | None = None  # the last button tapped
    buttons: frozenset[tuple[str | None, str | None]] = frozenset()
    opted_out_at: float | None = None
    text: str | None = None  # the latest reply's text (engagement.keep_reply_text)


NOTHING = RowEngagement()
# Most rows' replies tap no button: they share one empty set (an object fewer per row to
# keep and for the garbage collector to visit).
NO_BUTTONS: frozenset[tuple[str | None, str | None]] = frozenset()


def row_fields(engagement: RowEngagement | None) -> dict[str, Any]:
    """A row's engagement as the rows API and the live table name it. The text is there
    only if engagement.keep_reply_text kept it when the reply arrived."""
    e = engagement or NOTHING
    return {
        "replied_at": iso_time(e.replied_at),
        "reply_count": e.reply_count,
        "button": {"payload": e.button[0], "title": e.button[1]} if e.button else None,
        "opted_out_at": iso_time(e.opted_out_at),
        "reply_text": e.text,
    }


def _order(touch: Touch) -> tuple[Any, ...]:
    """A total order of touches by their content (None before any string), for ties."""
    return tuple((value is not None, value or "") if i >= 3 else value
                 for i, value in enumerate(touch))


def _later(touch: Touch, than: Touch | None) -> bool:
    if than is None or touch[0] != than[0]:
        return than is None or touch[0] > than[0]
    return _order(touch) > _order(than)


def summarize(touches: Iterable[tuple[Any, Touch]]) -> RowEngagement:
    """A row's figures from the set of its credited events, given as (id, touch) pairs
    (order never matters: of two events at the same time, the latest text and button
    are the greater touch's by content, so the result does not depend on the ids
    either). Fields are read by position, not through Touch's properties: every credit
    of every reply comes here."""
    replied_at: float | None = None
    count = 0
    opted: float | None = None
    last_button: Touch | None = None
    last_text: Touch | None = None
    buttons: set[tuple[str | None, str | None]] | None = None
    for _id, touch in touches:
        at, kind, via, payload, title, _text = touch
        if kind == REPLY and via == MESSAGE:  # Touch.is_reply
            count += 1
            if replied_at is None or at < replied_at:
                replied_at = at
            if last_text is None or _later(touch, last_text):
                last_text = touch
        if kind == STOP and (opted is None or at < opted):
            opted = at
        if (payload or title) and via == MESSAGE:  # Touch.button
            button = (payload, title)
            if buttons is None:
                buttons = {button}
            else:
                buttons.add(button)
            if last_button is None or _later(touch, last_button):
                last_button = touch
    if not count and opted is None and not buttons:
        return NOTHING
    return RowEngagement(replied_at, count,
                         (last_button[3], last_button[4]) if last_button else None,
                         frozenset(buttons) if buttons else NO_BUTTONS, opted,
                         last_text[5] if last_text else None)


def id_key(inbound_id: str) -> int:
    """What the book keeps of a credited event's id: enough to tell the events of one row
    apart (a 64-bit hash, the same within the process; the book is rebuilt from the
    store at start), at 8 bytes instead of the id's 60 to 120."""
    return hash(inbound_id)


class EngagedRows:
    """The rows with something to show, as a read-only mapping view (row -> figures)."""

    def __init__(self, book: EngagementBook) -> None:
        self._book = book

    def __contains__(self, row: int) -> bool:
        """Cheap, and wider than the rows shown: also a row whose only event shows
        nothing (a START); `restart` and `get` know the difference."""
        return row in self._book

    def __bool__(self) -> bool:
        return bool(self._book._shown)

    def __len__(self) -> int:
        return self._book._shown

    def get(self, row: int, default: RowEngagement | None = None) -> RowEngagement | None:
        found = self._book.get(row)
        return default if found is None else found

    def items(self) -> Iterator[tuple[int, RowEngagement]]:
        for row in self._book.engaged():
            found = self._book.get(row)
            if found is not None:
                yield row, found


class EngagementBook:
    """The engagement of one campaign's rows; touched only by its campaign actor.

    Memory (SPEC 4: <= 100 bytes per message, engagement included): nothing per row
    until the campaign's first credit; then a slot number per row (4 bytes, an array
    as long as the highest row credited) and, per row with engagement, one slot of
    flat arrays holding its first event: the id's key, time, kind and via, button
    (a number in the book's table of distinct buttons), and the time its reply delay
    is measured from (about 30 bytes). A row's further events, a kept reply text and
    freed slots live in small dicts and lists. Figures are derived from the events
    when asked (`get`), not stored: a row's few events are summarized in microseconds.
    """

    def __init__(self) -> None:
        self._slot = array("I")  # row -> its slot + 1 (0: none); grown on demand
        self._row = array("I")  # slot -> row
        self._key = array("q")  # slot -> its first event's id_key
        self._at = array("d")  # slot -> its first event's time
        self._kind_via = bytearray()  # slot -> kind * 16 + via (255: slot free)
        self._button = array("I")  # slot -> index + 1 in _buttons (0: no button)
        self._start = array("d")  # slot -> when the row's reply delay is measured from
        self._texts: dict[int, str] = {}  # slot -> its first event's text, when kept
        self._more: dict[int, list[tuple[int, Touch]]] = {}  # slot -> further events
        self._free: list[int] = []
        self._buttons: list[tuple[str | None, str | None]] = []
        self._button_no: dict[tuple[str | None, str | None], int] = {}
        self._shown = 0  # rows whose figures are not NOTHING
        self.replied = 0
        self.opted_out = 0
        self.buttons: Counter[tuple[str | None, str | None]] = Counter()
        self.reply_latency = LatencyHistogram()

    def __contains__(self, row: int) -> bool:
        """The row has credited events (a START alone shows nothing, but counts here)."""
        return row < len(self._slot) and self._slot[row] != 0

    def __len__(self) -> int:
        return len(self._row) - len(self._free)

    @property
    def rows(self) -> EngagedRows:
        return EngagedRows(self)

    def engaged(self) -> Iterator[int]:
        """Rows with credited events, in slot order."""
        kind_via = self._kind_via
        for slot, row in enumerate(self._row):
            if kind_via[slot] != 255:
                yield row

    def credited(self, row: int) -> list[tuple[int, Touch]]:
        """(id_key, touch) of every event credited to the row."""
        slot = self._slot[row] - 1 if row < len(self._slot) else -1
        return self._touches(slot) if slot >= 0 else []

    def get(self, row: int) -> RowEngagement | None:
        """The row's figures, None when it has nothing to show."""
        slot = self._slot[row] - 1 if row < len(self._slot) else -1
        if slot < 0:
            return None
        summary = summarize(self._touches(slot))
        return None if summary is NOTHING else summary

    def row(self, row: int) -> RowEngagement:
        return self.get(row) or NOTHING

    def _touches(self, slot: int) -> list[tuple[int, Touch]]:
        kind_via = self._kind_via[slot]
        button = self._button[slot]
        payload, title = self._buttons[button - 1] if button else (None, None)
        first = tuple.__new__(Touch, (self._at[slot], kind_via >> 4, kind_via & 15, payload,
                                      title, self._texts.get(slot)))
        more = self._more.get(slot)
        return [(self._key[slot], first), *more] if more else [(self._key[slot], first)]

    def credit(self, row: int, inbound_id: str, touch: Touch | None, start: float) -> bool:
        """Credit an event to the row (touch None: withdraw it); True if the row changed."""
        key = id_key(inbound_id)
        slot = self._slot[row] - 1 if row < len(self._slot) else -1
        if slot < 0 and touch is not None and touch[1] == REPLY and touch[2] == MESSAGE \
                and touch[3] is None and touch[4] is None:
            # A row's first event, a plain reply (most credits): its figures are that
            # reply's, so `summarize` and `_account` are written out (no RowEngagement
            # made and dropped per credit: docs/BENCHMARKS.md, wave 8).
            self.replied += 1
            self.reply_latency.add(max(0.0, touch[0] - start), 1)
            self._shown += 1
            self._store(row, -1, [(key, touch)], start)
            return True
        touches = self._touches(slot) if slot >= 0 else []
        kept = [pair for pair in touches if pair[0] != key]
        if touch is None:
            if len(kept) == len(touches):
                return False
        else:
            if len(kept) != len(touches) and (key, touch) in touches:
                return False
            kept.append((key, touch))
        before = summarize(touches) if touches else NOTHING
        old_start = self._start[slot] if slot >= 0 else start
        after = summarize(kept) if kept else NOTHING
        self._account(before, old_start, -1)
        self._account(after, start, +1)
        self._shown += (after is not NOTHING) - (before is not NOTHING)
        self._store(row, slot, kept, start)
        return True

    def restart(self, row: int, start: float) -> bool:
        """The row's send time moved (an earlier ACK arrived): re-measure its delay."""
        slot = self._slot[row] - 1 if row < len(self._slot) else -1
        if slot < 0 or self._start[slot] == start:
            return False
        summary = summarize(self._touches(slot))
        if summary is NOTHING:
            return False
        self._account(summary, self._start[slot], -1)
        self._account(summary, start, +1)
        self._start[slot] = start
        return True

    def _store(self, row: int, slot: int, touches: list[tuple[int, Touch]],
               start: float) -> None:
        """Put the row's events in its slot (taking one, or freeing it when none)."""
        if not touches:
            if slot >= 0:
                self._slot[row] = 0
                self._kind_via[slot] = 255
                self._texts.pop(slot, None)
                self._more.pop(slot, None)
                self._free.append(slot)
            return
        (key, first), *more = touches
        button = 0
        if first.payload is not None or first.title is not None:
            pair = (first.payload, first.title)
            button = self._button_no.get(pair, 0)
            if not button:
                self._buttons.append(pair)
                button = self._button_no[pair] = len(self._buttons)
        kind_via = first.kind * 16 + first.via
        if slot < 0:
            if self._free:
                slot = self._free.pop()
                self._row[slot], self._key[slot], self._at[slot] = row, key, first.at
                self._kind_via[slot], self._button[slot] = kind_via, button
                self._start[slot] = start
            else:
                slot = len(self._row)
                self._row.append(row)
                self._key.append(key)
                self._at.append(first.at)
                self._kind_via.append(kind_via)
                self._button.append(button)
                self._start.append(start)
            size = len(self._slot)
            if row >= size:  # room for this row, and some after it (an eighth more)
                grown = max(row + 1024, size + size // 8)
                self._slot.frombytes(bytes(self._slot.itemsize * (grown - size)))
            self._slot[row] = slot + 1
        else:
            self._key[slot], self._at[slot] = key, first.at
            self._kind_via[slot], self._button[slot] = kind_via, button
            self._start[slot] = start
        if first.text is not None:
            self._texts[slot] = first.text
        else:
            self._texts.pop(slot, None)
        if more:
            self._more[slot] = more
        else:
            self._more.pop(slot, None)

    def _account(self, summary: RowEngagement, start: float, sign: int) -> None:
        if summary is NOTHING:
            return
        if summary.replied_at is not None:
            self.replied += sign
            self.reply_latency.add(max(0.0, summary.replied_at - start), sign)
        if summary.opted_out_at is not None:
            self.opted_out += sign
        for button in summary.buttons:
            self.buttons[button] += sign
            if not self.buttons[button]:
                del self.buttons[button]

    def statistics(self, delivered: int) -> dict[str, Any]:
        """SPEC 6.3's figures; `delivered` is the campaign's total_delivered_count."""
        top = sorted(self.buttons.items(), key=lambda kv: (-kv[1], kv[0][1] or "",
                                                           kv[0][0] or ""))[:MAX_BUTTONS]
        return {
            "total_replied_count": self.replied,
            "reply_rate": percent(self.replied, delivered),
            "time_to_reply": {"median": self.reply_latency.quantile(0.5),
                              "p90": self.reply_latency.quantile(0.9)},
            "total_opted_out_count": self.opted_out,
            # Recipients the sender skipped: the campaign actor sets it from its skips
            # (domain/skips.py, SPEC 9); 0 where there is none.
            "total_skipped_count": 0,
            "buttons": [{"payload": p, "title": t, "count": n} for (p, t), n in top],
        }


def empty_statistics() -> dict[str, Any]:
    return EngagementBook().statistics(0)
