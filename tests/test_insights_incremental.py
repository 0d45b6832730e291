"""The analytics' incremental recount (store/aggregates.py, wave 10) equals counting
everything again.

A reply credited to a message moves the aggregates by what differs between the row's
old and new figures (domain/insights.py `Deltas._difference`), its contact by what the
change can move (domain/contacts.py `apply_changes`), and the stored contact and message
row in the columns that changed. Counted from scratch, every row adds its figures and
every contact is built from nothing. The two must give the same tables.

1. Hypothesis writes message rows of a few numbers in three campaigns of two workspaces
   and inbound events credited to them (replies, stops; the same event again, moved to
   another message, dropped) in any order, through the checkpoint's own statements
   (store/engagement.py `inbound_transactions`) on a real SQLite file with the real
   Store's writer thread, the Recounter's step (`recount_marked`) running in between in
   passes of any size. At the end every aggregate (slots, delays, contacts, tier
   counters, each row's stored figures) must equal a rebuild: the same database with
   the aggregates emptied and every row counted again (`count_all`).
2. In process, on random figures: `Deltas.move` equals taking the old figures out and
   putting the new ones in, and `apply_changes` equals moving every figure of every
   change (the code before wave 10, kept here as the reference), on any contact, also
   one that does not hold its rows' maxima.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.contacts import (
    COUNTED,
    RECOUNT_READ,
    RECOUNT_REPLY,
    RECOUNT_SENDS,
    Contact,
    Send,
    _max_moved,
    _sends_moved,
    apply_changes,
    send_of,
)
from domain.inbound import MESSAGE, PREFERENCE, REPLY, STOP, InboundEvent
from domain.insights import (
    BAD_NUMBER,
    DELIVERED,
    FAILED,
    OPTED_OUT,
    READ,
    REPLIED,
    SENT,
    Deltas,
    Figures,
    RowChange,
)
from domain.phones import number_key
from store.aggregates import count_all, recount_marked
from store.db import Store
from store.engagement import inbound_transactions
from tests.conftest import migrated_database
from tests.examples import examples

T0 = 1_800_000_000.0
DAY = 86400.0
NUMBERS = ["6281100000001", "6281100000002", "6281100000003"]
CAMPAIGNS = {1: 1, 2: 1, 3: 2}  # campaign -> workspace
ROWS = 4  # per campaign; row r goes to NUMBERS[r % 3]
# state: (cls, failure category)
STATES = {"pending": (1, None), "delivered": (3, None), "read": (4, None),
          "bad": (6, "not_on_whatsapp"), "failed": (6, "other")}
KINDS = [(REPLY, MESSAGE), (REPLY, MESSAGE), (STOP, MESSAGE), (STOP, PREFERENCE)]
AGGREGATES = {
    # a slot or bucket that went back to 0 stays as a row of zeros: the same as none
    "slots": "SELECT * FROM insight_slots WHERE NOT (sent = 0 AND delivered = 0 AND read = 0"
             " AND replied = 0 AND failed = 0 AND opted_out = 0 AND reads = 0 AND replies = 0)"
             " ORDER BY 1, 2",
    "delays": "SELECT * FROM insight_delays WHERE n != 0 ORDER BY 1, 2, 3",
    "contacts": "SELECT * FROM contacts ORDER BY 1, 2",
    "tiers": "SELECT * FROM contact_tiers ORDER BY 1, 2, 3, 4",
    "figures": "SELECT campaign_no, row, ag_flags, ag_sent_at, ag_read_at, ag_reply_at,"
               " ag_last_reply, ag_delays, ag_dirty FROM messages ORDER BY 1, 2",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: Any) -> Path:
    """A database with every migration, the campaigns and their rows (pending, sent a
    day ago), copied for each example."""
    path = migrated_database(tmp_path_factory.mktemp("incremental") / "template.sqlite3")
    # closed (not only committed) before the file is copied: the last connection's close
    # moves the WAL into the file, and each example copies the file alone
    conn = sqlite3.connect(path)
    try:
        conn.executemany("INSERT INTO campaigns (no, uuid, workspace_id, name, created_at,"
                         " updated_at) VALUES (?, ?, ?, 'c', ?, ?)",
                         [(no, f"c{no}", ws, T0, T0) for no, ws in CAMPAIGNS.items()])
        for no in CAMPAIGNS:
            for row in range(ROWS):
                recipient = NUMBERS[row % len(NUMBERS)]
                conn.execute(
                    "INSERT INTO messages (campaign_no, row, recipient, level, failed, cls,"
                    " ts_queued, ts_pending, nh, ag_dirty) VALUES (?, ?, ?, 1, 0, 1, ?, ?, ?,"
                    " 1)", (no, row, recipient, T0 - DAY - 1, T0 - DAY + row,
                            number_key(recipient)))
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


# A row's state written (and marked), as a checkpoint writes it; mostly at its sending
# time (the figures' difference), sometimes sent again at another time (a retry).
state_op = st.tuples(st.just("state"), st.sampled_from(sorted(CAMPAIGNS)),
                     st.integers(0, ROWS - 1), st.sampled_from(sorted(STATES)),
                     st.sampled_from([0, 0, 0, 1, -3]))
# An inbound event put with its credit (a message, or none yet): the same id again is a
# duplicate or a move; its time, kind and via are its own (fixed by its id).
event_op = st.tuples(st.just("put"), st.integers(0, 7),
                     st.one_of(st.none(), st.tuples(st.sampled_from(sorted(CAMPAIGNS)),
                                                    st.integers(0, ROWS - 1))))
drop_op = st.tuples(st.just("drop"), st.integers(0, 7))
recount_op = st.tuples(st.just("recount"), st.integers(1, 12))
operations = st.lists(st.one_of(state_op, event_op, event_op, event_op, drop_op,
                                recount_op), min_size=1, max_size=45)


def event_record(index: int, target: tuple[int, int] | None) -> tuple[Any, ...]:
    """Inbound event `index` as the attributor records it, credited to `target`."""
    kind, via = KINDS[index % len(KINDS)]
    at = T0 + 600.0 * index + (DAY if index % 3 == 0 else 0.0)
    event = InboundEvent(f"in{index}", kind, via, at, NUMBERS[index % len(NUMBERS)], 1)
    campaign, row = target or (None, None)
    return (*event, "cloud", campaign, row, "window" if target else None, at)


def put_state(conn: sqlite3.Connection, no: int, row: int, state: str, days: int) -> None:
    cls, category = STATES[state]
    sent = T0 - DAY + row + days * DAY
    conn.execute(
        "UPDATE messages SET level = ?, failed = ?, cls = ?, ts_pending = ?,"
        " ts_delivered = ?, ts_read = ?, ts_failed = ?, failure_category = ?, ag_dirty = 1"
        " WHERE campaign_no = ? AND row = ?",
        (0 if cls == 6 else cls, int(cls == 6), cls, sent,
         sent + 5 if cls in (3, 4) else None, sent + 70 + row if cls == 4 else None,
         sent + 2 if cls == 6 else None, category, no, row))


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: conn.execute(sql).fetchall() for name, sql in AGGREGATES.items()}


async def scenario(path: Path, ops: list[tuple[Any, ...]]) -> None:
    store = Store(path)
    await store.open()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for op in [*ops, ("recount", 1000), ("recount", 1000)]:
            if op[0] == "state":
                put_state(conn, *op[1:])
            elif op[0] in ("put", "drop"):
                ops_ = [("put", event_record(op[1], op[2]))] if op[0] == "put" else [
                    ("drop", f"in{op[1]}")]
                for statements in inbound_transactions(ops_):
                    await store.transaction(statements)
            else:
                def step(c: sqlite3.Connection, limit: int = op[1]) -> None:
                    recount_marked(c, limit)

                await store.transaction([(step, (), False)])
        counted = snapshot(conn)

        # the rebuild: every aggregate emptied, every row counted again from nothing
        conn.execute("BEGIN IMMEDIATE")
        for table in ("insight_slots", "insight_delays", "contacts", "contact_tiers"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE messages SET ag_flags = NULL, ag_sent_at = NULL,"
                     " ag_read_at = NULL, ag_reply_at = NULL, ag_last_reply = NULL,"
                     " ag_delays = NULL, ag_dirty = 0")
        count_all(conn)
        conn.execute("COMMIT")
        rebuilt = snapshot(conn)
        for name in AGGREGATES:
            assert counted[name] == rebuilt[name], name
        # and something was counted: the rows' sends at least
        assert rebuilt["contacts"] and rebuilt["slots"]
    finally:
        conn.close()
        await store.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(ops=operations)
def test_incremental_recount_equals_a_rebuild(template: Path,
                                              ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaignd.sqlite3"
        shutil.copyfile(template, path)
        asyncio.run(scenario(path, ops))


def test_a_reply_credited_then_moved_and_duplicated_equals_a_rebuild(template: Path
                                                                     ) -> None:
    """A hand-made case of what the property mixes: rows delivered and read, replies
    credited (one twice, one moved to another row, one dropped), a stop, passes of one
    row at a time."""
    ops: list[tuple[Any, ...]] = [
        ("state", 1, 0, "read", 0), ("state", 1, 1, "delivered", 0),
        ("state", 2, 0, "read", 0), ("recount", 3),
        ("put", 1, (1, 0)), ("put", 1, (1, 0)), ("recount", 1),
        ("put", 4, (1, 1)), ("recount", 1), ("put", 4, (2, 0)), ("put", 2, (1, 1)),
        ("put", 5, (2, 0)), ("recount", 2), ("drop", 5), ("put", 0, (1, 0)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaignd.sqlite3"
        shutil.copyfile(template, path)
        asyncio.run(scenario(path, ops))
        with sqlite3.connect(path) as conn:
            replied = conn.execute("SELECT SUM(replied) FROM contacts").fetchone()[0]
            opted = conn.execute("SELECT SUM(opted_out) FROM insight_slots").fetchone()[0]
    assert replied == 2  # (1, 0) by in1 and in4 moved to (2, 0); in5 dropped
    assert opted == 1  # (1, 1) by in2 (a stop)


# --- in process: the difference and the contact's moves, on any figures ---------------

times = st.one_of(st.none(), st.sampled_from([T0, T0 + 30.0, T0 + 900.0, T0 + 4 * DAY]))
figures_ = st.builds(
    Figures,
    flags=st.sets(st.sampled_from([SENT, DELIVERED, READ, FAILED, BAD_NUMBER, REPLIED,
                                   OPTED_OUT])).map(sum),
    sent_at=times, read_at=times, reply_at=times, last_reply_at=times,
    delays=st.tuples(*[st.integers(0, 18)] * 3).map(
        lambda b: b[0] | b[1] << 5 | b[2] << 10))
sends = st.lists(st.builds(Send, st.sampled_from([T0, T0 + 30.0, T0 + 900.0]),
                           st.integers(1, 2), st.integers(0, 2), st.booleans()),
                 max_size=2, unique_by=lambda s: s[:3]).map(
    lambda found: tuple(sorted(found, key=lambda s: s[:3], reverse=True)))
contacts = st.builds(Contact, st.just(NUMBERS[0]), st.integers(0, 3), st.integers(0, 3),
                     st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), times, times,
                     sends)
changes = st.lists(st.builds(RowChange, st.integers(1, 2), st.integers(0, 2), figures_,
                             figures_), min_size=1, max_size=4)


def moved_by_counting(old: Figures, new: Figures) -> Deltas:
    """The aggregates' move as before wave 10: the old figures out, the new ones in."""
    deltas = Deltas()
    deltas._count(1, 7, old, -1)
    deltas._count(1, 7, new, +1)
    return deltas


