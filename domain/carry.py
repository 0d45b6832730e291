"""Two collections of one campaign's changed rows made one (the checkpoint's carry).

A checkpoint copies each campaign's changed rows out of its ledger (`DirtyRows`, ~31
bytes a row) and writes them in chunks; while ACKs come faster than the writer writes,
the next collections copy the same rows again, so the carry held a row once per pass of
ACKs that changed it, and wrote it as often. At the memory row's 1M messages and three
passes that is up to 3M copies (~93 MB; CARRY_ROWS bounds it). Merged, the carry holds
each row once, with its newest state (issue 20, docs/BENCHMARKS.md "Wave 7").

Why the newest state may stand in for an older collection's: a row only ever holds a
state the journal's events imply, and the journal is compacted only after the rows are
written; replaying events over a row that already has them changes nothing (the status
rules are idempotent and order-free: store/checkpoint.py `_row_chunks`).

Done with C-level loops over a dense window of the two blocks' rows (a step per row in
Python costs ~1 s per million), SLICE rows per call: the merge runs on an executor
thread, and one C call over a whole block held the GIL (so the loop) for up to 0.4 s.

memory8 (issue 20): a merge costs both blocks' rows, so a small collection stays beside
a big block (`worth_merging`) and three ACK passes were carried three times. Now a new
block's rows that a carried block already holds are written into it in place
(`overwrite`, cost of the new rows only), and blocks are cut into pieces
(`pieces`, store/checkpoint.py PIECE_ROWS) that are let go one by one as written.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from itertools import compress, islice, repeat
from operator import and_, eq, mul, or_, sub, xor

from domain.ledger import NONE, DirtyRows

SLICE = 16_384  # rows per C-level call: each holds the GIL for ~1-2 ms, not ~100 ms
OLDER, NEWER = 1, 2  # marks in the window: the row is in the older block only / the newer


def _scatter(window: bytearray | array[int], rows: array[int], lo: int,
             values: object) -> None:
    """window[row - lo] = value for each row (the offsets made as they are used: a list
    of them would hold a Python int per row, ~36 MB at a million rows)."""
    offsets = map(sub, rows, repeat(lo))
    values = iter(values)  # type: ignore[call-overload]
    for _ in range(0, len(rows), SLICE):  # memory8: SLICE rows per C call (GIL)
        deque(map(window.__setitem__, islice(offsets, SLICE), islice(values, SLICE)),  # type: ignore[call-overload]
              maxlen=0)


def _filled(out: bytearray | array[int], values: Iterator[int]) -> bytearray | array[int]:
    """`out` extended by the values, SLICE per C call: one call over a million rows held
    the GIL for ~0.1-0.4 s (measured: the loop thread waited up to 432 ms during a merge
    of two blocks of 500,000 and 333,000 rows)."""
    while True:
        size = len(out)
        out.extend(islice(values, SLICE))
        if len(out) - size < SLICE:
            return out


def worth_merging(older: DirtyRows, newer: DirtyRows) -> bool:
    """Whether merging costs in proportion to the newer block: it comes after the older
    one (joined at memcpy speed) or is at least half its size. A merge over each other
    costs ~2 us per row of BOTH blocks, so merging every small collection into a block
    of a million rows (~3 s each, several per second under a flood) starved the other
    threads of the GIL; left as blocks of their own, the small ones merge with each
    other until they are as big."""
    if not len(older) or not len(newer):
        return True
    return older.rows[-1] < newer.rows[0] or 2 * len(newer) >= len(older)


def _aligned(*blocks: DirtyRows) -> None:
    """memory9: a tick column empty in some of these blocks (every row NONE, the
    ledger's lazy played / failed column not made) and not in others is filled in those,
    in place, so the blocks' columns go together row for row; empty in all, it stays."""
    for index in range(len(blocks[0].ticks)):
        if any(block.ticks[index] for block in blocks):
            for block in blocks:
                if not block.ticks[index] and len(block):
                    block.ticks[index].extend(array("i", [NONE]) * len(block))


def merge(older: DirtyRows, newer: DirtyRows) -> DirtyRows:
    """One block with every row of both, each with the newer block's values where it
    has the row (its state is the later one), else the older's."""
    if older.campaign_no != newer.campaign_no or older.base != newer.base:
        raise ValueError("blocks of different campaigns (or ledger bases)")
    if not len(older):
        return newer
    if not len(newer):
        return older
    _aligned(older, newer)
    retried = older.retried or newer.retried
    if older.rows[-1] < newer.rows[0]:  # one after the other (a pass of ACKs in order)
        return DirtyRows(
            newer.campaign_no, newer.base, older.rows + newer.rows,
            older.levels + newer.levels, older.faileds + newer.faileds,
            older.classes + newer.classes,
            tuple(a + b for a, b in zip(older.ticks, newer.ticks, strict=True)),
            {**older.failures, **newer.failures}, retried)
    lo = min(older.rows[0], newer.rows[0])
    hi = max(older.rows[-1], newer.rows[-1]) + 1
    marks = bytearray(hi - lo)
    _scatter(marks, newer.rows, lo, repeat(NEWER))
    offsets = map(sub, older.rows, repeat(lo))
    if all(all(map(marks.__getitem__, islice(offsets, SLICE)))
           for _ in range(0, len(older), SLICE)):
        # every older row changed again (the next pass of ACKs): the newer block is all
        return DirtyRows(newer.campaign_no, newer.base, newer.rows, newer.levels,
                         newer.faileds, newer.classes, newer.ticks, newer.failures, retried)
    _scatter(marks, older.rows, lo, repeat(OLDER))
    _scatter(marks, newer.rows, lo, repeat(NEWER))
    rows = _filled(array(older.rows.typecode), compress(range(lo, hi), marks))

    def column(window: bytearray | array[int], a: object, b: object) -> Iterator[int]:
        """The two blocks' values of one column, in the merged rows' order (an iterator:
        a list would hold a Python int per row)."""
        _scatter(window, older.rows, lo, a)
        _scatter(window, newer.rows, lo, b)
        return compress(window, marks)

    levels = bytes(_filled(bytearray(), column(bytearray(hi - lo), older.levels,
                                               newer.levels)))
    faileds = bytes(_filled(bytearray(), column(bytearray(hi - lo), older.faileds,
                                                newer.faileds)))
    classes = bytes(_filled(bytearray(), column(bytearray(hi - lo), older.classes,
                                                newer.classes)))
    ticks = tuple(
        _filled(array(a.typecode),
                column(array(a.typecode, bytes(a.itemsize * (hi - lo))), a, b))
        if a else array(a.typecode)  # (aligned: empty in both, every row NONE)
        for a, b in zip(older.ticks, newer.ticks, strict=True))
    # a failure the older block kept stands only where the newer has no state of the row
    failures = {row: kept for row, kept in older.failures.items()
                if marks[row - lo] == OLDER}
    failures.update(newer.failures)
    return DirtyRows(newer.campaign_no, newer.base, rows, levels, faileds, classes, ticks,
                     failures, retried)


# --- memory8 (issue 20): a later collection's rows written into the carried block that
# holds them, in place. `worth_merging` leaves a small collection beside a big block
# (a merge costs both blocks' rows), so under three ACK passes the carry held a row up to
# three times (900,000 rows for 300,000 messages at the memory row's final reading, each
# also written as often). Finding a row in a block and overwriting its values costs the
# new rows only.

def _sliced(length: int) -> range:
    return range(0, length, SLICE)


def positions_in(block: DirtyRows, rows: array[int]) -> tuple[array[int], bytes]:
    """For each of `rows` (ascending), its index in `block.rows` (any value where the
    block lacks it) and a mask: 1 where the block has it. A block of consecutive rows (a
    pass of ACKs, joined collections) answers by subtraction, any other by bisection;
    both C-level loops, SLICE rows per call."""
    have, count = block.rows, len(block.rows)
    if not count or not len(rows):
        return array("q", bytes(8 * len(rows))), bytes(len(rows))
    first = have[0]
    if have[-1] - first + 1 == count:
        positions = array("q")
        for lo in _sliced(len(rows)):
            positions.extend(map(sub, rows[lo:lo + SLICE], repeat(first)))
        inside = bisect_left(rows, first), bisect_left(rows, first + count)
        return positions, bytes(inside[0]) + b"\x01" * (inside[1] - inside[0]) + bytes(
            len(rows) - inside[1])
    span = have[-1] - first + 1
    if span <= 4 * count and 16 * len(rows) >= count:  # (the window costs the span)
        # nearly consecutive (a pass of ACKs with a few rows not yet acknowledged): a
        # window of the span maps each row to its index, -1 where the block lacks it
        window = array("q", [-1]) * span
        _scatter(window, have, first, range(count))
        positions, mask = array("q"), bytearray()
        for lo in _sliced(len(rows)):
            part = rows[lo:lo + SLICE]
            offsets = array("q", map(sub, part, repeat(first)))
            inside = bytes(map(int.__and__, map((-1).__lt__, offsets),
                               map(span.__gt__, offsets)))
            found = array("q", map(window.__getitem__, map(mul, offsets, inside)))
            positions.extend(found)
            mask.extend(map(int.__and__, inside, map((-1).__lt__, found)))
        return positions, bytes(mask)
    positions, mask = array("q"), bytearray()
    last = count - 1
    step = SLICE // 8  # a bisection costs ~20 steps per row
    for lo in range(0, len(rows), step):
        part = rows[lo:lo + step]
        found = array("q", map(bisect_left, repeat(have), part))
        positions.extend(found)
        mask.extend(map(eq, map(have.__getitem__, map(min, found, repeat(last))), part))
    return positions, bytes(mask)


def _scatter_sliced(target: bytearray | array[int], positions: Iterator[int],
                    values: Iterator[int], count: int) -> None:
    for _ in _sliced(count):
        deque(map(target.__setitem__, islice(positions, SLICE), islice(values, SLICE)),  # type: ignore[call-overload]
              maxlen=0)


def overwrite(target: DirtyRows, newer: DirtyRows, skip: bytes, from_position: int
              ) -> tuple[bytes, bytes]:
    """Write the newer block's rows that `target` holds at or after `from_position` (its
    rows before are in chunks already made) into `target`, in place; rows marked in
    `skip` are left alone. Returns (placed, found): masks over the newer block's rows,
    1 where a row was written into `target` / where `target` holds it at all."""
    if target.campaign_no != newer.campaign_no or target.base != newer.base:
        raise ValueError("blocks of different campaigns (or ledger bases)")
    positions, found = positions_in(target, newer.rows)
    found = bytes(_filled(bytearray(), map(and_, found, map(xor, skip, repeat(1)))))
    if from_position >= len(target):
        return bytes(len(newer)), found
    _aligned(target, newer)
    # rows ascending in both: those at or after `from_position` are a suffix of the newer
    start = bisect_left(newer.rows, target.rows[from_position]) if from_position else 0
    placed = bytes(start) + found[start:]
    count = placed.count(1)
    if not count:
        return placed, found
    # one run of rows into one run of positions (a pass of ACKs in order): slices, at
    # memcpy speed; else row by row
    one, end = placed.find(1), placed.rfind(1) + 1
    run = end - one == count and positions[end - 1] - positions[one] == count - 1
    at = positions[one]
    for name in ("levels", "faileds", "classes"):
        column = getattr(target, name)
        if not isinstance(column, bytearray):
            column = bytearray(column)
            setattr(target, name, column)
        if run:
            column[at:at + count] = getattr(newer, name)[one:end]
        else:
            _scatter_sliced(column, compress(positions, placed),
                            compress(getattr(newer, name), placed), count)
    for column, values in zip(target.ticks, newer.ticks, strict=True):
        if not column:
            continue  # (aligned: empty in both, every row NONE)
        if run:
            column[at:at + count] = values[one:end]
        else:
            _scatter_sliced(column, compress(positions, placed), compress(values, placed),
                            count)
    # the kept failures (few): the newer state's stands, or none where it keeps none
    placed_from = target.rows[from_position]
    for row in [r for r in target.failures if r >= placed_from]:
        i = bisect_left(newer.rows, row)
        if i < len(newer) and newer.rows[i] == row and placed[i]:
            del target.failures[row]
    for row, kept in newer.failures.items():
        i = bisect_left(newer.rows, row)
        if placed[i]:
            target.failures[row] = kept
    target.retried = target.retried or newer.retried
    return placed, found


def without(block: DirtyRows, gone: bytes) -> DirtyRows:
    """The block without the rows marked in `gone` (a mask over its rows)."""
    keep = bytes(_filled(bytearray(), map(xor, gone, repeat(1))))
    rows = _filled(array(block.rows.typecode), compress(block.rows, keep))
    failures = {}
    for row, kept in block.failures.items():  # few
        i = bisect_left(block.rows, row)
        if not gone[i]:
            failures[row] = kept
    return DirtyRows(
        block.campaign_no, block.base, rows,
        bytes(_filled(bytearray(), compress(block.levels, keep))),
        bytes(_filled(bytearray(), compress(block.faileds, keep))),
        bytes(_filled(bytearray(), compress(block.classes, keep))),
        tuple(_filled(array(c.typecode), compress(c, keep)) for c in block.ticks),
        failures, block.retried)


def either(a: bytes, b: bytes) -> bytes:
    """The two 0/1 masks or'ed (SLICE rows per C call)."""
    return bytes(_filled(bytearray(), map(or_, a, b)))


def sliced(block: DirtyRows, lo: int, hi: int) -> DirtyRows:
    """Rows [lo, hi) of the block, copied (memcpy speed), with their kept failures."""
    rows = block.rows[lo:hi]
    failures = {}
    if len(rows) and block.failures:
        first, last = rows[0], rows[-1]
        failures = {r: kept for r, kept in block.failures.items() if first <= r <= last}
    return DirtyRows(block.campaign_no, block.base, rows, bytes(block.levels[lo:hi]),
                     bytes(block.faileds[lo:hi]), bytes(block.classes[lo:hi]),
                     tuple(column[lo:hi] for column in block.ticks), failures, block.retried)


def pieces(block: DirtyRows, size: int) -> list[DirtyRows]:
    """The block cut into blocks of at most `size` rows (memory8: a written piece is let
    go at once, where a block of a million rows was held until its last chunk)."""
    if len(block) <= size:
        return [block]
    return [sliced(block, lo, lo + size) for lo in range(0, len(block), size)]
