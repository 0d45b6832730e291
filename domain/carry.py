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
Python costs ~1 s per million).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterator
from itertools import compress, repeat
from operator import sub

from domain.ledger import DirtyRows

OLDER, NEWER = 1, 2  # marks in the window: the row is in the older block only / the newer


def _scatter(window: bytearray | array[int], rows: array[int], lo: int,
             values: object) -> None:
    """window[row - lo] = value for each row (the offsets made as they are used: a list
    of them would hold a Python int per row, ~36 MB at a million rows)."""
    deque(map(window.__setitem__, map(sub, rows, repeat(lo)), values),  # type: ignore[call-overload]
          maxlen=0)


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


def merge(older: DirtyRows, newer: DirtyRows) -> DirtyRows:
    """One block with every row of both, each with the newer block's values where it
    has the row (its state is the later one), else the older's."""
    if older.campaign_no != newer.campaign_no or older.base != newer.base:
        raise ValueError("blocks of different campaigns (or ledger bases)")
    if not len(older):
        return newer
    if not len(newer):
        return older
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
    if all(map(marks.__getitem__, map(sub, older.rows, repeat(lo)))):
        # every older row changed again (the next pass of ACKs): the newer block is all
        return DirtyRows(newer.campaign_no, newer.base, newer.rows, newer.levels,
                         newer.faileds, newer.classes, newer.ticks, newer.failures, retried)
    _scatter(marks, older.rows, lo, repeat(OLDER))
    _scatter(marks, newer.rows, lo, repeat(NEWER))
    rows = array(older.rows.typecode, compress(range(lo, hi), marks))

    def column(window: bytearray | array[int], a: object, b: object) -> Iterator[int]:
        """The two blocks' values of one column, in the merged rows' order (an iterator:
        a list would hold a Python int per row)."""
        _scatter(window, older.rows, lo, a)
        _scatter(window, newer.rows, lo, b)
        return compress(window, marks)

    levels = bytes(column(bytearray(hi - lo), older.levels, newer.levels))
    faileds = bytes(column(bytearray(hi - lo), older.faileds, newer.faileds))
    classes = bytes(column(bytearray(hi - lo), older.classes, newer.classes))
    ticks = tuple(
        array(a.typecode, column(array(a.typecode, bytes(a.itemsize * (hi - lo))), a, b))
        for a, b in zip(older.ticks, newer.ticks, strict=True))
    # a failure the older block kept stands only where the newer has no state of the row
    failures = {row: kept for row, kept in older.failures.items()
                if marks[row - lo] == OLDER}
    failures.update(newer.failures)
    return DirtyRows(newer.campaign_no, newer.base, rows, levels, faileds, classes, ticks,
                     failures, retried)
