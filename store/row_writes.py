"""How a campaign's changed rows are written to `messages` (on the writer thread, inside
a checkpoint's row transaction, store/checkpoint.py): one UPDATE ... FROM a CTE of many
rows, the clean rows (nearly all of a flood's) in a narrower statement of their own, the
failure columns only where a row keeps or loses a failure. Apart from the checkpoint's
scheduling because this is what a row costs SQLite, and each choice here was measured
(docs/BENCHMARKS.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from itertools import chain
from typing import Any

from domain.ledger import NONE, DirtyRows
from store.aggregates import MARK
from store.spans import spans

# A changed row's state columns, in `DirtyRows.params` order (domain/ledger.py), then
# campaign_no and row. Written for many rows in ONE statement (a CTE of VALUES joined on
# the key) and marked for the analytics' recount (MARK, store/aggregates.py): a
# statement per row (executemany) steps SQLite once per row, and each step gives the
# GIL away and has to win it back from the busy loop, which made a checkpoint's rows
# cost ~100 us each under load; one statement gives it away once for UPDATE_MANY rows.
STATE_COLUMNS = ("level", "failed", "cls", "reason", "ts_pending", "ts_sent", "ts_delivered",
                 "ts_read", "ts_played", "ts_failed", "failure_source", "failure_code",
                 "failure_title", "failure_details", "failure_category", "failure_at")
UPDATE_MANY = 500


# Columns of a row with no failure kept (the failure's are NULL): most rows. Writing the
# failure columns too costs a delete and insert in messages_failure_category per row,
# so those rows leave them out and `clear_failures_sql` empties them where a stored row
# still has one (rare: a retried row whose earlier attempt failed). Only a later attempt
# clears a kept failure (domain/ledger.py `_start_attempt`), so it runs only for
# campaigns with retried rows (`DirtyRows.retried`): it re-read every row of the chunk,
# ~1.3 us of CPU per row of ~10 (more in wall time).
PLAIN_COLUMNS = STATE_COLUMNS[:10]
FAILURE_COLUMNS = STATE_COLUMNS[10:]


@cache
def update_many_sql(rows: int, columns: tuple[str, ...] = STATE_COLUMNS) -> str:
    """The UPDATE of `columns` for `rows` rows at once (parameters: the columns', then
    campaign_no and row, row after row), marking each for the analytics' recount."""
    keyed = (*columns, "campaign_no", "row")
    one = "(" + ",".join("?" * len(keyed)) + ")"
    return (f"WITH v({','.join(keyed)}) AS (VALUES {','.join([one] * rows)})"
            f" UPDATE messages SET {MARK}, " + ", ".join(f"{c} = v.{c}" for c in columns) +
            " FROM v WHERE messages.campaign_no = v.campaign_no AND messages.row = v.row")


# Most rows by far: never failed, no reason, no failure time, so their class is their
# level. Those go in as constants (cls as the level), the campaign as one parameter:
# a row binds 7 values instead of 12, ~1.6 us less CPU per row of ~10 (measured on a
# 200,000-row campaign).
CLEAN_COLUMNS = ("level", "ts_pending", "ts_sent", "ts_delivered", "ts_read", "ts_played")


@cache
def update_clean_sql(rows: int) -> str:
    """`update_many_sql` for `rows` clean rows of one campaign (parameters: CLEAN_COLUMNS
    and row, row after row, then campaign_no), marked for the recount as it does."""
    keyed = (*CLEAN_COLUMNS, "row")
    one = "(" + ",".join("?" * len(keyed)) + ")"
    return (f"WITH v({','.join(keyed)}) AS (VALUES {','.join([one] * rows)})"
            f" UPDATE messages SET {MARK}, failed = 0, reason = NULL, ts_failed = NULL,"
            " cls = v.level, " +
            ", ".join(f"{c} = v.{c}" for c in CLEAN_COLUMNS) +
            " FROM v WHERE messages.campaign_no = ? AND messages.row = v.row")


@cache
def clear_failures_sql(rows: int) -> str:
    """Empty the failure columns of these rows of one campaign where any is set."""
    return ("UPDATE messages SET " + ", ".join(f"{c} = NULL" for c in FAILURE_COLUMNS) +
            f" WHERE campaign_no = ? AND row IN ({','.join('?' * rows)})"
            f" AND COALESCE({', '.join(FAILURE_COLUMNS)}) IS NOT NULL")


