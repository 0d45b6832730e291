"""GET /api/campaigns/{uuid}/export.csv: every recipient, streamed in chunks.

Rows are read by keyset paging (`row > last`, 500 at a time) and written to
a chunked response as they come, so a 1,000,000-row campaign never sits in memory and
the database is never held in one long read transaction. The CLI's `export` command
uses the same columns and formatting (`EXPORT_SQL`, `csv_text`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from domain.engagement import RowEngagement
from domain.failures import from_text, lookup
from domain.skips import row_status
from domain.status import LEVEL_NAMES, class_name
from domain.timefmt import iso_time
from store.attempts import HISTORY_JSON_SQL
from store.engagement import TOUCH_RANGE_SQL, summarize_rows
from web.common import visible_campaign
from web.keys import RUNTIME

CHUNK_ROWS = 500
TIMESTAMP_COLUMNS = ("queued_at", "pending_at", "sent_at", "delivered_at", "read_at",
                     "played_at", "failed_at")
# message_id is the bare id ACKs are matched by, as in the rows API; raw_message_id the id
# exactly as registered or as the gateway returned it (whatsapp-web.js's serialized form).
# Then what recipients did (SPEC 6.3): first reply, replies, last button, opt-out, and
# the latest reply's text when engagement.keep_reply_text kept it.
ENGAGEMENT_COLUMNS = ("replied_at", "reply_count", "button", "opted_out_at", "reply_text")
# Then SPEC 9: `attempt` is the latest attempt's number (empty: never sent by campaignd);
# `previous_attempts` lists the earlier ones, oldest first, as
# "#1 failed 2026-11-27T15:09:02.369Z (id ABC): 63016 outside window | #2 ...".
ATTEMPT_COLUMNS = ("attempt", "previous_attempts")
# Then a row the sender skipped (SPEC 9; status `skipped`): suppressed | unreachable, the
# suppression's reason (or the tier rule) and source, and when it was skipped.
SKIP_COLUMNS = ("skip_reason", "skip_detail", "skip_source", "skipped_at")
CSV_COLUMNS = ("row", "recipient", "contact_id", "message_id", "raw_message_id", "status",
               "level", "failed", "failure_reason", "failure_code", "failure_category",
               *TIMESTAMP_COLUMNS, *ENGAGEMENT_COLUMNS, *ATTEMPT_COLUMNS, *SKIP_COLUMNS)
_EXPORT_COLUMNS = (
    "SELECT row, recipient, contact_id, raw_id, message_id, level, failed, reason,"
    " {code}, ts_queued, ts_pending, ts_sent, ts_delivered, ts_read, ts_played,"
    " ts_failed, attempts, {history}, {skips} FROM messages WHERE campaign_no = ?"
    " AND row > ? ORDER BY row LIMIT ?"
)
_SKIPS = "skip_reason, skip_detail, skip_source, skipped_at"
_NO_SKIPS = "NULL, NULL, NULL, NULL"
EXPORT_SQL = _EXPORT_COLUMNS.format(code="failure_code", history=HISTORY_JSON_SQL,
                                    skips=_SKIPS)
# Databases this release has not opened yet (the CLI reads them as they are): one of
# release 0.1 (no failure fields, no attempt history), one before skips.
EXPORT_SQL_0_1 = _EXPORT_COLUMNS.format(code="NULL AS failure_code", history="'[]'",
                                        skips=_NO_SKIPS)
EXPORT_SQL_NO_SKIPS = _EXPORT_COLUMNS.format(code="failure_code", history=HISTORY_JSON_SQL,
                                             skips=_NO_SKIPS)


def _cell(value: str | None) -> str:
    """Text as a spreadsheet shows it, never as a formula (CSV injection)."""
    if not value:
        return ""
    return "'" + value if value[0] in "=@\t\r" else value


def csv_text(rows: Iterable[Sequence[Any]], header: bool = False,
             engagement: Mapping[int, RowEngagement] | None = None) -> str:
    """Rows selected by EXPORT_SQL as CSV lines (RFC 4180, CRLF), with the figures of
    the rows that have engagement (store/engagement.py TOUCH_RANGE_SQL)."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_COLUMNS)
    engagement = engagement or {}
    for (row, recipient, contact, raw_id, message_id, level, failed, reason, code,
         *stamps, attempts, history, skip_reason, skip_detail, skip_source,
         skipped_at) in rows:
        category = ""
        if failed or reason or code:
            code = code or (from_text(reason, "").code if reason else None)
            category = lookup(code).category
        e = engagement.get(row)
        button = (e.button[1] or e.button[0]) if e is not None and e.button else None
        writer.writerow((
            row, _cell(recipient), _cell(contact), _cell(message_id),
            _cell(raw_id or message_id),
            row_status(class_name(level, bool(failed)), skip_reason), LEVEL_NAMES[level],
            "true" if failed else "false",
            _cell(reason), _cell(code), category, *(iso_time(ts) or "" for ts in stamps),
            iso_time(e.replied_at) or "" if e else "", e.reply_count if e else 0,
            _cell(button), iso_time(e.opted_out_at) or "" if e else "",
            _cell(e.text) if e else "",
            attempts or "", _cell(previous_attempts_text(history)),
            skip_reason or "", _cell(skip_detail), _cell(skip_source),
            iso_time(skipped_at) or "",
        ))
    return out.getvalue()


def previous_attempts_text(history: str | None) -> str:
    """Earlier attempts (a JSON array from HISTORY_JSON_SQL) as one readable cell."""
    parts = []
    for attempt, message_id, outcome, reason, started, ended in orjson.loads(history or "[]"):
        text = f"#{attempt} {outcome} {iso_time(ended or started) or ''}".rstrip()
        if message_id:
            text += f" (id {message_id})"
        if reason:
            text += f": {reason}"
        parts.append(text)
    return " | ".join(parts)


async def export_csv(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    campaign = await visible_campaign(request)
    await rt.flush_rows()
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="campaign-{campaign["uuid"]}.csv"',
        "Cache-Control": "no-store",
    })
    if request.method == "HEAD":  # headers only: a body here corrupts kept-alive connections
        await response.prepare(request)
        await response.write_eof()
        return response
    response.enable_chunked_encoding()
    no = campaign["no"]
    rows = await rt.store.fetchall(EXPORT_SQL, (no, -1, CHUNK_ROWS))
    await response.prepare(request)  # errors above still become JSON; from here we stream
    header = True
    after = -1
    while True:
        # A chunk is small enough (~10 ms to format) that webhooks are never held up long.
        engagement = summarize_rows(await rt.store.fetchall(
            TOUCH_RANGE_SQL, (no, after, rows[-1][0]))) if rows else {}
        text = csv_text(rows, header, engagement)
        await response.write(text.encode())
        header = False
        if len(rows) < CHUNK_ROWS:
            break
        after = rows[-1][0]
        rows = await rt.store.fetchall(EXPORT_SQL, (no, after, CHUNK_ROWS))
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/campaigns/{uuid}/export.csv", export_csv)
