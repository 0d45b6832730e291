"""The checkpoint's carry holds a row once (domain/carry.py, memory100): the rows taken
by several collections of one campaign, merged oldest first, hold exactly what ONE
collection taken at the end would hold (every row changed in any of them, each with
the ledger's newest state and kept failure), however the changes were spread over the
collections: one after the other (a pass of ACKs in order) or over each other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.carry import merge
from domain.ledger import DirtyRows, Ledger
from tests.examples import examples
from tests.test_dirty_rows import LEVELS, T0, expected

ROWS = 300
events = st.lists(st.tuples(st.integers(0, ROWS - 1), st.sampled_from(LEVELS), st.booleans(),
                            st.integers(0, 5000)), max_size=80)


def collector(rows: int, campaign_no: int) -> tuple[Ledger, Callable[[Any], None]]:
    """A campaign's ledger of `rows` rows (its registration taken already) and the
    collect function a Checkpointer asks: the dirty rows since the last collection, each
    collection with the next seq."""
    from domain.records import CheckpointData

    ledger = Ledger()
    ledger.reserve(rows, T0)
    ledger.take_dirty_rows(campaign_no)
    seqs = iter(range(1, 1 << 62))

    def collect(reply: Any) -> None:
        taken = ledger.take_dirty_rows(campaign_no)
        reply.set(CheckpointData(next(seqs), rows=[taken] if taken is not None else []))

    return ledger, collect


async def collected(checkpointer: Any, merge_from: int) -> None:
    """A collection added to the carry and merged, as a checkpoint run does after its
    images: into the blocks whose chunks all come at or after `merge_from`."""
    data = await checkpointer._collect()
    await checkpointer._absorb(data, merge_from)


def as_taken(dirty: DirtyRows) -> tuple[object, ...]:
    return (
        list(dirty.rows), list(dirty.levels), list(dirty.faileds), list(dirty.classes),
        [list(dirty.tick_column(i)) for i in range(len(dirty.ticks))],
        {r: kept[0] for r, kept in dirty.failures.items()},
    )


@settings(max_examples=examples(200), deadline=None)
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
    from core.metrics import Metrics
    from store.checkpoint import CHUNK_ROWS, Checkpointer

    ledger, collect = collector(3 * CHUNK_ROWS, 7)

    checkpointer = Checkpointer(None, collect, lambda seq: None, Metrics(),  # type: ignore[arg-type]
                                interval=60.0)
    for row in range(0, 3 * CHUNK_ROWS, 2):  # the first pass: every other row
        ledger.apply(row, LEVELS[0], False, T0 + 1, None)
    await collected(checkpointer, checkpointer._chunks_done)
    for row in range(3 * CHUNK_ROWS):  # the second: all of them, the first ones again
        ledger.apply(row, LEVELS[1], False, T0 + 2, None)
    await collected(checkpointer, checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert len(blocks) == 1 and list(blocks[0].rows) == list(range(3 * CHUNK_ROWS))
    assert set(blocks[0].levels) == {LEVELS[1]}
    assert [data.seq for data in checkpointer._carry] == [1, 2]  # the seqs stay

    checkpointer._chunks_done = 1  # a chunk of that block is written: no merging into it
    ledger.apply(5, LEVELS[2], False, T0 + 3, None)
    await collected(checkpointer, checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert [list(block.rows) for block in blocks[1:]] == [[5]]
    checkpointer._chunks_done = 0
    ledger.apply(6, LEVELS[2], False, T0 + 4, None)
    # memory8: the block that holds row 6 (and is written last of those that do) takes
    # its new state in place
    await collected(checkpointer, checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert [list(block.rows) for block in blocks[1:]] == [[5]]
    assert len(blocks[0]) == 3 * CHUNK_ROWS and blocks[0].levels[6] == LEVELS[2]
    # a pass over every row while the first chunk is made: the rows after that chunk are
    # written into the first block in place, row 5 into the newer block that holds it,
    # and the other rows of the made chunk are carried once more (merged with [5])
    checkpointer._chunks_done = 1
    made = bytes(blocks[0].levels[:CHUNK_ROWS])
    for row in range(3 * CHUNK_ROWS):
        ledger.apply(row, LEVELS[2], False, T0 + 5, None)
    await collected(checkpointer, checkpointer._chunks_done)
    blocks = [block for data in checkpointer._carry for block in data.rows]
    assert len(blocks[0]) == 3 * CHUNK_ROWS
    assert bytes(blocks[0].levels[:CHUNK_ROWS]) == made  # the made chunk: untouched
    assert set(blocks[0].levels[CHUNK_ROWS:]) == {LEVELS[2]}
    # (row 6 was at that level already: not changed again)
    assert [list(block.rows) for block in blocks[1:]] == [
        [row for row in range(CHUNK_ROWS) if row != 6]]
    assert set(blocks[1].levels) == {LEVELS[2]}


@settings(max_examples=examples(200), deadline=None)
@given(first=events, collections=st.lists(events, min_size=1, max_size=4),
       made=st.integers(0, ROWS), step=st.sampled_from((1, 3, 7)))
def test_rows_written_in_place_leave_what_one_collection_at_the_end_holds(
        first: list[tuple[int, int, bool, int]],
        collections: list[list[tuple[int, int, bool, int]]], made: int, step: int) -> None:
    """memory8: a later collection's rows go into the carried block that holds them, in
    place, at and after `made` (its rows before are in chunks already made); the block
    then holds, from `made` on, the newest state of its rows, the rest stays beside it,
    and the two written in order leave every row as one collection at the end would.
    The carried block's rows every `step`: consecutive, nearly so, or sparse (the three
    ways rows are found in it)."""
    from domain.carry import overwrite, without

    ledger = Ledger()
    ledger.reserve(ROWS, T0)
    ledger.take_dirty_rows(7)
    for row in range(0, ROWS, step):  # the carried block: a pass of ACKs
        ledger.apply(row, LEVELS[0], False, T0, None)
    for row, level, failed, offset in first:
        ledger.apply(row, level, failed, T0 + offset, "refused" if failed else None)
    carried = ledger.take_dirty_rows(7)
    assert carried is not None
    at_made = [list(v) for v in as_taken(carried)[:5]]  # what the made chunks wrote
    changed = set(carried.rows)
    blocks = [carried]
    for collection in collections:
        for row, level, failed, offset in collection:
            ledger.apply(row, level, failed, T0 + offset, "refused" if failed else None)
            changed.add(row)
        taken = ledger.take_dirty_rows(7)
        if taken is None:
            continue
        placed, found = overwrite(carried, taken, bytes(len(taken)), made)
        assert all(found[i] for i in range(len(taken)) if placed[i])
        rest = without(taken, placed) if placed.count(1) else taken
        assert sorted(set(rest.rows) | set(compress_rows(taken, placed))) == list(taken.rows)
        if len(rest):
            blocks.append(rest)
    # the made chunks are untouched
    assert [list(v)[:made] for v in as_taken(carried)[:4]] == [v[:made] for v in at_made[:4]]
    # written in order, the blocks leave every row in its newest state
    state: dict[int, tuple[object, ...]] = {}
    for block in blocks:
        for row, *values in zip(block.rows, block.levels, block.faileds, block.classes,
                                *map(block.tick_column, range(len(block.ticks))),
                                strict=True):
            state[row] = (*values, block.failures.get(row, (None,))[0])
    rows = sorted(changed)
    want = expected(ledger, rows)
    assert sorted(state) == rows
    assert [state[r][0] for r in rows] == want[1]
    assert [[state[r][3 + i] for r in rows] for i in range(6)] == want[4]
    assert {r: state[r][-1] for r in rows if state[r][-1] is not None} == want[5]


def compress_rows(block: DirtyRows, mask: bytes) -> list[int]:
    return [r for r, m in zip(block.rows, mask, strict=True) if m]


async def test_a_written_block_is_let_go_before_the_carry_is_compacted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """memory8: once a carried block's last chunk is written its rows are let go (the
    carry and the images' pending rows no longer count them), the later chunks keep their
    numbers, and the rows on disk end as the ledger holds them."""
    import sqlite3

    from core.metrics import Metrics
    from store.checkpoint import CHUNK_ROWS, Checkpointer, WrittenBlock
    from store.db import Store, StoreUnavailable
    from store.image import pending_rows
    from store.row_writes import STATE_COLUMNS
    from tests.test_checkpoint_failures import database

    rows = CHUNK_ROWS + 500
    path = await database(tmp_path, rows)
    store = Store(path)
    await store.open()
    ledger, collect = collector(rows, 1)

    checkpointer = Checkpointer(store, collect, lambda seq: None, Metrics(), interval=60.0)
    try:
        for row in range(rows):
            ledger.apply(row, LEVELS[0], False, T0 + 1, None)
        await collected(checkpointer, 0)
        for row in range(100):
            ledger.apply(row, LEVELS[2], False, T0 + 2, None)
        await collected(checkpointer, 2)  # both chunks of the first block made
        assert checkpointer.carried_rows() == rows + 100
        real, calls = store.transaction, []

        async def third_fails(statements, derived=False):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) == 3:
                raise StoreUnavailable("disk gone")
            return await real(statements, derived=derived)

        store.transaction = third_fails  # type: ignore[method-assign]
        try:
            await checkpointer._write_rows(2, None, refresh=False)
        except StoreUnavailable:
            pass
        blocks = [block for data in checkpointer._carry for block in data.rows]
        assert isinstance(blocks[0], WrittenBlock) and checkpointer._chunks_done == 2
        assert checkpointer.carried_rows() == 100
        assert sorted(set(memoryview(pending_rows(blocks)).cast("I"))) == list(range(100))
        store.transaction = real  # type: ignore[method-assign]
        assert await checkpointer._write_rows(2, None, refresh=False)
        assert checkpointer.carried_rows() == 0
        db = sqlite3.connect(path)
        got = {r: level for r, level in db.execute(
            f"SELECT row, {STATE_COLUMNS[0]} FROM messages WHERE campaign_no = 1")}
        db.close()
        assert got == {row: ledger.level[row] for row in range(rows)}
        assert set(got[r] for r in range(100)) == {LEVELS[2]}
    finally:
        await store.close()


class RowsOnDisk:
    """A store whose transactions apply the checkpoint's row chunks to a dict (row ->
    what store/row_writes.py `update_rows` would store), failing the transactions it is told to."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[object, ...]] = {}
        self.fail_in = -1  # fail the transaction after this many more

    async def transaction(self, statements, derived=False):  # type: ignore[no-untyped-def]
        from store.db import StoreUnavailable

        if self.fail_in == 0:
            self.fail_in = -1
            raise StoreUnavailable("disk gone")
        self.fail_in -= 1
        for fn, _, _ in statements:
            block, lo, hi = fn.keywords["block"], fn.keywords["lo"], fn.keywords["hi"]
            for params in block.params(lo, hi):
                self.rows[params[17]] = params[:16]


