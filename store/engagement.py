"""Engagement in SQLite (SPEC 6): inbound events, the suppression list, the rows a number
was sent, and the per-row figures the rows API and the CSV show.

Writes happen only in checkpoints (store/checkpoint.py writes the operations the
ingest actor's attributor and suppression book collected); this module reads. The
`inbound` table holds every event credited to a message (the campaign actors rebuild
their engagement from it) and every event still waiting for the facts that place it;
`suppressions` holds the stop / start facts per workspace.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from domain.engagement import RowEngagement, Touch, summarize
from domain.inbound import InboundEvent
from store.aggregates import MARK
from store.db import Statement, Store

INBOUND_COLUMNS = ("id, source, workspace_id, number, at, quoted_id, kind, via,"
                   " button_payload, button_title, body, reason, campaign_no, row, how,"
                   " received_at")
PUT_INBOUND = (
    f"INSERT INTO inbound ({INBOUND_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (id) DO UPDATE SET campaign_no = excluded.campaign_no,"
    " row = excluded.row, how = excluded.how"
)
PUT_SUPPRESSION = (
    "INSERT INTO suppressions (fact_id, workspace_id, number, at, kind, reason, source)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (fact_id, workspace_id) DO UPDATE SET"
    " number = excluded.number, at = excluded.at, kind = excluded.kind,"
    " reason = excluded.reason, source = excluded.source"
)
MARK_CREDITED = (
    f"UPDATE messages SET {MARK} WHERE (campaign_no, row) IN"
    " (SELECT campaign_no, row FROM inbound WHERE id = ? AND campaign_no IS NOT NULL)"
)
CHUNK = 500


def checkpoint_statements(inbound_ops: Iterable[tuple[str, Any]],
                          suppression_ops: Iterable[tuple[str, Any]]) -> list[Statement]:
    """The writes of one checkpoint's engagement changes, in the order they happened."""
    out: list[Statement] = []
    for op, arg in inbound_ops:
        # The rows a credit leaves and the row it goes to are marked for the analytics
        # recount in the same transaction (store/aggregates.py): the campaign actor's row
        # may reach a checkpoint before its credit does, and then nothing else would.
        inbound_id = arg[0] if op == "put" else arg
        out.append((MARK_CREDITED, (inbound_id,), False))
        if op == "put":
            out.append((PUT_INBOUND, arg, False))
            out.append((MARK_CREDITED, (inbound_id,), False))
        else:
            out.append(("DELETE FROM inbound WHERE id = ?", (arg,), False))
    for op, arg in suppression_ops:
        if op == "put":
            out.append((PUT_SUPPRESSION, arg, False))
        else:
            out.append(("DELETE FROM suppressions WHERE fact_id = ? AND workspace_id = ?",
                        arg, False))
    return out


def event_of(row: Sequence[Any]) -> InboundEvent:
    """An inbound table row (INBOUND_COLUMNS order) as the event it was."""
    (inbound_id, _source, workspace_id, number, at, quoted_id, kind, via, payload, title,
     body, reason, *_rest) = row
    return InboundEvent(inbound_id, kind, via, at, number, workspace_id, quoted_id, payload,
                        title, body, reason)


class EngagementStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def number_rows(self, keys: Sequence[int]) -> list[tuple[int, int, int]]:
        """(number key, campaign_no, row) of every message row sent to these numbers."""
        out: list[tuple[int, int, int]] = []
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start:start + CHUNK])
            rows = await self.store.fetchall(
                f"SELECT nh, campaign_no, row FROM messages WHERE nh IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            out.extend((r[0], r[1], r[2]) for r in rows)
        return out

    async def live_inbound(self, window: float) -> list[tuple[Any, ...]]:
        """Events still in their window at start-up: (row as stored) in arrival order.
        Explicitly placed ones are final and stay out."""
        since = time.time() - window
        return [tuple(r) for r in await self.store.fetchall(
            f"SELECT {INBOUND_COLUMNS} FROM inbound WHERE received_at >= ?"
            " AND (how IS NULL OR how != 'explicit') ORDER BY received_at, id", (since,))]

    async def suppression_facts(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.store.fetchall(
            "SELECT fact_id, workspace_id, number, at, kind, reason, source"
            " FROM suppressions ORDER BY fact_id, workspace_id")]

    async def campaign_touches(self, campaign_no: int) -> list[tuple[int, str, Touch]]:
        """Every event credited to the campaign's messages: (row, inbound id, touch)."""
        rows = await self.store.fetchall(f"{TOUCH_COLUMNS} WHERE campaign_no = ? ORDER BY row",
                                         (campaign_no,))
        return [(r[0], r[1], Touch(r[2], r[3], r[4], r[5], r[6], r[7])) for r in rows]

    async def row_engagement(self, campaign_no: int, rows: Sequence[int]
                             ) -> dict[int, RowEngagement]:
        """The figures of these rows (a page of the rows API)."""
        found: list[Any] = []
        for start in range(0, len(rows), CHUNK):
            chunk = list(rows[start:start + CHUNK])
            found += await self.store.fetchall(
                f"{TOUCH_COLUMNS} WHERE campaign_no = ? AND row IN"
                f" ({','.join('?' * len(chunk))})", [campaign_no, *chunk])
        return summarize_rows(found)


# The events credited to rows, as (row, id, at, kind, via, payload, title, body).
TOUCH_COLUMNS = ("SELECT row, id, at, kind, via, button_payload, button_title, body"
                 " FROM inbound")
# ...of the rows after a cursor up to a last row (a CSV chunk).
TOUCH_RANGE_SQL = f"{TOUCH_COLUMNS} WHERE campaign_no = ? AND row > ? AND row <= ?"


def summarize_rows(found: Iterable[Sequence[Any]]) -> dict[int, RowEngagement]:
    """Rows of TOUCH_COLUMNS as each row's figures (domain/engagement.py's rules)."""
    touches: dict[int, list[tuple[str, Touch]]] = {}
    for r in found:
        touches.setdefault(r[0], []).append((r[1], Touch(*r[2:8])))
    return {row: summarize(items) for row, items in touches.items()}
