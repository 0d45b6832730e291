"""The checkpoint's carry holds a row once (domain/carry.py, memory100): the rows taken
by several collections of one campaign, merged oldest first, hold exactly what ONE
collection taken at the end would hold (every row changed in any of them, each with
the ledger's newest state and kept failure), however the changes were spread over the
collections: one after the other (a pass of ACKs in order) or over each other."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.carry import merge
from domain.ledger import DirtyRows, Ledger
from tests.test_dirty_rows import LEVELS, T0, expected

ROWS = 300
events = st.lists(st.tuples(st.integers(0, ROWS - 1), st.sampled_from(LEVELS), st.booleans(),
                            st.integers(0, 5000)), max_size=80)


def as_taken(dirty: DirtyRows) -> tuple[object, ...]:
    return (
        list(dirty.rows), list(dirty.levels), list(dirty.faileds), list(dirty.classes),
        [list(column) for column in dirty.ticks],
        {r: kept[0] for r, kept in dirty.failures.items()},
    )


@settings(max_examples=200, deadline=None)
@given(collections=st.lists(events, min_size=1, max_size=5))
def test_merged_collections_hold_what_one_collection_at_the_end_holds(
        collections: list[list[tuple[int, int, bool, int]]]) -> None:
    ledger = Ledger()
    ledger.reserve(ROWS, T0)
    ledger.take_dirty_rows(7)  # registration's rows are not what this test is about
    carried: DirtyRows | None = None
    changed: set[int] = set()
    for collection in collections:
        for row, level, failed, offset in collection:
            ledger.apply(row, level, failed, T0 + offset, "refused" if failed else None)
            changed.add(row)
        taken = ledger.take_dirty_rows(7)
        if taken is not None:
            carried = taken if carried is None else merge(carried, taken)
    if not changed:
        assert carried is None
        return
    assert carried is not None and carried.campaign_no == 7
    assert as_taken(carried) == expected(ledger, sorted(changed))
    assert len(list(carried.params())) == len(changed)


def test_blocks_one_after_the_other_are_joined_and_other_campaigns_refused() -> None:
    ledger = Ledger()
    ledger.reserve(10, T0)
    ledger.take_dirty_rows(7)
    ledger.apply(1, LEVELS[0], False, T0 + 1, None)
    first = ledger.take_dirty_rows(7)
    ledger.apply(8, LEVELS[1], True, T0 + 2, "refused")
    second = ledger.take_dirty_rows(7)
    assert first is not None and second is not None
    joined = merge(first, second)
    assert list(joined.rows) == [1, 8] and list(joined.failures) == [8]
    other = ledger.take_dirty_rows(7) or second
    other.campaign_no = 8
    try:
        merge(first, other)
    except ValueError:
        pass
    else:
        raise AssertionError("blocks of two campaigns were merged")


async def test_the_checkpointer_carries_a_row_once_and_never_merges_into_written_chunks(
) -> None:
    """Store/checkpoint.py: a collection's rows go into the carry's block of their
    campaign while none of that block's chunks is written; once some are (a periodic
    checkpoint that stopped at its deadline), a new block is carried beside it."""
    from core.aio import Reply
    from core.metrics import Metrics
    from domain.records import CheckpointData
    from store.checkpoint import CHUNK_ROWS, Checkpointer

    ledger = Ledger()
    ledger.reserve(3 * CHUNK_ROWS, T0)
    ledger.take_dirty_rows(7)
    seq = 0

    def collect(reply: Reply) -> None:
        nonlocal seq
        seq += 1
        taken = ledger.take_dirty_rows(7)
        reply.set(CheckpointData(seq, rows=[taken] if taken is not None else []))

    checkpointer = Checkpointer(None, collect, lambda seq: None, Metrics(),  # type: ignore[arg-type]
                                interval=60.0)
    for row in range(0, 3 * CHUNK_ROWS, 2):  # the first pass: every other row
        ledger.apply(row, LEVELS[0], False, T0 + 1, None)
    await checkpointer._collect(merge_from=checkpointer._chunks_done)
    for row in range(3 * CHUNK_ROWS):  # the second: all of them, the first ones again
        ledger.apply(row, LEVELS[1], False, T0 + 2, None)
    await checkpointer._collect(merge_from=checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert len(blocks) == 1 and list(blocks[0].rows) == list(range(3 * CHUNK_ROWS))
    assert set(blocks[0].levels) == {LEVELS[1]}
    assert [data.seq for data in checkpointer._carry] == [1, 2]  # the seqs stay

    checkpointer._chunks_done = 1  # a chunk of that block is written: no merging into it
    ledger.apply(5, LEVELS[2], False, T0 + 3, None)
    await checkpointer._collect(merge_from=checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert [list(block.rows) for block in blocks[1:]] == [[5]]
    checkpointer._chunks_done = 0
    ledger.apply(6, LEVELS[2], False, T0 + 4, None)
    # the newest unwritten block takes it
    await checkpointer._collect(merge_from=checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert [list(block.rows) for block in blocks[1:]] == [[5, 6]]
    assert len(blocks[0]) == 3 * CHUNK_ROWS
