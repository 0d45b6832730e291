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

from collections import Counter
from collections.abc import Iterable
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


def summarize(touches: Iterable[tuple[str, Touch]]) -> RowEngagement:
    """A row's figures from the set of its credited events (order never matters: ties
    are broken by inbound id). Fields are read by position, not through Touch's
    properties: every credit of every reply comes here."""
    replied_at: float | None = None
    count = 0
    opted: float | None = None
    last_button: tuple[float, str, tuple[str | None, str | None]] | None = None
    last_text: tuple[float, str, str | None] | None = None
    buttons: set[tuple[str | None, str | None]] | None = None
    for inbound_id, (at, kind, via, payload, title, text) in touches:
        if kind == REPLY and via == MESSAGE:  # Touch.is_reply
            count += 1
            if replied_at is None or at < replied_at:
                replied_at = at
            if last_text is None or (at, inbound_id) > last_text[:2]:
                last_text = (at, inbound_id, text)
        if kind == STOP and (opted is None or at < opted):
            opted = at
        if (payload or title) and via == MESSAGE:  # Touch.button
            button = (payload, title)
            if buttons is None:
                buttons = {button}
            else:
                buttons.add(button)
            if last_button is None or (at, inbound_id) > last_button[:2]:
                last_button = (at, inbound_id, button)
    if not count and opted is None and not buttons:
        return NOTHING
    return RowEngagement(replied_at, count, last_button[2] if last_button else None,
                         frozenset(buttons) if buttons else NO_BUTTONS, opted,
                         last_text[2] if last_text else None)


class EngagementBook:
    """The engagement of one campaign's rows; touched only by its campaign actor."""

    def __init__(self) -> None:
        self.touches: dict[int, dict[str, Touch]] = {}  # only rows with any
        self.rows: dict[int, RowEngagement] = {}
        self.starts: dict[int, float] = {}  # the time each row's reply delay is measured from
        self.replied = 0
        self.opted_out = 0
        self.buttons: Counter[tuple[str | None, str | None]] = Counter()
        self.reply_latency = LatencyHistogram()

    def __contains__(self, row: int) -> bool:
        return row in self.touches

    def __len__(self) -> int:
        return len(self.touches)

    def row(self, row: int) -> RowEngagement:
        return self.rows.get(row, NOTHING)

    def credit(self, row: int, inbound_id: str, touch: Touch | None, start: float) -> bool:
        """Credit an event to the row (touch None: withdraw it); True if the row changed."""
        mine = self.touches.get(row)
        if touch is None:
            if not mine or inbound_id not in mine:
                return False
            del mine[inbound_id]
        else:
            if mine is None:
                mine = self.touches[row] = {}
            if mine.get(inbound_id) == touch:
                return False
            mine[inbound_id] = touch
        self._update(row, start)
        return True

    def restart(self, row: int, start: float) -> bool:
        """The row's send time moved (an earlier ACK arrived): re-measure its delay."""
        if row not in self.rows or self.starts.get(row) == start:
            return False
        self._update(row, start)
        return True

    def _update(self, row: int, start: float) -> None:
        mine = self.touches.get(row)
        after = summarize(mine.items()) if mine else NOTHING
        before = self.rows.get(row, NOTHING)
        self._account(before, self.starts.get(row, start), -1)
        self._account(after, start, +1)
        if not mine:
            self.touches.pop(row, None)
        if after is NOTHING:  # e.g. only a START was credited: nothing to show or count
            self.rows.pop(row, None)
            self.starts.pop(row, None)
        else:
            self.rows[row] = after
            self.starts[row] = start

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
