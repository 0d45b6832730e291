"""The open replies at rest, packed (SPEC 4's memory bar, SPEC 6.2).

A plain reply stays open for the reply window (72 hours by default) after it was
credited, so that a later registration or status can still move its credit. Kept as
the attributor's lists and tuples (a `Pending`, its `InboundEvent`, the number's
`Watch`, the row's state, the credit's tuple) one cost ~890 bytes for those 72 hours
(bench/live_replies.py): ~60 bytes per message of the memory row's million, where two
thirds of the tenth replied are placed by their number (docs/BENCHMARKS.md, wave 10).

Once such a reply is decided and nothing is waited for (its number sent one row, or
none, every answer in), what the rules may still read of it is a handful of numbers.
`FrozenReplies` keeps them in one fixed-size record per slot of one bytearray: no
Python object per reply but the id string (the key of the attributor's `live`), the
slot number and the dict entries that find it. The attributor packs a reply when it is
first credited (`Attributor._rest`: its store record is made then) or at the next
checkpoint (`take_ops`), and thaws it, rebuilding exactly the lists it held, when
anything touches it again (a second reply from the number, a registration to it, a
status that changes whether its row is a candidate); the rules run only on the lists,
in domain/attribution.py, so what is decided does not depend on the form.

Only the common case is packed: a message (not a stop, a start or a failure) that names
no message id, whose number is E.164 digits and whose times are floats and tenths
(ints); anything else stays in the lists. Pure: no threads, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from domain.attribution_facts import (
    ANSWERED,
    ASKED,
    ATTEMPT,
    COUNTED,
    EARLIEST,
    EVENT,
    EXPLICIT,
    FAILED,
    FLOOR,
    HOW,
    KEY,
    LEVEL,
    RECEIVED,
    SENT_ATTEMPT,
    SOURCE,
    TARGET,
    W_ROWS,
    W_STATE,
    WINDOW,
    WORKSPACES,
    new_pending,
    new_watch,
    stored,
)
from domain.inbound import MESSAGE, REPLY, InboundEvent

NOTHING = -(1 << 63)  # an int column's None
HOWS = (None, WINDOW, EXPLICIT)
HOW_CODES = {how: code for code, how in enumerate(HOWS)}
WINDOW_CODE = HOW_CODES[WINDOW]
NO_ROW = (None, 0, False, 0, True, None, 1, 1)  # a watch without a row (not kept)
NO_EXTRAS = (None, None, None, None)
LOG = "log"  # the op of a FrozenLog among the attributor's store operations


def _event(inbound_id: str, at: float, number: int, workspace: int,
           extras: tuple[Any, ...]) -> InboundEvent:
    """A frozen reply's event from its packed fields (the form `freeze` takes)."""
    return InboundEvent(inbound_id, REPLY, MESSAGE, at, str(number), _value(workspace), None,
                        *extras)


def _target(code: int) -> tuple[int, int] | None:
    """A packed (campaign_no, row) credit, or None."""
    return None if code == NOTHING else (code >> 32, code & 0xFFFFFFFF)


def _value(code: int) -> int | None:
    return None if code == NOTHING else code


# One slot's record, little-endian, no padding: the reply's received time (first: the
# window's scan reads it alone), its time, its number as an int, its workspace, its
# number key, its credit (packed campaign and row), the watch's one row (packed), the
# source's and `how`'s codes, then the row's state (domain/attribution_facts.py
# RowState, always answered): earliest, level, failed, asked, floor, attempt, sent
# attempt. Int fields hold NOTHING for None. One struct call per freeze: sixteen
# array appends cost ~3 µs a reply (docs/BENCHMARKS.md, wave 10).
RECORD = struct.Struct("<ddqqqqqBBqb?qqii")
RECEIVED_AT = struct.Struct("<d")
TARGET_AT = struct.Struct("<q")  # offset 40
ROW_AT = struct.Struct("<q")  # offset 48
KEY_AT = struct.Struct("<q")  # offset 32
STATE = struct.Struct("<qb?qqii")  # offset 58
STATE_OFFSET = 58
assert RECORD.size == STATE_OFFSET + STATE.size