steps = st.lists(st.one_of(
    st.tuples(st.just("events"), events),
    st.tuples(st.just("collect"), st.none()),
    st.tuples(st.just("write"), st.integers(0, 6))), max_size=14)


@settings(max_examples=examples(100), deadline=None)
@given(steps=steps)
def test_the_carry_in_pieces_writes_every_row_in_its_newest_state(
        steps: list[tuple[str, object]]) -> None:
    """memory8: collections merged into the carry (in place, joined, cut into pieces),
    rows written a few chunks at a time with written pieces let go, then all of it:
    every changed row ends on disk as the ledger holds it (as one collection written at
    the end would leave it)."""
    import asyncio

    import store.checkpoint as checkpoint
    from core.metrics import Metrics
    from store.db import StoreUnavailable

    async def scenario() -> None:
        ledger, collect = collector(ROWS, 7)

        disk = RowsOnDisk()
        cp = checkpoint.Checkpointer(disk, collect, lambda seq: None, Metrics(),  # type: ignore[arg-type]
                                     interval=60.0)
        for step, arg in [("events", [(r, LEVELS[0], False, 0) for r in range(ROWS)]),
                          ("collect", None), *steps, ("collect", None), ("write", -1)]:
            if step == "events":
                for row, level, failed, offset in arg:  # type: ignore[union-attr]
                    ledger.apply(row, level, failed, T0 + offset, "refused" if failed else None)
            elif step == "collect":
                await collected(cp, cp._chunks_done)
            elif cp._carry:
                disk.fail_in = arg  # type: ignore[assignment]
                try:
                    await cp._write_rows(len(cp._carry), None, refresh=False)
                except StoreUnavailable:
                    pass
                assert all(len(block) <= checkpoint.PIECE_ROWS
                           for data in cp._carry for block in data.rows)
        assert cp.carried_rows() == 0
        want = {r: tuple(p[:16]) for r, p in zip(range(ROWS), expected_params(ledger),
                                                strict=True)}
        assert disk.rows == want

    old = checkpoint.CHUNK_ROWS, checkpoint.PIECE_ROWS
    checkpoint.CHUNK_ROWS, checkpoint.PIECE_ROWS = 16, 48
    try:
        asyncio.run(scenario())
    finally:
        checkpoint.CHUNK_ROWS, checkpoint.PIECE_ROWS = old


def expected_params(ledger: Ledger) -> list[tuple[object, ...]]:
    """Every row's UPDATE parameters as one collection taken now would give them."""
    ledger.mark_dirty(range(len(ledger)))
    block = ledger.take_dirty_rows(7)
    assert block is not None
    return list(block.params())
