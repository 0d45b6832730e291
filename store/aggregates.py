"""The analytics aggregates (SPEC 8) in SQLite: recounting message rows, on the writer
thread's sqlite3 connection (store/db.py runs these steps there), inside the transaction
that writes them.

Tables (migration 0009_insights):
- `insight_slots` (workspace_id, slot): per quarter-hour of SEND time, the messages sent,
  delivered, read, replied, failed and opted out; per quarter-hour of the event, the
  reads and replies that happened then (domain/insights.py SLOT_FIELDS),
- `insight_delays` (campaign_no, series, bucket): the time from sending to delivered /
  read / replied in DELAY_EDGES buckets, and the count sent (series 0),
- `contacts` (workspace_id, number): each number's counts, latest read and reply, its two
  latest sends and whether they failed as a bad number (domain/contacts.py),
- `messages.ag_*`: the figures each row is counted with,
- `contact_tiers` (migration 0011): contacts counted by their tier facts, moved with
  every contact written (store/tier_counts.py).

Whoever writes a row's state (a checkpoint, a registration, the sender) also marks it
(`ag_dirty = 1`, in the same statement, so for free). The Recounter (store/insights.py)
then recounts marked rows in small transactions of their own: `recount_marked` reads
the rows as they now are and the inbound events credited to them, works out their
figures, moves the aggregates by new minus counted, stores the new figures and clears
the marks, all in one transaction. So the aggregates always equal the sum of the stored
figures, and a row's figures catch up with its state a moment after it is written:
ingest never waits for the analytics. The backfill (`backfill`) recounts once every row
a database held when migration 0009 added the aggregates.
This module does not import store/db.py (db imports the migrations, which import this).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import aiosqlite
import structlog

from domain.contacts import (
    RECOUNT_READ,
    RECOUNT_REPLY,
    RECOUNT_SENDS,
    Contact,
    Send,
    apply_changes,
    recounted,
)
from domain.engagement import Touch
from domain.insights import (
    ATTEMPTED,
    BAD_NUMBER,
    NO_ENGAGEMENT,
    SLOT_FIELDS,
    ZERO,
    Deltas,
    Engagement,
    Figures,
    engagement_of,
    figures,
)
from domain.phones import e164_digits, number_key
from domain.tier_counts import FactKey, engaged_day, key_of
from store import tier_counts
from store.column_updates import Change, ColumnUpdates
from store.spans import spans

log = structlog.get_logger(__name__)

CHUNK = 500
FLUSH = 5000  # changed rows written (in the same transaction) before more are read

FIGURE_COLUMNS = ("ag_flags", "ag_sent_at", "ag_read_at", "ag_reply_at", "ag_last_reply",
                  "ag_delays")
ROW_SELECT = ("SELECT row, cls, failure_category, ts_queued, ts_pending, ts_delivered,"
              " ts_read, ts_failed, recipient, " + ", ".join(FIGURE_COLUMNS) +
              ", ag_dirty FROM messages WHERE campaign_no = ?")
ROW_SQL = ROW_SELECT + " AND row IN ({})"
# Rows close together (a checkpoint's, a burst of replies to one campaign's messages):
# one range of the primary key, read in order, instead of a seek per listed row.
ROW_RANGE_SQL = ROW_SELECT + " AND row BETWEEN ? AND ?"
ADD_SLOTS = ("INSERT INTO insight_slots (workspace_id, slot, " + ", ".join(SLOT_FIELDS) +
             ") VALUES (" + ", ".join("?" * (len(SLOT_FIELDS) + 2)) + ")"
             " ON CONFLICT (workspace_id, slot) DO UPDATE SET " +
             ", ".join(f"{f} = {f} + excluded.{f}" for f in SLOT_FIELDS))
ADD_DELAYS = ("INSERT INTO insight_delays (campaign_no, series, bucket, n) VALUES (?,?,?,?)"
              " ON CONFLICT (campaign_no, series, bucket) DO UPDATE SET n = n + excluded.n")
CONTACT_COLUMNS = ("number", "received", "delivered", "read", "replied", "failed",
                   "last_read_at", "last_replied_at", "engaged_at", "unreachable",
                   "s1_at", "s1_no", "s1_row", "s1_bad", "s2_at", "s2_no", "s2_row", "s2_bad")
PUT_CONTACT = (
    "INSERT INTO contacts (workspace_id, " + ", ".join(CONTACT_COLUMNS) + ") VALUES ("
    + ", ".join("?" * (len(CONTACT_COLUMNS) + 1)) + ") ON CONFLICT (workspace_id, number)"
    " DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in CONTACT_COLUMNS[1:]))

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS insight_slots (workspace_id INTEGER NOT NULL,"
    " slot INTEGER NOT NULL, " + ", ".join(f"{f} INTEGER NOT NULL DEFAULT 0"
                                           for f in SLOT_FIELDS) +
    ", PRIMARY KEY (workspace_id, slot)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS insight_delays (campaign_no INTEGER NOT NULL,"
    " series INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (campaign_no, series, bucket)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS contacts (workspace_id INTEGER NOT NULL,"
    " number TEXT NOT NULL, received INTEGER NOT NULL DEFAULT 0,"
    " delivered INTEGER NOT NULL DEFAULT 0, read INTEGER NOT NULL DEFAULT 0,"
    " replied INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
    " last_read_at REAL, last_replied_at REAL, engaged_at REAL NOT NULL DEFAULT 0,"
    " unreachable INTEGER NOT NULL DEFAULT 0,"
    " s1_at REAL, s1_no INTEGER, s1_row INTEGER, s1_bad INTEGER,"
    " s2_at REAL, s2_no INTEGER, s2_row INTEGER, s2_bad INTEGER,"
    " PRIMARY KEY (workspace_id, number)) WITHOUT ROWID",
    # What the tiers are decided from (domain/tiers.py), so that counting the contacts
    # per tier reads this index, not the rows (store/insights.py tier_counts).
    "CREATE INDEX IF NOT EXISTS contacts_facts ON contacts"
    " (workspace_id, unreachable, engaged_at, delivered)",
)


def stored_figures(row: Sequence[Any]) -> Figures:
    """The figures a row was counted with (its ag_* columns; never counted: ZERO)."""
    if row[0] is None:
        return ZERO
    return Figures(row[0], row[1], row[2], row[3], row[4], row[5] or 0)


class Rows(NamedTuple):
    """Rows of one campaign to recount: row numbers in ascending order, and the
    engagement of those that have any (domain/insights.Engagement, from the inbound
    events credited to them); the others have none."""

    campaign_no: int
    rows: Sequence[int]
    engagement: Mapping[int, Engagement] = {}


class FigureUpdate(NamedTuple):
    """A row's figure columns to write: as stored (FIGURE_COLUMNS order), as they are
    now, and whether the row is marked (the write clears the mark)."""

    campaign_no: int
    row: int
    stored: Sequence[Any]
    new: Sequence[Any]
    marked: bool


def _set_figures(conn: sqlite3.Connection, updates: Sequence[FigureUpdate]) -> None:
    """Write the figures that changed, grouped by which columns changed: a reply credited
    to an unmarked row writes its 4 reply figures, not all 6 and the mark (a write of
    the wide message row costs by the columns it sets; the mark's partial index too)."""
    FIGURES.write(conn, (
        (FIGURES.changed(u.stored, u.new) + ((MARK_INDEX,) if u.marked else ()), u.new,
         (u.campaign_no, u.row)) for u in updates))


MARK_INDEX = len(FIGURE_COLUMNS)  # in a column set: clear the mark too
FIGURES = ColumnUpdates("messages", FIGURE_COLUMNS, "campaign_no = ? AND row = ?",
                        {MARK_INDEX: "ag_dirty = 0"})


def _work(fetched: list[Any], workspace: int, batch: Rows, deltas: Deltas,
          updates: list[FigureUpdate]) -> None:
    """Figures of fetched rows (ROW_SQL); what changed goes into deltas and updates."""
    no, engagements = batch.campaign_no, batch.engagement
    for r in fetched:
        row = r[0]
        old = stored_figures(r[9:15])
        new = figures(r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                      engagements.get(row, NO_ENGAGEMENT))
        if new == old:
            continue
        deltas.move(workspace, no, row, e164_digits(r[8]), old, new)
        updates.append(FigureUpdate(no, row, r[9:15], (None,) * 6 if new == ZERO else new,
                                    bool(r[15])))


def recount(conn: sqlite3.Connection, batches: Sequence[Rows]) -> None:
    """Recount these rows as they now stand in the database (a transaction step, on the
    writer thread: store/db.py runs steps there, so no work here holds the event loop)."""
    batches = [b for b in batches if len(b.rows)]
    if not batches:
        return
    nos = sorted({b.campaign_no for b in batches})
    workspaces: dict[int, int] = {}
    for lo, hi in spans(len(nos), CHUNK):
        chunk = nos[lo:hi]
        workspaces.update({no: ws for no, ws in conn.execute(
            f"SELECT no, workspace_id FROM campaigns WHERE no IN"
            f" ({','.join('?' * len(chunk))})", chunk)})
    deltas = Deltas()
    updates: list[FigureUpdate] = []
    for batch in batches:
        workspace = workspaces.get(batch.campaign_no)
        if workspace is None:
            continue
        for start, end in spans(len(batch.rows), CHUNK):  # few statement sizes: spans.py
            chunk = list(batch.rows[start:end])
            fetched = _fetch_rows(conn, batch.campaign_no, chunk)
            _work(fetched, workspace, batch, deltas, updates)
            if len(updates) >= FLUSH:  # a million changed rows must not sit in memory
                _write(conn, deltas, updates)
                deltas, updates = Deltas(), []
        if len(batches) > 1 and updates:
            # The same row may come again in a later batch (a checkpoint writing what an
            # earlier, failed one collected): it must be recounted from these figures.
            _write(conn, deltas, updates)
            deltas, updates = Deltas(), []
    _write(conn, deltas, updates)


def _fetch_rows(conn: sqlite3.Connection, campaign_no: int, rows: list[int]) -> list[Any]:
    """ROW_SQL's columns of these rows (ascending) of one campaign: by one range of the
    key when they are close together (at most as many others in between as wanted),
    else by a seek each."""
    if rows[-1] - rows[0] < 2 * len(rows):
        wanted = set(rows)
        return [r for r in conn.execute(ROW_RANGE_SQL, (campaign_no, rows[0], rows[-1]))
                if r[0] in wanted]
    return conn.execute(ROW_SQL.format(",".join("?" * len(rows))),
                        (campaign_no, *rows)).fetchall()


def _write(conn: sqlite3.Connection, deltas: Deltas, updates: list[FigureUpdate]) -> None:
    if not updates:
        return
    contacts, stored = _load_contacts(conn, deltas.contacts)
    recounts: dict[tuple[int, str], int] = {}
    for key, changes in deltas.contacts.items():
        what = apply_changes(contacts[key], changes)
        if what:
            recounts[key] = what
    _set_figures(conn, updates)
    conn.executemany(ADD_SLOTS, [(ws, slot, *counts)
                                 for ws, slot, counts in deltas.nonzero_slots()])
    conn.executemany(ADD_DELAYS, deltas.nonzero_delays())
    for key, what in recounts.items():  # rare: reads this number's rows as written above
        _recount_contact(conn, key[0], contacts[key], what)
    _put_contacts(conn, contacts, stored)


def _put_contacts(conn: sqlite3.Connection, contacts: Mapping[tuple[int, str], Contact],
                  stored: Mapping[tuple[int, str], Sequence[Any]]) -> None:
    """Write the contacts that changed and move their tier counters with them, in this
    transaction (store/tier_counts.py). A stored contact is updated in the columns that
    changed (a reply: its replied count, latest reply and engagement time), grouped by
    those columns; a new one is inserted whole."""
    moves: tier_counts.Moves = Counter()
    changes: list[Change] = []
    inserts: list[tuple[Any, ...]] = []
    for key, c in contacts.items():
        now = _contact_row(c)
        before = stored.get(key)
        if before is None:
            inserts.append((key[0], *now))
            tier_counts.moved(moves, key[0], None, _facts_of_row(now))
            continue
        columns = CONTACTS.changed(before, now)
        if not columns:
            continue
        changes.append((columns, now, (key[0], c.number)))
        if before[_DELIVERED] != now[_DELIVERED] or (
                before[_UNREACHABLE] != now[_UNREACHABLE]) or (
                before[_ENGAGED] != now[_ENGAGED] and engaged_day(before[_ENGAGED] or None)
                != engaged_day(now[_ENGAGED] or None)):
            tier_counts.moved(moves, key[0], _facts_of_row(before), _facts_of_row(now))
    if inserts:
        conn.executemany(PUT_CONTACT, inserts)
    CONTACTS.write(conn, changes)
    tier_counts.move(conn, moves)


_DELIVERED, _ENGAGED, _UNREACHABLE = (CONTACT_COLUMNS.index(c) for c in
                                      ("delivered", "engaged_at", "unreachable"))
CONTACTS = ColumnUpdates("contacts", CONTACT_COLUMNS, "workspace_id = ? AND number = ?")


def _facts_of_row(r: Sequence[Any]) -> FactKey:
    """The tier facts of a contacts row (CONTACT_COLUMNS order)."""
    return key_of(r[_UNREACHABLE], r[_ENGAGED] or None, r[_DELIVERED])


def _load_contacts(conn: sqlite3.Connection, keys: Iterable[tuple[int, str]]
                   ) -> tuple[dict[tuple[int, str], Contact],
                              dict[tuple[int, str], tuple[Any, ...]]]:
    """The contacts of these keys (new ones empty), and the stored rows of those in the
    table (CONTACT_COLUMNS order, as `_contact_row` makes them)."""
    by_workspace: dict[int, list[str]] = defaultdict(list)
    for ws, number in keys:
        by_workspace[ws].append(number)
    out: dict[tuple[int, str], Contact] = {}
    stored: dict[tuple[int, str], tuple[Any, ...]] = {}
    for ws, numbers in by_workspace.items():
        for start, end in spans(len(numbers), CHUNK):
            chunk = numbers[start:end]
            for r in conn.execute(
                    f"SELECT {', '.join(CONTACT_COLUMNS)} FROM contacts WHERE workspace_id = ?"
                    f" AND number IN ({','.join('?' * len(chunk))})", (ws, *chunk)):
                key = (ws, r[0])
                out[key] = contact_of(r)
                stored[key] = r
        for number in numbers:
            if (ws, number) not in out:
                out[(ws, number)] = Contact(number)
    return out, stored


def contact_of(r: Sequence[Any]) -> Contact:
    """A contacts row (CONTACT_COLUMNS order) as a Contact."""
    if r[10] is None:
        sends: tuple[Send, ...] = ()
    elif r[14] is None:
        sends = (Send(r[10], r[11], r[12], bool(r[13])),)
    else:
        sends = (Send(r[10], r[11], r[12], bool(r[13])), Send(r[14], r[15], r[16], bool(r[17])))
    return Contact(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], sends)


