"""A checkpoint's changed rows (domain/ledger.py `take_dirty_rows`) hold each changed
row's level, failure flag, class, times and kept failure, however the changed rows lie:
in long runs (copied a run at a time) or scattered (gathered row by row), and the
rows an image left pending (`mark_dirty`) are taken like any other."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import TS_SLOTS, Ledger
from domain.status import Level
from tests.examples import examples

T0 = 1_700_000_000.0
LEVELS = (int(Level.SENT), int(Level.DELIVERED), int(Level.READ))


def expected(ledger: Ledger, rows: list[int]) -> tuple[object, ...]:
    """What the rows hold, read one by one (the meaning the compact form must keep)."""
    return (
        rows,
        [ledger.level[r] for r in rows],
        [ledger.failed[r] for r in rows],
        [ledger.message_class(r) for r in rows],
        [[ledger.tick_at(slot, r) for r in rows] for slot in range(1, TS_SLOTS)],
        {r: ledger.failures.kept[r].reason for r in rows if r in ledger.failures.kept},
    )


def taken(ledger: Ledger) -> tuple[object, ...]:
    dirty = ledger.take_dirty_rows(7)
    assert dirty is not None and dirty.campaign_no == 7
    return (
        list(dirty.rows), list(dirty.levels), list(dirty.faileds), list(dirty.classes),
        [list(dirty.tick_column(i)) for i in range(len(dirty.ticks))],
        {r: kept[0] for r, kept in dirty.failures.items()},
    )


events = st.lists(st.tuples(st.integers(0, 299), st.sampled_from(LEVELS), st.booleans(),
                            st.integers(0, 5000)), min_size=1, max_size=120)
runs = st.lists(st.tuples(st.integers(0, 299), st.integers(1, 80)), max_size=6)


@settings(max_examples=examples(150), deadline=None)
@given(events=events, pending_runs=runs)
def test_taken_rows_hold_what_the_ledger_holds(events: list[tuple[int, int, bool, int]],
                                               pending_runs: list[tuple[int, int]]) -> None:
    ledger = Ledger()
    ledger.reserve(300, T0)
    ledger.take_dirty_rows(7)  # registration's rows are not what this test is about
    for row, level, failed, offset in events:
        ledger.apply(row, level, failed, T0 + offset, "refused" if failed else None)
    pending = sorted({r for start, length in pending_runs
                      for r in range(start, min(300, start + length))})
    ledger.mark_dirty(pending)
    changed = sorted({row for row, *_ in events} | set(pending))
    want = expected(ledger, changed)
    assert ledger.dirty_count == len(changed)
    assert taken(ledger) == want
    assert ledger.take_dirty_rows(7) is None  # taken once


def test_a_million_rows_in_one_run_and_one_failure() -> None:
    """A start after a flood: every row pending, one of them failed."""
    ledger = Ledger()
    ledger.reserve(1_000_000, T0)
    ledger.take_dirty_rows(7)
    ledger.apply(5, int(Level.SENT), True, T0 + 1, "refused")
    ledger.apply(999_999, int(Level.READ), False, T0 + 2, None)
    ledger.take_dirty_rows(7)
    ledger.mark_dirty(range(1_000_000))
    dirty = ledger.take_dirty_rows(7)
    assert dirty is not None and len(dirty) == 1_000_000
    assert dirty.levels[5] == int(Level.SENT) and dirty.faileds[5] == 1
    assert dirty.levels[999_999] == int(Level.READ)
    assert list(dirty.failures) == [5]
    assert dirty.ticks[2][999_999] == ledger.ts[3][999_999]  # delivered time (slot 3)
    params = list(dirty.params(0, 10))
    assert params[5][3] == "refused" and params[4][3] is None