def update_rows(conn: sqlite3.Connection, block: DirtyRows, lo: int, hi: int) -> None:
    """Write rows[lo:hi] of a block (on the writer thread, inside a transaction)."""
    hi = min(hi, len(block))
    if _all_clean(block, lo, hi):
        _update_clean(conn, block, lo, hi)
        return
    params = list(block.params(lo, hi))
    with_failure = [p for p in params if p[15] is not None]  # failure_at: one is kept
    without = [p for p in params if p[15] is None] if with_failure else params
    # failed, reason and ts_failed empty, class = level: the clean statement (most rows)
    clean: list[tuple[Any, ...]] = []
    plain: list[tuple[Any, ...]] = []
    for p in without:
        if not p[1] and p[3] is None and p[9] is None and p[2] == p[0]:
            clean.append((p[0], p[4], p[5], p[6], p[7], p[8], p[17]))
        else:
            plain.append((*p[:10], p[16], p[17]))
    # statement sizes from a short ladder (store/spans.py): SQLite caches each size
    for start, end in spans(len(with_failure), UPDATE_MANY):
        chunk = with_failure[start:end]
        conn.execute(update_many_sql(len(chunk)), list(chain.from_iterable(chunk)))
    if clean:
        _write_clean(conn, block, list(chain.from_iterable(clean)), [p[-1] for p in clean])
    for start, end in spans(len(plain), UPDATE_MANY):
        chunk = plain[start:end]
        conn.execute(update_many_sql(len(chunk), PLAIN_COLUMNS),
                     list(chain.from_iterable(chunk)))
        if block.retried:
            conn.execute(clear_failures_sql(len(chunk)), [block.campaign_no,
                                                           *(p[-1] for p in chunk)])


def _all_clean(block: DirtyRows, lo: int, hi: int) -> bool:
    """Every row of rows[lo:hi] is clean (see CLEAN_COLUMNS): none failed or keeps a
    failure, its class is its level, no failure time. A flood's chunks nearly always."""
    count = hi - lo
    failed_at = block.ticks[5]
    return (not block.failures and block.faileds.count(0, lo, hi) == count
            and block.classes[lo:hi] == block.levels[lo:hi]
            and (not failed_at or failed_at[lo:hi].count(NONE) == count))


def _update_clean(conn: sqlite3.Connection, block: DirtyRows, lo: int, hi: int) -> None:
    """`update_rows` of clean rows only: the statement's parameters laid out a column at
    a time by slice assignment (C-level), where `DirtyRows.params` made an 18-field
    tuple per row and the clean filter a second one (~1 µs of the writer's GIL time
    per row, which the webhooks' loop waited for)."""
    count = hi - lo
    width = len(CLEAN_COLUMNS) + 1  # the columns, then the row
    flat: list[Any] = [None] * (width * count)
    flat[0::width] = block.levels[lo:hi]
    base = block.base
    for k in range(len(CLEAN_COLUMNS) - 1):  # pending .. played (ticks[0:5])
        column = block.ticks[k]
        if column:  # an unmade column is every row NONE: stays None
            flat[k + 1::width] = [None if t == NONE else (t + base) / 10
                                  for t in column[lo:hi]]
    rows = block.rows[lo:hi]
    flat[width - 1::width] = rows
    _write_clean(conn, block, flat, rows)


def _write_clean(conn: sqlite3.Connection, block: DirtyRows, flat: Sequence[Any],
                 rows: Sequence[int]) -> None:
    """The clean statement for these rows of the block's campaign (`flat`: CLEAN_COLUMNS
    and the row, row after row), and where the block has retried rows their failure
    fields emptied: the one write of clean rows for both of `update_rows`' paths."""
    width = len(CLEAN_COLUMNS) + 1
    no = block.campaign_no
    for start, end in spans(len(rows), UPDATE_MANY):
        conn.execute(update_clean_sql(end - start), [*flat[start * width:end * width], no])
        if block.retried:
            conn.execute(clear_failures_sql(end - start), [no, *rows[start:end]])
