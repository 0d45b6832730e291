"""Earlier attempts of a recipient (SPEC 9), kept in SQLite and read for the rows API,
the CSV export and the page.

A message row holds its LATEST attempt (number in `attempts`, gateway id in
`message_id`, `attempt_at`, `outcome_at`, a transient error in `note`). When the sender
starts another attempt, the previous one is copied here in the same transaction
(`SUPERSEDE_ATTEMPT`), so a recipient sent once has no row in `attempts` at all.
Its gateway id stays in the id index: an ACK for it still counts as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store.db import Store

# The superseded attempt's outcome (domain/attempts.py OUTCOMES): as the sender stored it,
# "failed" for an accepted one whose failure ACK came; rows sent before outcomes were
# stored (release 0.1) are judged by their failure and id.
OUTCOME_SQL = (
    "CASE WHEN outcome IS NULL THEN CASE WHEN failed = 1 THEN 'failed'"
    " WHEN message_id IS NOT NULL THEN 'accepted' ELSE 'unknown' END"
    " WHEN outcome = 'accepted' AND failed = 1 THEN 'failed' ELSE outcome END"
)


# Parameters: campaign_no, row, the number of the attempt being superseded. Nothing is
# copied for a first attempt (attempts = 0), nor twice (the primary key).
SUPERSEDE_ATTEMPT = (
    "INSERT OR IGNORE INTO attempts (campaign_no, row, attempt, message_id, raw_id, h,"
    " outcome, reason, started_at, ended_at)"
    f" SELECT campaign_no, row, attempts, message_id, raw_id, h, {OUTCOME_SQL},"
    " CASE WHEN failed = 1 THEN reason ELSE note END, attempt_at, outcome_at"
    " FROM messages WHERE campaign_no = ? AND row = ? AND attempts = ? AND attempts >= 1"
)

# For a row's state at load (store/campaigns.py state_columns): its latest ACCEPTED
# attempt above the first, and when it was accepted (the time its id was registered), for
# reply attribution (domain/attempts.py). The row's own attempt when it has an id, else
# the latest earlier one with an id. NULL for rows sent once. {tick} wraps the time.
_LATER_ACCEPTED = (
    " (SELECT a.{column} FROM attempts AS a WHERE a.campaign_no = messages.campaign_no"
    " AND a.row = messages.row AND a.attempt > 1 AND a.message_id IS NOT NULL"
    " ORDER BY a.attempt DESC LIMIT 1)"
)
ACCEPTED_ATTEMPT_SQL = (
    "CASE WHEN attempts > 1 THEN CASE WHEN message_id IS NOT NULL THEN attempts ELSE"
    + _LATER_ACCEPTED.format(column="attempt") + " END END"
)
ACCEPTED_AT_SQL = (
    "CASE WHEN attempts > 1 THEN CASE WHEN message_id IS NOT NULL THEN outcome_at ELSE"
    + _LATER_ACCEPTED.format(column="ended_at") + " END END"
)

HISTORY_COLUMNS = ("attempt", "message_id", "outcome", "reason", "started_at", "ended_at")

# For EXPORT_SQL (web/export.py): a row's earlier attempts as one JSON array, in order.
HISTORY_JSON_SQL = (
    "(SELECT json_group_array(json_array(attempt, COALESCE(raw_id, message_id), outcome,"
    " reason, started_at, ended_at)) FROM (SELECT * FROM attempts AS a WHERE"
    " a.campaign_no = messages.campaign_no AND a.row = messages.row ORDER BY a.attempt))"
)


async def history(store: Store, campaign_no: int, rows: Sequence[int]
                  ) -> dict[int, list[dict[str, Any]]]:
    """Earlier attempts of these rows, oldest first (rows without any are absent)."""
    if not rows:
        return {}
    found = await store.fetchall(
        "SELECT row, attempt, COALESCE(raw_id, message_id), outcome, reason, started_at,"
        " ended_at FROM attempts WHERE campaign_no = ? AND row BETWEEN ? AND ?"
        " ORDER BY row, attempt", (campaign_no, min(rows), max(rows)))
    wanted = set(rows)
    out: dict[int, list[dict[str, Any]]] = {}
    for row, *values in found:
        if row in wanted:
            out.setdefault(row, []).append(dict(zip(HISTORY_COLUMNS, values, strict=True)))
    return out


async def index_entries(store: Store, after: tuple[int, int, int], limit: int
                        ) -> list[tuple[int, int, int, int]]:
    """(campaign_no, row, attempt, h) of earlier attempts' ids, for the id index."""
    return [tuple(r) for r in await store.fetchall(
        "SELECT campaign_no, row, attempt, h FROM attempts WHERE h IS NOT NULL AND"
        " (campaign_no, row, attempt) > (?, ?, ?) ORDER BY campaign_no, row, attempt"
        " LIMIT ?", (*after, limit))]


async def message_id_of(store: Store, campaign_no: int, row: int, attempt: int) -> str | None:
    """The id of an earlier attempt (to resolve a hash collision at start-up)."""
    hit = await store.fetchone(
        "SELECT message_id FROM attempts WHERE campaign_no = ? AND row = ? AND attempt = ?",
        (campaign_no, row, attempt))
    return hit[0] if hit else None
