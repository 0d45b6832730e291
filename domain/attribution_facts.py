"""What reply attribution knows (SPEC 6.2), kept apart from how it decides.

domain/attribution.py applies the rules; this module holds the facts they are applied
to and what the rules make happen, in the forms the hot path can afford:
- the effects the `Attributor` asks the ingest actor to carry out (`Lookup`, `Ask`,
  `Credit`, `Suppress`);
- a watched row's state (`RowState`): the merge of its facts (a join, so order and
  duplicates never matter) and the two questions rule 2 asks of it: when was it sent,
  and is it a candidate at all (`row_sent`, `row_eligible`);
- a number's `Watch` and a live event's `Pending`, and the event's stored record.
Pure: no threads, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from domain.engagement import Touch
from domain.inbound import InboundEvent
from domain.ledger import bounded_time, to_tenths
from domain.status import Level

EXPLICIT = "explicit"
WINDOW = "window"
PENDING, DELIVERED = int(Level.PENDING), int(Level.DELIVERED)


def pack(campaign_no: int, row: int) -> int:
    return (campaign_no << 32) | row


def unpack(value: int) -> tuple[int, int]:
    return value >> 32, value & 0xFFFFFFFF


# --- effects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup:
    """Find every message row sent to these numbers; answer with `number_rows`."""

    serial: int
    keys: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask a campaign actor for these rows' send state; answer with `row_facts`."""

    serial: int
    campaign_no: int
    rows: tuple[int, ...]


class Credit(NamedTuple):
    """Credit an inbound event to a message (touch None: withdraw the credit). A tuple:
    one is made for every reply (a frozen dataclass costs several times as much)."""

    campaign_no: int
    row: int
    inbound_id: str
    touch: Touch | None


@dataclass(frozen=True, slots=True)
class Suppress:
    """A stop or start of `number` now applies to these workspaces (replacing earlier)."""

    fact_id: str
    number: str
    workspaces: tuple[int, ...]
    at: float
    kind: int
    reason: str | None
    source: str


# --- state ---------------------------------------------------------------------------
#
# One reply makes a Pending, its number a Watch, each row sent there a RowState: lists
# with named positions, not objects. A dataclass's __init__ cost about as much as all
# the rest of a plain reply's deciding (1.5 µs each on our machine, a list 0.25).

# A RowState: what is known of one watched message, the merge of its facts (a join: max
# level; the highest attempt's failure; the latest accepted attempt's earliest send
# time). Times are tenths of a second since the epoch. Like the ledger, a time more than
# MAX_BACKDATE before the message was registered counts as its registration time
# (FLOOR), so the send time here is the one its campaign shows. (The bound applies to
# the earliest time: only times on both sides of that day-old edge could differ from
# the ledger, which bounds each event's time.)
# Attempts (SPEC 9) as the ledger counts them: FAILED is the latest attempt's (ATTEMPT:
# the highest seen); the send time is the latest accepted attempt's (SENT_ATTEMPT):
# attempt 1's earliest pending time, or a later attempt's acceptance (its registration
# at pending; its statuses bring level and failure only).
EARLIEST = 0  # the send time of SENT_ATTEMPT, unbounded (None: not sent)
LEVEL = 1
FAILED = 2
ASKED = 3  # the Ask this row waits for (0: none, complete)
ANSWERED = 4
FLOOR = 5  # registration time (None: not known)
ATTEMPT = 6  # the latest attempt seen: its failure is the row's
SENT_ATTEMPT = 7  # the attempt EARLIEST belongs to


# A row asked about or answered is kept as a tuple of the same positions, made a list
# while a status or registration is merged into it and a tuple again with the answer:
# a tuple of numbers is one object the garbage collector stops walking after it has
# seen it once (and the watch's dict of such rows with it), where a list is walked at
# every collection for the reply's 72 hours (docs/BENCHMARKS.md, wave 7). Readers
# take either.


def new_row(asked: int = 0) -> list[Any]:
    """A RowState with nothing known (waiting for the answer to Ask `asked`)."""
    return [None, 0, False, asked, not asked, None, 1, 1]


def row_sent(state: Sequence[Any]) -> int | None:
    earliest, floor = state[EARLIEST], state[FLOOR]
    if earliest is None or floor is None:
        return earliest
    return bounded_time(earliest, floor)


def row_eligible(state: Sequence[Any]) -> bool:
    return row_sent(state) is not None and not (state[FAILED] and state[LEVEL] < DELIVERED)


def row_merge(state: list[Any], sent: int | None, level: int, failed: bool,
              floor: int | None = None, attempt: int = 1, sent_attempt: int = 1) -> None:
    if sent is not None:
        if sent_attempt > state[SENT_ATTEMPT]:
            state[SENT_ATTEMPT], state[EARLIEST] = sent_attempt, sent
        elif sent_attempt == state[SENT_ATTEMPT] and (state[EARLIEST] is None
                                                      or sent < state[EARLIEST]):
            state[EARLIEST] = sent
    if level > state[LEVEL]:
        state[LEVEL] = level
    if attempt > state[ATTEMPT]:  # a newer attempt: the older one's failure is history
        state[ATTEMPT], state[FAILED] = attempt, failed
    elif failed and attempt == state[ATTEMPT]:
        state[FAILED] = True
    if floor is not None:
        state[FLOOR] = floor