def _contact_row(c: Contact) -> tuple[Any, ...]:
    """A contact as its contacts row (CONTACT_COLUMNS order)."""
    sends = c.sends
    if not sends:
        return (c.number, c.received, c.delivered, c.read, c.replied, c.failed,
                c.last_read_at, c.last_replied_at, c.engaged_at or 0.0, 0, *_NO_SEND,
                *_NO_SEND)
    first = sends[0]
    second = (*sends[1][:3], int(sends[1].bad)) if len(sends) > 1 else _NO_SEND
    return (c.number, c.received, c.delivered, c.read, c.replied, c.failed,
            c.last_read_at, c.last_replied_at, c.engaged_at or 0.0, int(c.unreachable),
            first.at, first.campaign_no, first.row, int(first.bad), *second)


_NO_SEND = (None,) * 4


WORKSPACE_ROWS = ("FROM messages WHERE nh = ? AND campaign_no IN"
                  " (SELECT no FROM campaigns WHERE workspace_id = ?)")


def _recount_contact(conn: sqlite3.Connection, workspace: int, contact: Contact,
                     what: int) -> None:
    """The contact's latest read, reply and sends from its rows' figures."""
    key = (number_key(contact.number), workspace)
    read_at = replied_at = None
    sends: list[Send] = []
    if what & (RECOUNT_READ | RECOUNT_REPLY):
        read_at, replied_at = conn.execute(
            f"SELECT MAX(ag_read_at), MAX(ag_last_reply) {WORKSPACE_ROWS}", key
        ).fetchone() or (None, None)
    if what & RECOUNT_SENDS:
        sends = [Send(at, no, row, bool(flags & BAD_NUMBER))
                 for at, no, row, flags in conn.execute(
                     f"SELECT ag_sent_at, campaign_no, row, ag_flags {WORKSPACE_ROWS}"
                     f" AND ag_flags & {ATTEMPTED} ORDER BY ag_sent_at DESC, campaign_no DESC,"
                     " row DESC LIMIT 2", key)]
    recounted(contact, what, read_at, replied_at, sends)