class FrozenReplies:
    """Decided plain replies, one slot each: the reply, its number's watch and the one
    row sent there (see the module's docstring). Slots are reused once thawed."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []  # the reply's id (the same str as `live`'s key)
        self.records = bytearray()  # RECORD per slot
        self.sources: list[str] = []
        self._source_codes: dict[str, int] = {}
        # the rare extras of a frozen event: slot -> (button payload, title, text, reason)
        self.extras: dict[int, tuple[Any, ...]] = {}
        self._free: list[int] = []
        self._log = FrozenLog()

    def take_log(self) -> FrozenLog | None:
        """The store records of the replies frozen with `log` since the last call (None:
        none), handed to the checkpoint; a new log starts."""
        log = self._log
        if not log.ids:
            return None
        log.sources = tuple(self.sources)
        self._log = FrozenLog()
        return log

    def __len__(self) -> int:
        return len(self.ids) - len(self._free)

    def freeze(self, pending: list[Any], watch: list[Any], log: bool = False) -> int | None:
        """A slot holding this decided reply and its number's watch, or None (nothing
        kept) when either is not of the common form. The caller checked that the watch
        waits for nothing and holds this reply only. Once per reply: written out.
        `log`: its store record is owed to the next checkpoint (`take_log`)."""
        event: InboundEvent = pending[EVENT]
        number = event[4]
        if (event[1] != REPLY or event[2] != MESSAGE or event[6] is not None
                or event[3].__class__ is not float or pending[RECEIVED].__class__ is not float
                or not pending[COUNTED] or pending[WORKSPACES] or number is None
                or not number.isdigit() or not number.isascii() or number[0] == "0"
                or len(number) > 18):
            return None  # not a plain message, or a number the int would not give back
        how = HOW_CODES.get(pending[HOW], -1)
        row, state = watch[W_ROWS], watch[W_STATE]
        if row is None:
            state = NO_ROW
        elif row.__class__ is not int or state is None or not state[ANSWERED] or how < 0:
            return None  # several rows (the dict form), or waiting
        source = self._source_codes.get(pending[SOURCE])
        if source is None and (source := self._new_source(pending[SOURCE])) is None:
            return None
        target, workspace = pending[TARGET], event[5]
        if workspace == NOTHING:
            return None  # (the one int the record reads as None)
        earliest, floor = state[EARLIEST], state[FLOOR]
        try:  # struct refuses what a field cannot hold exactly (a float row, a huge int)
            record = RECORD.pack(
                pending[RECEIVED], event[3], int(number),
                NOTHING if workspace is None else workspace, pending[KEY],
                NOTHING if target is None else (target[0] << 32) | target[1],
                NOTHING if row is None else row, source, how,
                NOTHING if earliest is None else earliest, state[LEVEL], state[FAILED],
                state[ASKED], NOTHING if floor is None else floor, state[ATTEMPT],
                state[SENT_ATTEMPT])
        except struct.error:
            return None
        return self._place(record, event, log)

    def freeze_credit(self, event: InboundEvent, source: str, key: int, received: float,
                      packed: int, state: tuple[Any, ...]) -> int | None:
        """`freeze` of a plain reply just credited by rule 2 to its number's one row
        (`packed`, answered, `state`): what `Attributor._credit_ones` has not checked
        already (the event is a plain message naming no id, counted, with no
        workspaces; its watch waits for nothing), for every first credit of a batch. Its
        store record is owed to the next checkpoint (`take_log`)."""
        number, at, workspace = event[4], event[3], event[5]
        if (at.__class__ is not float or received.__class__ is not float or number is None
                or not number.isdigit() or not number.isascii() or number[0] == "0"
                or len(number) > 18 or workspace == NOTHING):
            return None  # as in `freeze`
        code = self._source_codes.get(source)
        if code is None and (code := self._new_source(source)) is None:
            return None
        earliest, floor = state[EARLIEST], state[FLOOR]
        try:
            record = RECORD.pack(
                received, at, int(number), NOTHING if workspace is None else workspace, key,
                packed, packed, code, WINDOW_CODE,
                NOTHING if earliest is None else earliest, state[LEVEL], state[FAILED],
                state[ASKED], NOTHING if floor is None else floor, state[ATTEMPT],
                state[SENT_ATTEMPT])
        except struct.error:
            return None
        return self._place(record, event, True)

    def _new_source(self, source: str) -> int | None:
        """A code for a source not seen yet (None: no code left, 255 are in use)."""
        if len(self.sources) >= 255:
            return None
        code = self._source_codes[source] = len(self.sources)
        self.sources.append(source)
        return code

    def _place(self, record: bytes, event: InboundEvent, log: bool) -> int:
        """A slot (a free one, else a new one) holding `record` and the event's id (and
        the record in the log too, with `log`)."""
        if self._free:
            slot = self._free.pop()
            self.records[slot * RECORD.size:(slot + 1) * RECORD.size] = record
            self.ids[slot] = event[0]
        else:
            slot = len(self.ids)
            self.records += record
            self.ids.append(event[0])
        extras = event[7:]
        if extras != NO_EXTRAS:
            self.extras[slot] = extras
        if log:  # into the FrozenLog: once per reply credited
            log_of = self._log
            if extras != NO_EXTRAS:
                log_of.extras[len(log_of.ids)] = extras
            log_of.records += record
            log_of.ids.append(event[0])
        return slot

    def thaw(self, slot: int) -> tuple[list[Any], list[Any]]:
        """The reply's `Pending` and its number's `Watch`, exactly as frozen; the slot
        is free again."""
        inbound_id = self.ids[slot]
        assert inbound_id is not None
        (received, at, number, workspace, key, target, row, source, how, *state
         ) = RECORD.unpack_from(self.records, slot * RECORD.size)
        event = _event(inbound_id, at, number, workspace, self.extras.pop(slot, NO_EXTRAS))
        pending = new_pending(self.sources[source], event, key, received, _target(target),
                              HOWS[how], (), counted=True)
        watch = new_watch(0, inbound_id)
        if row != NOTHING:
            watch[W_ROWS], watch[W_STATE] = row, _state(state)
        self.ids[slot] = None
        self._free.append(slot)
        return pending, watch

    # --- what the attributor reads and changes of a frozen reply ------------------------

    def received_at(self, slot: int) -> float:
        return RECEIVED_AT.unpack_from(self.records, slot * RECORD.size)[0]

    def credited(self, slot: int) -> bool:
        return TARGET_AT.unpack_from(self.records, slot * RECORD.size + 40)[0] != NOTHING

    def key_of(self, slot: int) -> int:
        return KEY_AT.unpack_from(self.records, slot * RECORD.size + 32)[0]

    def row_of(self, slot: int) -> int | None:
        return _value(ROW_AT.unpack_from(self.records, slot * RECORD.size + 48)[0])

    def state(self, slot: int) -> list[Any]:
        """The row's state (a RowState list: it is about to change)."""
        return list(_state(STATE.unpack_from(self.records, slot * RECORD.size + STATE_OFFSET)))

    def set_state(self, slot: int, state: list[Any]) -> bool:
        """Keep a changed row state; False if the record cannot hold it (then the
        caller thaws the reply and keeps `state` in the lists)."""
        if not state[ANSWERED]:
            return False
        earliest, floor = state[EARLIEST], state[FLOOR]
        try:
            STATE.pack_into(self.records, slot * RECORD.size + STATE_OFFSET,
                            NOTHING if earliest is None else earliest, state[LEVEL],
                            state[FAILED], state[ASKED], NOTHING if floor is None else floor,
                            state[ATTEMPT], state[SENT_ATTEMPT])
        except struct.error:
            return False
        return True

    def drop(self, slot: int) -> None:
        """The reply's window ended with its credit: nothing of it is kept."""
        self.ids[slot] = None
        self.extras.pop(slot, None)
        self._free.append(slot)