@settings(max_examples=examples(200), deadline=None)
@given(old=figures_, new=figures_, reply=st.booleans())
def test_the_difference_equals_taking_out_and_putting_in(old: Figures, new: Figures,
                                                          reply: bool) -> None:
    if reply:  # the common case: same sending, only what a reply moves differs
        new = old._replace(flags=new.flags & (REPLIED | OPTED_OUT) | old.flags
                           & ~(REPLIED | OPTED_OUT), reply_at=new.reply_at,
                           last_reply_at=new.last_reply_at)
    deltas = Deltas()
    deltas.move(1, 7, 3, NUMBERS[0], old, new)
    expected = moved_by_counting(old, new) if old != new else Deltas()
    assert sorted(deltas.nonzero_slots()) == sorted(expected.nonzero_slots())
    assert sorted(deltas.nonzero_delays()) == sorted(expected.nonzero_delays())


def apply_every_change(contact: Contact, changes: Iterable[RowChange]) -> int:
    """domain/contacts.py `apply_changes` before wave 10: every figure of every change
    moved, whether it changed or not."""
    recount = 0
    for change in changes:
        old, new = change.old, change.new
        for name, flag in COUNTED:
            step = bool(new.flags & flag) - bool(old.flags & flag)
            if step:
                setattr(contact, name, getattr(contact, name) + step)
        if not recount & RECOUNT_READ:
            contact.last_read_at, lost = _max_moved(contact.last_read_at, old.read_at,
                                                    new.read_at)
            recount |= RECOUNT_READ if lost else 0
        if not recount & RECOUNT_REPLY:
            contact.last_replied_at, lost = _max_moved(contact.last_replied_at,
                                                       old.last_reply_at, new.last_reply_at)
            recount |= RECOUNT_REPLY if lost else 0
        if not recount & RECOUNT_SENDS:
            recount |= _sends_moved(contact, send_of(change.campaign_no, change.row, old),
                                    send_of(change.campaign_no, change.row, new))
    return recount


@settings(max_examples=examples(200), deadline=None)
@given(contact=contacts, changes=changes, reply_only=st.booleans())
def test_a_contacts_moves_equal_moving_every_figure(contact: Contact,
                                                    changes: list[RowChange],
                                                    reply_only: bool) -> None:
    if reply_only:  # the sends and reads as they were: only the replies move
        changes = [c._replace(new=c.old._replace(
            flags=c.new.flags & REPLIED | c.old.flags & ~REPLIED,
            reply_at=c.new.reply_at, last_reply_at=c.new.last_reply_at))
            for c in changes]
    ours, reference = dataclasses.replace(contact), dataclasses.replace(contact)
    assert apply_changes(ours, changes) == apply_every_change(reference, changes)
    assert ours == reference