# --- marked rows, migration 0009 and the backfill ------------------------------------------

BACKFILL_KEY = "insights_backfill"  # meta: "done", or the last (campaign_no, row) counted
DONE = "done"
# Set by every write of a row's state (checkpoint, registration, the sender) in its own
# statement: the row must be recounted. Cleared by `recount_marked` in the transaction
# that recounts it, so a crash in between leaves the mark and the row is recounted later.
MARK = "ag_dirty = 1"
# Replies (SPEC 6) are found in the `inbound` table, not by a mark on their message's row
# (wave 8, docs/BENCHMARKS.md): each checkpoint transaction that writes inbound events
# stamps them with a number (`written`, migration 0016) above every number stamped
# before, and the recount walks the events past its cursor, (written, rowid) in meta.
# One row write per reply fewer than marking the (wide) message row: the index entry it
# costs instead is appended at the index's end.
RECOUNTED_WRITTEN = "inbound_recounted_written"  # meta: the cursor's `written`...
RECOUNTED_ROWID = "inbound_recounted_rowid"  # ...and rowid (absent: 0, 0)
META_INT = "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = {}), 0)"
CURSOR_SQL = f"SELECT {META_INT.format('?')}, {META_INT.format('?')}"
PAST_CURSOR = ("written IS NOT NULL AND (written, rowid) >"
               f" ({META_INT.format(repr(RECOUNTED_WRITTEN))},"
               f" {META_INT.format(repr(RECOUNTED_ROWID))})")
