"""The sender's reads and writes of a campaign's message rows (SPEC 9: every gateway call
an attempt, committed before the call; its outcome committed before the campaign actor
hears of it), its campaign status and schedule writes, and the Limited-by-Meta requeue.
A base of `CampaignStore` (store/campaigns.py), which keeps creation, registration and
the API's reads; apart because each is a concern of its own with its own callers
(actors/sender_service.py, actors/limited_retry.py)."""

from __future__ import annotations

import time
from typing import Any

from domain.attempts import MAX_ATTEMPT
from domain.failures import Failure, lookup
from domain.index import id_hash
from domain.skips import Skip
from store.aggregates import MARK
from store.attempts import SUPERSEDE_ATTEMPT
from store.db import Store

# One more sender write to a campaign's rows (store/image.py).
ROW_WRITE = "UPDATE campaigns SET row_writes = row_writes + 1 WHERE no = ?"


def failure_columns(failure: Failure | None, at: float | None) -> tuple[Any, ...]:
    """(source, code, title, details, category, at) of a kept failure, for SQL."""
    if failure is None:
        return (None,) * 6
    return (failure.source or None, failure.code, failure.title, failure.details,
            lookup(failure.code).category, at)


class SendingRows:
    """The sender's side of the `messages` and `campaigns` tables."""

    store: Store

    # --- sending (actors/sender_service.py) ------------------------------------------

    async def set_status_reason(self, no: int, status: str, reason: str | None) -> None:
        await self.store.transaction(
            [("UPDATE campaigns SET status = ?, status_reason = ?, updated_at = ? WHERE no = ?",
              (status, reason, time.time(), no), False)]
        )

    async def send_options(self, no: int) -> tuple[str | None, str | None]:
        row = await self.store.fetchone(
            "SELECT send_options, status_reason FROM campaigns WHERE no = ?", (no,))
        return (row[0], row[1]) if row else (None, None)

    async def sendable_rows(self, no: int) -> list[tuple[Any, ...]]:
        """(row, recipient, contact_id, variables, attempts so far) still to send."""
        return [tuple(r) for r in await self.store.fetchall(
            "SELECT row, recipient, contact_id, variables, attempts FROM messages"
            " WHERE campaign_no = ? AND (send_state = 'queued' OR (send_state IS NULL AND"
            " message_id IS NULL AND failed = 0)) ORDER BY row", (no,))]

    async def send_state_counts(self, no: int) -> dict[str, int]:
        rows = await self.store.fetchall(
            "SELECT COALESCE(send_state, 'none'), COUNT(*) FROM messages WHERE campaign_no = ?"
            " GROUP BY 1", (no,))
        return {state: n for state, n in rows}

    async def rows_in_state(self, no: int, state: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(
            "SELECT row, recipient, contact_id, attempts FROM messages WHERE campaign_no = ?"
            " AND send_state = ? ORDER BY row LIMIT ?", (no, state, limit))
        return [{"row": r[0], "recipient": r[1], "contact_id": r[2], "attempts": r[3]}
                for r in rows]

    # The sender's writes that change what a campaign actor holds, counted per campaign
    # (store/image.py: a recovery image taken before one of them is stale).
    # Each gateway call is an attempt (SPEC 9). The latest lives in the message row; when
    # a new one starts, the previous one moves to `attempts` (store/attempts.py reads it).

    async def record_attempt(self, no: int, row: int, attempt: int, at: float) -> None:
        """Durable BEFORE the gateway call: after a crash this row is 'unknown'.

        The previous attempt (if any) becomes history, and the row's failure (which is
        always its latest attempt's) is cleared: a retry under way is not failed."""
        # Counted like every sender write (store/image.py), the first attempt too: it
        # clears the row's failure columns in the table, and a row that held a failure
        # before its first attempt (one registered failed, then sent) would otherwise
        # differ from an image taken before it.
        await self.store.transaction([
            (ROW_WRITE, (no,), False),
            (SUPERSEDE_ATTEMPT, (no, row, attempt - 1), False),
            (f"UPDATE messages SET {MARK}, send_state = 'attempting', attempts = ?,"
             " attempt_at = ?,"
             " outcome = NULL, outcome_at = NULL, note = NULL, message_id = NULL,"
             " raw_id = NULL, h = NULL, failed = 0, reason = NULL, ts_failed = NULL,"
             " failure_source = NULL, failure_code = NULL, failure_title = NULL,"
             " failure_details = NULL, failure_category = NULL, failure_at = NULL,"
             " cls = level"
             " WHERE campaign_no = ? AND row = ?", (attempt, at, no, row), False),
        ])

    async def record_accepted(self, no: int, row: int, message_id: str, raw_id: str,
                              at: float) -> None:
        """The gateway id and level pending, in one transaction."""
        await self.store.transaction([(ROW_WRITE, (no,), False), (
            f"UPDATE messages SET {MARK}, send_state = 'accepted', outcome = 'accepted',"
            " message_id = ?, raw_id = ?, h = ?,"
            " level = MAX(level, 1), cls = CASE WHEN failed = 1 AND MAX(level, 1) < 3 THEN 6"
            " ELSE MAX(level, 1) END, ts_pending = COALESCE(ts_pending, ?), outcome_at = ?"
            " WHERE campaign_no = ? AND row = ?",
            (message_id, raw_id, id_hash(message_id), at, at, no, row), False)])

    async def record_failed(self, no: int, row: int, reason: str, at: float,
                            failure: Failure | None = None) -> None:
        """A refusal at send time. A failure the row kept from before (an earlier ACK)
        stays: the campaign actor keeps the earliest too (domain/failure_book.py)."""
        source, code, title, details, category, _ = failure_columns(failure, at)
        await self.store.transaction([(ROW_WRITE, (no,), False), (
            f"UPDATE messages SET {MARK}, send_state = 'failed', outcome = 'failed',"
            " failed = 1,"
            " cls = CASE WHEN level < 3 THEN 6 ELSE level END,"
            " ts_failed = COALESCE(ts_failed, :at), outcome_at = :at,"
            " reason = CASE WHEN failure_at <= :at THEN reason ELSE :reason END,"
            " failure_source = CASE WHEN failure_at <= :at THEN failure_source ELSE :source END,"
            " failure_code = CASE WHEN failure_at <= :at THEN failure_code ELSE :code END,"
            " failure_title = CASE WHEN failure_at <= :at THEN failure_title ELSE :title END,"
            " failure_details = CASE WHEN failure_at <= :at THEN failure_details"
            " ELSE :details END,"
            " failure_category = CASE WHEN failure_at <= :at THEN failure_category"
            " ELSE :category END,"
            " failure_at = MIN(COALESCE(failure_at, :at), :at)"
            " WHERE campaign_no = :no AND row = :row",
            {"at": at, "reason": reason, "source": source, "code": code, "title": title,
             "details": details, "category": category, "no": no, "row": row}, False)])

    async def record_skipped(self, no: int, row: int, skip: Skip) -> None:
        """Not sent, and never will be by this campaign (SPEC 9): retry-failed and
        retry-unknown do not pick a skipped row up. Its delivery state is untouched."""
        await self.store.transaction([(
            "UPDATE messages SET send_state = 'skipped', outcome = 'skipped',"
            " outcome_at = ?, skip_reason = ?, skip_detail = ?, skip_source = ?,"
            " skipped_at = ? WHERE campaign_no = ? AND row = ?",
            (skip.at, skip.reason, skip.detail, skip.source, skip.at, no, row), False)])

    async def skips(self, no: int) -> list[tuple[int, Skip]]:
        """The campaign's skipped rows, for its actor coming back from passivation."""
        rows = await self.store.fetchall(
            # the partial index of migration 0014 (the planner prefers the primary key,
            # which walks every row of the campaign)
            "SELECT row, skipped_at, skip_reason, skip_detail, skip_source FROM messages"
            " INDEXED BY messages_skipped"
            " WHERE campaign_no = ? AND skip_reason IS NOT NULL ORDER BY row", (no,))
        return [(r[0], Skip(r[1] or 0.0, r[2], r[3], r[4])) for r in rows]

    async def record_transient(self, no: int, row: int, reason: str, at: float) -> None:
        """A timeout or 5xx: retried automatically. After a crash it counts as unknown
        (a timed-out call may have reached WhatsApp)."""
        await self._record_outcome(no, row, "retrying", "retried", reason, at)

    async def record_requeued(self, no: int, row: int, reason: str | None = None,
                              at: float | None = None) -> None:
        """The gateway refused before taking the message (e.g. bad credentials, 429)."""
        await self._record_outcome(no, row, "queued", "not_sent", reason, at)

    async def record_unknown(self, no: int, row: int, reason: str | None = None,
                             at: float | None = None) -> None:
        """The gateway took the message but gave no id: it may be out (not re-sent)."""
        await self._record_outcome(no, row, "unknown", "unknown", reason, at)

    async def _record_outcome(self, no: int, row: int, send_state: str, outcome: str,
                              note: str | None, at: float | None) -> None:
        """An outcome that leaves the row's delivery state alone: its send state, the
        outcome, its note and time."""
        await self.store.transaction([(
            "UPDATE messages SET send_state = ?, outcome = ?, note = ?, outcome_at = ?"
            " WHERE campaign_no = ? AND row = ?", (send_state, outcome, note, at, no, row),
            False)])

    async def mark_unknown(self) -> list[tuple[int, int]]:
        """At start-up: attempts without an outcome. Returns (campaign_no, count) pairs."""
        rows = await self.store.fetchall(
            "SELECT campaign_no, COUNT(*) FROM messages WHERE send_state IN"
            " ('attempting', 'retrying') GROUP BY campaign_no")
        if rows:
            await self.store.transaction([(
                "UPDATE messages SET send_state = 'unknown', outcome = 'unknown' WHERE"
                " send_state IN"
                " ('attempting', 'retrying')", (), False)])
        return [(r[0], r[1]) for r in rows]

    async def unknown_counts(self) -> dict[int, int]:
        """Unknown outcomes per campaign, at start-up: reported until retry-unknown, also
        for campaigns that completed before the restart (no sender is launched for them)."""
        rows = await self.store.fetchall(
            "SELECT campaign_no, COUNT(*) FROM messages WHERE send_state = 'unknown'"
            " GROUP BY campaign_no")
        return {r[0]: r[1] for r in rows}

    async def requeue(self, no: int, state: str) -> int:
        """retry-failed / retry-unknown: put those rows back in the queue.

        'failed' covers refusals at send time and failure ACKs after acceptance (as of
        the last checkpoint: callers run one first). The row's failure is its latest
        attempt's, so an earlier retry that was accepted is not picked up again.
        """
        cond = ("(send_state = 'failed' OR (send_state IN ('accepted', 'resent') AND"
                " failed = 1 AND level < 3))") if state == "failed" else "send_state = 'unknown'"
        cond += f" AND attempts < {MAX_ATTEMPT}"
        row = await self.store.fetchone(
            f"SELECT COUNT(*) FROM messages WHERE campaign_no = ? AND {cond}", (no,))
        if row[0]:
            await self.store.transaction([(
                f"UPDATE messages SET send_state = 'queued' WHERE campaign_no = ? AND {cond}",
                (no,), False)])
        return int(row[0])

    # --- scheduling and send windows (SPEC 9) -------------------------------------------

    async def set_schedule(self, no: int, status: str, send_at: float | None) -> None:
        await self.store.transaction([(
            "UPDATE campaigns SET status = ?, send_at = ?, status_reason = NULL,"
            " start_note = NULL, updated_at = ? WHERE no = ?",
            (status, send_at, time.time(), no), False)])

    async def set_start_note(self, no: int, note: str) -> None:
        await self.store.transaction([(
            "UPDATE campaigns SET start_note = ? WHERE no = ?", (note, no), False)])


    # --- Limited by Meta, retried later (actors/limited_retry.py) ----------------------

    # Once: a row whose earlier attempt failed (SPEC 9 history) was retried already.
    LIMITED = ("failure_category = 'limited_by_meta' AND cls = 6 AND send_state = 'accepted'"
               " AND NOT EXISTS (SELECT 1 FROM attempts AS a WHERE a.campaign_no ="
               " messages.campaign_no AND a.row = messages.row AND a.outcome = 'failed')")

    async def limited_waiting(self) -> list[tuple[int, float]]:
        """(campaign_no, earliest failure time) of campaigns with sends Meta limited that
        were not retried yet."""
        rows = await self.store.fetchall(
            f"SELECT campaign_no, MIN(failure_at) FROM messages WHERE {self.LIMITED}"
            " GROUP BY campaign_no")
        return [(r[0], r[1]) for r in rows if r[1] is not None]

    async def requeue_limited(self, no: int, failed_before: float) -> tuple[int, float | None]:
        """Queue again the limited sends that failed before `failed_before` (each once: a
        retried row has a failed earlier attempt); (rows queued, earliest failure time of
        the others)."""
        due = f"campaign_no = ? AND {self.LIMITED} AND failure_at <= ?"
        row = await self.store.fetchone(f"SELECT COUNT(*) FROM messages WHERE {due}",
                                        (no, failed_before))
        if row[0]:
            await self.store.transaction([(
                f"UPDATE messages SET send_state = 'queued' WHERE {due}", (no, failed_before),
                False)])
        rest = await self.store.fetchone(
            f"SELECT MIN(failure_at) FROM messages WHERE campaign_no = ? AND {self.LIMITED}",
            (no,))
        return int(row[0]), rest[0]