def row_merge_event(state: list[Any], level: int, failed: bool, at: float, attempt: int = 1,
                    registration: bool = False) -> None:
    """A status, or a registration (the gateway id or send outcome of an attempt)."""
    sends = level >= PENDING and (attempt == 1 or registration)
    row_merge(state, to_tenths(at) if sends else None, level, failed, None, attempt, attempt)


# A Watch: a number with live inbound events, and the rows sent to it. Most numbers
# were sent one message: that row is kept in the watch itself (W_ROWS its packed number,
# W_STATE its state), not in a dict of one (224 bytes, for each open reply's 72 hours);
# a second row makes the dict. Read and written through `watch_row`, `watch_set_row`,
# `watch_rows`.
W_LOOKUP = 0  # the Lookup this watch waits for (0: answered)
W_ROWS = 1  # None (no row), the one row's packed number, or packed row -> RowState
W_EVENTS = 2  # its live events' inbound ids: the id itself while it is the only one
W_UNANSWERED = 3  # rows asked about whose answer has not come yet
W_STATE = 4  # the RowState of the one row (W_ROWS an int), else None


def new_watch(lookup: int, inbound_id: str) -> list[Any]:
    """A watch of one live event. Most numbers have one: its id is kept as it is, not
    in a set (a set of one is 216 bytes and one more object the garbage collector walks
    at every collection, for each open reply's 72 hours: docs/BENCHMARKS.md, wave 7)."""
    return [lookup, None, inbound_id, 0, None]


def watch_row(watch: list[Any], packed: int) -> Any:
    """The state of one of the watch's rows, None if it has not that row."""
    rows = watch[W_ROWS]
    if rows.__class__ is int:
        return watch[W_STATE] if rows == packed else None
    return None if rows is None else rows.get(packed)


def watch_set_row(watch: list[Any], packed: int, state: Any) -> None:
    """Set (or add) one row's state."""
    rows = watch[W_ROWS]
    if rows is None or rows == packed:
        watch[W_ROWS], watch[W_STATE] = packed, state
    elif rows.__class__ is int:  # a second row: the dict
        watch[W_ROWS], watch[W_STATE] = {rows: watch[W_STATE], packed: state}, None
    else:
        rows[packed] = state


def watch_rows(watch: list[Any]) -> list[tuple[int, Any]]:
    """(packed row, state) of every row of the watch."""
    rows = watch[W_ROWS]
    if rows.__class__ is int:
        return [(rows, watch[W_STATE])]
    return [] if rows is None else list(rows.items())



def watch_add(watch: list[Any], inbound_id: str) -> None:
    events = watch[W_EVENTS]
    if events.__class__ is str:
        if events != inbound_id:
            watch[W_EVENTS] = {events, inbound_id}
    else:
        events.add(inbound_id)


def watch_events(watch: list[Any]) -> tuple[str, ...] | list[str]:
    """The watch's live events' ids, in order."""
    events = watch[W_EVENTS]
    if events.__class__ is str:
        return (events,)
    return sorted(events)


def watch_discard(watch: list[Any], inbound_id: str) -> bool:
    """Drop one event's id from the watch; True when none is left."""
    events = watch[W_EVENTS]
    if events.__class__ is str:
        return events == inbound_id
    events.discard(inbound_id)
    if len(events) == 1:
        watch[W_EVENTS] = next(iter(events))
    return not events


def complete(watch: list[Any]) -> bool:
    return not watch[W_LOOKUP] and not watch[W_UNANSWERED]


# A Pending: a live inbound event, decided, but open to better facts until its window
# ends (or an explicit credit, final at once, on its way to the store).
SOURCE = 0
EVENT = 1
KEY = 2  # number key (domain/phones.number_key), None without a number
RECEIVED = 3
TARGET = 4  # (campaign_no, row) credited, or None
HOW = 5  # EXPLICIT | WINDOW | None
WORKSPACES = 6  # where a stop / start applies
COUNTED = 7  # counted in the outcomes already


def new_pending(source: str, event: InboundEvent, key: int | None, received_at: float,
                target: tuple[int, int] | None = None, how: str | None = None,
                workspaces: tuple[int, ...] = (), counted: bool = False) -> list[Any]:
    return [source, event, key, received_at, target, how, workspaces, counted]


def record(pending: list[Any]) -> tuple[Any, ...]:
    """The inbound table's row of a reply (`stored`, from its Pending)."""
    target = pending[TARGET]
    c, r = target if target else (None, None)
    return stored(pending[EVENT], pending[SOURCE], c, r, pending[HOW], pending[RECEIVED])


def stored(event: tuple[Any, ...], source: str, campaign_no: int | None, row: int | None,
           how: str | None, received_at: float) -> tuple[Any, ...]:
    """The inbound table's row, in RECORD_COLUMNS order (store/engagement.py): the
    event's fields as they are, then source, campaign_no, row, how, received_at."""
    return (*event, source, campaign_no, row, how, received_at)


def touch_of(event: InboundEvent) -> Touch:
    # made without Touch.__new__'s Python frame, and by position, not by the named
    # tuple's properties: one per credit of every reply
    # (at, kind, via, button_payload, button_title, text)
    return tuple.__new__(Touch, (event[3], event[1], event[2], event[7], event[8], event[9]))