# Rows wait to be recounted: marked ones, or credits written past the cursor (the
# insights' "counting" and the benchmark's wait for the analytics ask this).
WAITING_SQL = ("SELECT EXISTS (SELECT 1 FROM messages WHERE ag_dirty = 1) OR EXISTS"
               f" (SELECT 1 FROM inbound WHERE {PAST_CURSOR} AND campaign_no IS NOT NULL)")


def next_written(conn: sqlite3.Connection) -> int:
    """The number a checkpoint transaction stamps its inbound events with (on the writer
    thread, inside that transaction): above every number stamped before and above the
    cursor, so an event written now is past the cursor even if it was recounted before
    (its rowid stays when a later checkpoint moves its credit) or the event holding the
    highest number was dropped since."""
    found = conn.execute("SELECT MAX(written) FROM inbound WHERE written IS NOT NULL"
                         ).fetchone()[0] or 0
    cursor = conn.execute(CURSOR_SQL, (RECOUNTED_WRITTEN, RECOUNTED_ROWID)).fetchone()[0]
    return max(found, cursor) + 1


def credited_since(conn: sqlite3.Connection, limit: int
                   ) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """The rows credited by inbound events written past the cursor (up to `limit`
    events), and where the cursor goes once they are recounted (None: nothing new)."""
    written, rowid = conn.execute(CURSOR_SQL, (RECOUNTED_WRITTEN, RECOUNTED_ROWID)).fetchone()
    found = conn.execute(
        "SELECT written, rowid, campaign_no, row FROM inbound WHERE written IS NOT NULL"
        " AND (written, rowid) > (?, ?) ORDER BY written, rowid LIMIT ?",
        (written, rowid, limit)).fetchall()
    if not found:
        return [], None
    rows = [(c, r) for _, _, c, r in found if c is not None]
    return rows, (found[-1][0], found[-1][1])