class FrozenLog:
    """The store records of replies frozen when first credited, owed to the next
    checkpoint, packed as they were frozen: RECORD bytes, the id, the extras.

    memory12 / replies13 (issue 20): each was a 16-field tuple holding its event's
    strings and floats (~650 bytes with them) from the reply's credit to the checkpoint,
    tens of thousands of them after a burst of replies, among which the objects that
    outlive the burst (the replies' ids, the dicts' ints) were made: the arenas they
    pinned stayed after the checkpoint (docs/BENCHMARKS.md, waves 12 and 13). Here a
    reply costs its 92-byte record in one bytearray and an 8-byte reference to its id
    (which `live` holds anyway), and the checkpoint makes the tuples a transaction's
    worth at a time (`store_records`). Made on the ingest actor's thread, then only
    read, by the checkpoint."""

    __slots__ = ("extras", "ids", "records", "sources")

    def __init__(self) -> None:
        self.records = bytearray()
        self.ids: list[str] = []
        self.extras: dict[int, tuple[Any, ...]] = {}  # entry -> its extras (rare)
        self.sources: tuple[str, ...] = ()  # the codes' sources (set by `take_log`)

    def __len__(self) -> int:
        return len(self.ids)

    def store_records(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        """Entries lo..hi-1 as the inbound table's records (domain/attribution_facts.py
        `record` of the reply `FrozenReplies.thaw` would give back: the same values)."""
        size, ids, extras, sources = RECORD.size, self.ids, self.extras, self.sources
        out = []
        view = memoryview(self.records)[lo * size:hi * size]
        for entry, (received, at, number, workspace, _key, target, _row, source, how,
                    *_state) in enumerate(RECORD.iter_unpack(view), lo):
            c, r = _target(target) or (None, None)
            out.append(stored(_event(ids[entry], at, number, workspace,
                                     extras.get(entry, NO_EXTRAS)),
                              sources[source], c, r, HOWS[how], received))
        view.release()
        return out


def expand_ops(ops: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Store operations with each (LOG, FrozenLog) as the ("put", record) of each of its
    entries, in order (a later op of an event is newer)."""
    for op, arg in ops:
        if op == LOG:
            for record in arg.store_records(0, len(arg)):
                yield "put", record
        else:
            yield op, arg


def _state(fields: Any) -> tuple[Any, ...]:
    """A RowState tuple from the record's state fields (answered)."""
    earliest, level, failed, asked, floor, attempt, sent_attempt = fields
    return (_value(earliest), level, failed, asked, True, _value(floor), attempt,
            sent_attempt)
