"""A checkpoint takes a ledger's changed rows (domain/ledger.py `take_dirty_rows`) by
scanning only the span between the first and the last marked row, and clears those
marks in place: every collection still takes exactly the rows changed since the one
before, wherever they lie, and nothing twice (a row taken and not changed again is
not written again; one changed again is)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import Ledger
from domain.status import Level
from tests.examples import examples

T0 = 1_700_000_000.0
ROWS = 400
LEVELS = (int(Level.SENT), int(Level.DELIVERED), int(Level.READ))

rounds = st.lists(st.lists(st.tuples(st.integers(0, ROWS - 1), st.sampled_from(LEVELS),
                                     st.integers(0, 5000)), max_size=40),
                  min_size=1, max_size=5)


@settings(max_examples=examples(150), deadline=None)
@given(rounds)
def test_each_collection_takes_the_rows_changed_since_the_last(
        batches: list[list[tuple[int, int, int]]]) -> None:
    ledger = Ledger()
    ledger.reserve(ROWS, T0)
    assert ledger.take_dirty_rows(3) is None  # reserved rows are not changes
    for batch in batches:
        changed = sorted({row for row, level, offset in batch
                          if ledger.apply(row, level, False, T0 + offset, None)})
        dirty = ledger.take_dirty_rows(3)
        assert (list(dirty.rows) if dirty is not None else []) == changed
        assert dirty is None or list(dirty.levels) == [ledger.level[r] for r in changed]
        assert ledger.dirty_count == 0 and not any(ledger.dirty)
        assert len(ledger.dirty) == ROWS
        assert ledger.take_dirty_rows(3) is None  # nothing changed since


def test_marks_at_both_ends_are_taken_and_cleared() -> None:
    ledger = Ledger()
    ledger.reserve(ROWS, T0)
    ledger.mark_dirty([0, ROWS - 1])
    dirty = ledger.take_dirty_rows(3)
    assert dirty is not None and list(dirty.rows) == [0, ROWS - 1]
    ledger.mark_dirty([5])
    dirty = ledger.take_dirty_rows(3)
    assert dirty is not None and list(dirty.rows) == [5]