async def create_tables(conn: aiosqlite.Connection) -> None:
    """Migration 0009_insights: the aggregate tables, each row's figure columns and its
    mark. The rows a database already holds are counted afterwards by the backfill
    (`backfill`, run by store/insights.py's Recounter once the daemon listens): a million
    rows take over a minute, longer than a service may take to start."""
    async with conn.execute("PRAGMA table_info(messages)") as cur:
        have = {r[1] for r in await cur.fetchall()}
    for name, decl in (*zip(FIGURE_COLUMNS, ("INTEGER", "REAL", "REAL", "REAL", "REAL",
                                             "INTEGER"), strict=True),
                       ("ag_dirty", "INTEGER NOT NULL DEFAULT 0")):
        if name not in have:
            await conn.execute(f"ALTER TABLE messages ADD COLUMN {name} {decl}")
    for sql in SCHEMA:
        await conn.execute(sql)
    await conn.execute("CREATE INDEX IF NOT EXISTS messages_ag_dirty ON messages"
                       " (campaign_no, row) WHERE ag_dirty = 1")
    async with conn.execute("SELECT 1 FROM messages LIMIT 1") as cur:
        existing = await cur.fetchone() is not None
    await conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (BACKFILL_KEY, "0 -1" if existing else DONE))


def _recount_rows(conn: sqlite3.Connection, rows: Sequence[tuple[int, int]]) -> None:
    """Recount (campaign_no, row) pairs in that order, with their credited engagement."""
    batches: dict[int, list[int]] = defaultdict(list)
    for campaign_no, number in rows:
        batches[campaign_no].append(number)
    recount(conn, [Rows(campaign_no, numbers, _credited(conn, campaign_no, numbers))
                   for campaign_no, numbers in batches.items()])


