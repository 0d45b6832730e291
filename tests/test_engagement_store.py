"""A checkpoint's writes of inbound events (store/engagement.py `inbound_transactions`) on
a real SQLite file: each event ends as its last operation says, whatever came before it
in the same checkpoint, in chunks of many events per statement and per transaction;
every row a stored credit leaves is marked for the analytics' recount, every row credited
is found by it among the events written since its last pass (store/aggregates.py), and
no other."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from domain.inbound import InboundEvent
from domain.phones import number_key
from store.aggregates import WAITING_SQL, credited_since, recount_marked
from store.db import Store
from store.engagement import (
    CHUNK,
    INBOUND_CHUNK,
    INBOUND_TRANSACTION,
    EngagementStore,
    NumberRowsReader,
    inbound_transactions,
    number_rows_queries,
)

ROWS = 1300  # more than two chunks of events and of marks


def record(inbound_id: str, target: tuple[int, int] | None) -> tuple[Any, ...]:
    """An inbound table row as `record` makes it (domain/attribution.py): the event's
    fields, then source, campaign_no, row, how, received_at."""
    campaign, row = target or (None, None)
    event = InboundEvent(inbound_id, 0, 0, 1000.0, "6281100000001")
    return (*event, "cloud", campaign, row, "window" if target else None, 1000.0)


async def database(tmp_path: Path) -> Store:
    store = Store(tmp_path / "e.sqlite3")
    await store.open()
    await store.transaction([
        ("INSERT INTO campaigns (no, uuid, workspace_id, name, created_at, updated_at)"
         " VALUES (1, 'c1', 1, 'c', 0, 0)", (), False),
        # sent (class 2): counted by the analytics, replies and all
        ("INSERT INTO messages (campaign_no, row, recipient, ts_queued, level, cls,"
         " ts_pending) VALUES (1, ?, ?, 0, 2, 2, 0)",
         [(row, f"62811{row:08d}") for row in range(ROWS)], True)])
    return store


async def write(store: Store, ops: list[tuple[str, Any]]) -> None:
    for statements in inbound_transactions(ops):
        await store.transaction(statements)


def marked(path: Path) -> set[int]:
    with sqlite3.connect(path) as db:
        return {r for (r,) in db.execute("SELECT row FROM messages WHERE ag_dirty = 1")}


def recounted(path: Path) -> set[int]:
    """The rows the analytics' passes recount now (marked rows, and the rows credited by
    events written since the last pass, found as `recount_marked` finds them), running
    those passes; afterwards nothing waits."""
    rows: set[int] = set()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        while True:
            rows |= {r for (r,) in db.execute("SELECT row FROM messages WHERE ag_dirty = 1")}
            rows |= {r for _, r in credited_since(db, 700)[0]}  # 700: several passes
            db.execute("BEGIN IMMEDIATE")
            done = recount_marked(db, 700)
            db.execute("COMMIT")
            if not done:
                break
        assert not db.execute(WAITING_SQL).fetchone()[0]
    finally:
        db.close()
    return rows


def stored(path: Path) -> dict[str, tuple[Any, Any]]:
    with sqlite3.connect(path) as db:
        return {i: (c, r) for i, c, r in db.execute("SELECT id, campaign_no, row FROM inbound")}


async def test_each_event_ends_as_its_last_operation_says_and_its_rows_are_marked(
        tmp_path: Path) -> None:
    store = await database(tmp_path)
    path = tmp_path / "e.sqlite3"
    try:
        # A first checkpoint: many credited events (chunked), one waiting, one to move.
        first = [("put", record(f"in{i}", (1, i))) for i in range(ROWS - 100)]
        first += [("put", record("waiting", None)), ("put", record("moves", (1, 1250)))]
        await write(store, first)
        assert len(stored(path)) == ROWS - 100 + 2
        assert marked(path) == set()  # no message row written for a credit...
        assert recounted(path) == {*range(ROWS - 100), 1250}  # ...found all the same

        # The next: the waiting event is credited, then dropped again, then put waiting;
        # the moving one goes to another row (its stored row is marked too); one event
        # ends its window with no credit; a new one arrives and is credited twice.
        second = [("put", record("waiting", (1, 1260))), ("drop", "waiting"),
                  ("put", record("waiting", None)),
                  ("put", record("moves", (1, 1270))),
                  ("drop", "in5"),
                  ("put", record("new", (1, 1280))), ("put", record("new", (1, 1290)))]
        await write(store, second)
        rows = stored(path)
        assert rows["waiting"] == (None, None)
        assert rows["moves"] == (1, 1270)
        assert "in5" not in rows
        assert rows["new"] == (1, 1290)
        # left: 1250 (moves, as stored), 5 (in5, dropped): marked; went to: 1270, 1290
        assert marked(path) == {1250, 5}
        assert recounted(path) == {1250, 1270, 5, 1290}
        assert recounted(path) == set()  # once
        # and each row is counted with the replies credited to it now, found by row
        # (these four are scattered) as well as by range (the first checkpoint's)
        with sqlite3.connect(path) as db:
            replied = {r for (r,) in db.execute(
                "SELECT row FROM messages WHERE ag_reply_at IS NOT NULL")}
        assert replied == set(range(ROWS - 100)) - {5} | {1270, 1290}
    finally:
        await store.close()


def test_a_checkpoint_of_many_events_takes_a_few_statements_and_transactions() -> None:
    """One statement per chunk of events, not one (or three) per event; a transaction
    per INBOUND_TRANSACTION events, so a webhook's commit never waits for them all."""
    events = 3 * INBOUND_TRANSACTION // 2
    ops = [("put", record(f"in{i}", (1, i))) for i in range(events)]
    transactions = list(inbound_transactions(ops))
    assert len(transactions) == 2
    statements = sum(len(t) for t in transactions)
    chunks = -(-INBOUND_TRANSACTION // INBOUND_CHUNK)  # per full transaction
    # per transaction: the marks of the rows stored credits leave, a chunk at a time, and
    # one step that writes its records (a chunk per statement, on the writer's thread)
    assert statements == chunks + 1 + -(-(events - INBOUND_TRANSACTION) // INBOUND_CHUNK) + 1


async def test_the_ingest_actors_reader_finds_the_rows_the_loops_lookup_finds(
        tmp_path: Path) -> None:
    """NumberRowsReader (the ingest actor's own connection) answers a lookup as the
    loop's aiosqlite path does: every row sent to each number, across chunks of keys,
    and rows stored after its first read are seen by the next one."""
    store = await database(tmp_path)
    path = tmp_path / "e.sqlite3"
    reader = NumberRowsReader(path)
    try:
        await store.transaction([("UPDATE messages SET nh = ? WHERE row = ?",
                                  [(number_key(f"62811{row:08d}"), row) for row in range(ROWS)],
                                  True)])
        keys = tuple(number_key(f"62811{row:08d}") for row in range(0, ROWS, 2))
        keys += (number_key("6299999999999"),)  # sent nothing
        assert len(keys) > CHUNK
        rows = reader(keys)
        assert sorted(rows) == sorted(await EngagementStore(store).number_rows(keys))
        assert sorted(rows) == sorted((number_key(f"62811{row:08d}"), 1, row)
                                      for row in range(0, ROWS, 2))

        # A second message to row 4's number, stored after the reader's first read.
        await store.transaction([(
            "INSERT INTO messages (campaign_no, row, recipient, ts_queued, nh)"
            " VALUES (1, ?, ?, 0, ?)", (ROWS, "6281100000004", keys[2]), False)])
        assert sorted(reader(keys[2:3])) == [(keys[2], 1, 4), (keys[2], 1, ROWS)]
    finally:
        reader.close()
        await store.close()


async def test_the_number_lookup_seeks_the_number_index_once_per_key(tmp_path: Path) -> None:
    """Every reply from a number not seen yet costs one lookup key: the statement goes
    straight to the number index (messages_number) for each key, without first sorting
    the keys into a temporary b-tree as `nh IN (...)` did (a sixth of the lookup's
    instructions: docs/BENCHMARKS.md, wave 12)."""
    store = await database(tmp_path)
    await store.close()
    keys = tuple(number_key(f"62811{row:08d}") for row in range(4))  # one statement
    (sql, params), = number_rows_queries(keys)
    with sqlite3.connect(tmp_path / "e.sqlite3") as conn:
        plan = " ".join(str(step[-1]) for step in conn.execute(
            f"EXPLAIN QUERY PLAN {sql}", params))
        opcodes = {step[1] for step in conn.execute(f"EXPLAIN {sql}", params)}
    assert "USING COVERING INDEX messages_number" in plan, plan
    assert "OpenEphemeral" not in opcodes and "SorterOpen" not in opcodes, opcodes


def test_a_reader_that_cannot_read_its_store_raises(tmp_path: Path) -> None:
    """The ingest actor then asks the loop's path, which retries (actors/ingest.py)."""
    reader = NumberRowsReader(tmp_path / "missing" / "e.sqlite3")
    with pytest.raises(sqlite3.Error):
        reader((number_key("6281100000001"),))


async def test_a_credit_written_after_the_newest_recounted_event_was_dropped_is_recounted(
        tmp_path: Path) -> None:
    """The stamp of a later transaction is above the recount's cursor even when the event
    holding the highest stamp is gone (its rowid may be given again): the credit it
    writes is still found."""
    store = await database(tmp_path)
    path = tmp_path / "e.sqlite3"
    try:
        await write(store, [("put", record("x", (1, 7)))])
        assert recounted(path) == {7}
        await write(store, [("put", record("x", None))])  # its credit withdrawn...
        await write(store, [("drop", "x")])  # ...and its window ended
        assert recounted(path) == {7}  # the row it left (marked)
        await write(store, [("put", record("y", (1, 8)))])
        assert recounted(path) == {8}
    finally:
        await store.close()