def recount_marked(conn: sqlite3.Connection, limit: int) -> int:
    """Recount up to `limit` marked rows and the rows credited by up to `limit` inbound
    events written since the last recount (a transaction step): clear the marks and move
    the cursor past those events; returns how many rows and events there were."""
    rows = conn.execute("SELECT campaign_no, row FROM messages WHERE ag_dirty = 1"
                        " ORDER BY campaign_no, row LIMIT ?", (limit,)).fetchall()
    credited, cursor = credited_since(conn, limit)
    if rows or credited:
        _recount_rows(conn, sorted({*map(tuple, rows), *credited}))
    if rows:
        # those whose figures did not move (`_set_figures` cleared the others' marks)
        conn.executemany("UPDATE messages SET ag_dirty = 0 WHERE campaign_no = ?"
                         " AND row = ? AND ag_dirty = 1", rows)
    if cursor is not None:
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                         " DO UPDATE SET value = excluded.value",
                         ((RECOUNTED_WRITTEN, str(cursor[0])),
                          (RECOUNTED_ROWID, str(cursor[1]))))
        return len(rows) + max(1, len(credited))
    return len(rows)


def backfill(conn: sqlite3.Connection, limit: int) -> int | None:
    """Count the next `limit` rows after the backfill's cursor (a transaction step):
    how many were looked at, None when the backfill is done. Recounting a row counted
    meanwhile changes nothing, so the backfill and the live counting never count a row
    twice, and a restart goes on from the cursor."""
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (BACKFILL_KEY,)).fetchone()
    if found is None or found[0] == DONE:
        return None
    no, row = (int(part) for part in found[0].split())
    rows = conn.execute("SELECT campaign_no, row FROM messages WHERE (campaign_no, row)"
                        " > (?, ?) ORDER BY campaign_no, row LIMIT ?", (no, row, limit)).fetchall()
    if rows:
        _recount_rows(conn, rows)
    cursor = f"{rows[-1][0]} {rows[-1][1]}" if len(rows) == limit else DONE
    conn.execute("UPDATE meta SET value = ? WHERE key = ?", (cursor, BACKFILL_KEY))
    if cursor == DONE:
        log.info("insights.backfill_done")
    return len(rows)


def count_all(conn: sqlite3.Connection, chunk: int = 5000) -> int:
    """The whole backfill at once, from the start (the benchmark's bulk-written database,
    a repair): every row recounted; returns how many rows were looked at."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '0 -1')",
                 (BACKFILL_KEY,))
    total = 0
    while (done := backfill(conn, chunk)) is not None:
        total += done
    return total


def _credited(conn: sqlite3.Connection, campaign_no: int, rows: Sequence[int]
              ) -> dict[int, Engagement]:
    """Each row's engagement from the inbound events credited to it (store/engagement),
    for ascending rows of one campaign."""
    wanted = set(rows)
    touches: dict[int, list[Touch]] = defaultdict(list)
    if rows[-1] - rows[0] < 4 * len(rows):  # close together: one range
        found: Iterable[tuple[int, float, int, int]] = conn.execute(
            "SELECT row, at, kind, via FROM inbound WHERE campaign_no = ?"
            " AND row BETWEEN ? AND ?", (campaign_no, rows[0], rows[-1]))
    else:  # scattered (replies found by their stamp come in arrival order): by row
        found = []
        for lo, hi in spans(len(rows), CHUNK):
            part = rows[lo:hi]
            found += conn.execute(
                "SELECT row, at, kind, via FROM inbound WHERE campaign_no = ?"
                f" AND row IN ({','.join('?' * len(part))})", (campaign_no, *part)).fetchall()
    for row, at, kind, via in found:
        if row in wanted:
            touches[row].append(Touch(at, kind, via))
    return {row: engagement_of(items) for row, items in touches.items()}
