"""Campaigns and message rows: creation, registration and the reads the API serves."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import structlog

from domain.engagement import ENGAGEMENT_FILTERS
from domain.failures import CATEGORY_NAMES, Failure
from domain.index import id_hash
from domain.ledger import NONE, to_tenths
from domain.phones import number_key_of
from domain.records import CampaignInfo, RegisteredMessage
from domain.skips import SKIPPED
from domain.status import FAILED_CLASS, STATUS_FILTERS, message_class
from store.attempts import ACCEPTED_AT_SQL, ACCEPTED_ATTEMPT_SQL
from store.db import Store
from store.sending_rows import SendingRows, failure_columns
from store.spans import spans

log = structlog.get_logger(__name__)

CAMPAIGN_COLUMNS = (
    "no, uuid, workspace_id, name, status, message, gateway, rate, created_at, updated_at,"
    " statistics, send_at, send_window, start_note"
)
ROW_COLUMNS = (
    "row, message_id, raw_id, recipient, contact_id, level, failed, cls, reason, ts_queued,"
    " ts_pending, ts_sent, ts_delivered, ts_read, ts_played, ts_failed, send_state,"
    " failure_source, failure_code, failure_title, failure_details, failure_category,"
    " failure_at, attempts, attempt_at, outcome_at, note, skip_reason, skip_detail,"
    " skip_source, skipped_at"
)


class CampaignExists(Exception):
    pass


class MessageConflict(Exception):
    """A message id is registered to another campaign (index into the request)."""

    def __init__(self, index: int, message_id: str) -> None:
        super().__init__(f"messages[{index}].message_id {message_id!r} belongs to another campaign")
        self.index = index
        self.message_id = message_id


@dataclass(slots=True)
class NewMessage:
    """A validated registration item (see web/api.py for the checks)."""

    recipient: str
    message_id: str | None
    raw_id: str | None
    contact_id: str | None
    level: int
    failed: bool
    reason: str | None
    failure: Failure | None = None



_NEW_ROW_COLUMNS = (
    "campaign_no, row, message_id, raw_id, h, recipient, contact_id, level, failed, cls,"
    " reason, ts_queued, ts_pending, ts_sent, ts_delivered, ts_read, ts_played, ts_failed,"
    " failure_source, failure_code, failure_title, failure_details, failure_category,"
    " failure_at, nh, ag_dirty")
INSERT_ROWS = f"INSERT INTO messages ({_NEW_ROW_COLUMNS}) VALUES ({','.join('?' * 26)})"
# A sending campaign's rows, queued to send with their template variables.
INSERT_SENDING_ROWS = (f"INSERT INTO messages ({_NEW_ROW_COLUMNS}, send_state, variables)"
                       f" VALUES ({','.join('?' * 26)}, 'queued', ?)")
# Rows per transaction when a campaign is created with its recipients: 100,000 rows in one
# transaction held every webhook's commit behind it for 2 s (docs/sending.md).
CREATE_CHUNK = 5000
# Campaigns whose creation has not finished (table `campaigns_creating`, migration 0021).
NOT_CREATING = "no NOT IN (SELECT no FROM campaigns_creating)"


def _drop_statements(which: str) -> list[tuple[str, tuple[()], bool]]:
    """Remove campaigns (`no {which}`) whose creation did not finish, with their rows."""
    return [(f"DELETE FROM messages WHERE campaign_no {which}", (), False),
            (f"DELETE FROM campaigns WHERE no {which}", (), False),
            (f"DELETE FROM campaigns_creating WHERE no {which}", (), False)]


def _rows(campaign_no: int, first: int, fresh: Sequence[NewMessage], now: float
          ) -> tuple[RowParams, list[RegisteredMessage]]:
    """The INSERT_ROWS parameters of new messages numbered from `first`, and the same
    messages as the campaign actor registers them."""
    registered = [
        RegisteredMessage(first + offset, m.message_id, m.level, m.failed, m.reason, now,
                          failure=m.failure,
                          number_key=number_key_of(m.recipient))  # how replies find the row
        for offset, m in enumerate(fresh)]
    return RowParams(campaign_no, fresh, registered), registered


class RowParams(Sequence[tuple[Any, ...]]):
    """INSERT_ROWS parameters made one row at a time, as executemany takes them.

    regmem13 (issue 20): a list of 10,000 26-field tuples (2.9 MB of small objects)
    alive beside the request's messages needed pymalloc arenas that the few objects
    made among them and kept then pinned for good: registration left ~13 MiB of arenas
    holding ~1.5 MB (docs/BENCHMARKS.md "Wave 13: regmem13"). Made as executemany
    asks, one row exists at a time. The messages are not changed while the writer
    thread reads them."""

    __slots__ = ("campaign_no", "fresh", "registered")

    def __init__(self, campaign_no: int, fresh: Sequence[NewMessage],
                 registered: Sequence[RegisteredMessage]) -> None:
        self.campaign_no, self.fresh, self.registered = campaign_no, fresh, registered

    def __len__(self) -> int:
        return len(self.fresh)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self.fresh)))]
        return self._row(range(len(self.fresh))[i])

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return map(self._row, range(len(self.fresh)))

    def _row(self, i: int) -> tuple[Any, ...]:
        m, r = self.fresh[i], self.registered[i]
        now = r.registered_at
        return (self.campaign_no, r.row, m.message_id, m.raw_id,
                id_hash(m.message_id) if m.message_id else None,
                m.recipient, m.contact_id, m.level, int(m.failed),
                message_class(m.level, m.failed), m.reason, now,
                now if m.level >= 1 else None,
                now if m.level >= 2 else None, now if m.level >= 3 else None,
                now if m.level >= 4 else None, now if m.level >= 5 else None,
                now if m.failed else None,
                *failure_columns(m.failure, now if m.failed else None), r.number_key,
                # analytics (SPEC 8): a row registered already sent is to be counted
                int(m.level >= 1 or m.failed))


class CampaignStore(SendingRows):
    """Campaigns and their message rows: creation, registration, the API's reads; the
    sender's writes to the rows are `SendingRows`' (store/sending_rows.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next_row: dict[int, int] = {}
        # Row numbers and campaign numbers are handed out here: one registration at a time.
        self._lock = asyncio.Lock()

    async def load_next_rows(self) -> None:
        # Per campaign, each by its primary key's last entry: a GROUP BY over messages
        # walked every row (0.15 s at a million, before a start could replay anything).
        rows = await self.store.fetchall(
            "SELECT no, (SELECT MAX(row) + 1 FROM messages WHERE campaign_no = no) AS next"
            " FROM campaigns WHERE next IS NOT NULL")
        self._next_row = {no: n for no, n in rows}

    async def create(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        async with self._lock:
            return await self._create(*args, **kwargs)

    async def _create(
        self,
        workspace_id: int,
        name: str,
        uuid: str | None = None,
        message: str | None = None,
        gateway: str | None = None,
        rate: float | None = None,
        send_window: str | None = None,
        creating: bool = False,
    ) -> dict[str, Any]:
        uuid = uuid or str(uuidlib.uuid4())
        if await self.get(uuid) is not None:
            raise CampaignExists(uuid)
        now = time.time()
        # Numbered and read back inside the writer's transaction, not through the reader:
        # the reader may still be in an older snapshot (docs/BENCHMARKS.md, the analytics
        # row's 500), so neither MAX(no) nor the new row can come from there.
        created: list[Any] = []

        def read_back(conn: sqlite3.Connection) -> None:
            created.append(conn.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE uuid = ?", (uuid,)).fetchone())

        try:
            await self.store.transaction(
                [
                    (
                        "INSERT INTO campaigns (no, uuid, workspace_id, name, status, message,"
                        " gateway, rate, created_at, updated_at, send_window)"
                        " SELECT COALESCE(MAX(no), 0) + 1, ?,?,?,?,?,?,?,?,?,? FROM campaigns",
                        (uuid, workspace_id, name, initial_status(message, gateway),
                         message, gateway, rate, now, now, send_window),
                        False,
                    ),
                    (read_back, (), False),
                    *([("INSERT INTO campaigns_creating (no) SELECT no FROM campaigns"
                        " WHERE uuid = ?", (uuid,), False)] if creating else []),
                ]
            )
        except sqlite3.IntegrityError as exc:
            raise CampaignExists(uuid) from exc
        return _campaign(created[0])

    async def create_sending(
        self, workspace_id: int, name: str, uuid: str | None, message: str, gateway: str,
        rate: float, send_window: str | None, new: Sequence[NewMessage],
        variables: Sequence[str | None], options: str | None,
    ) -> tuple[dict[str, Any], list[RegisteredMessage]]:
        """A sending campaign with its recipients, all or nothing: a chunk of rows per
        transaction (CREATE_CHUNK), so the webhooks' commits take turns with them
        instead of waiting for 100,000 rows. Until the last transaction the campaign
        is hidden (`get`, `list`), and one a crash interrupted is dropped at the next
        start (`drop_unfinished`)."""
        async with self._lock:
            campaign = await self._create(workspace_id, name, uuid, message, gateway, rate,
                                          send_window, creating=True)
            no = campaign["no"]
            now = to_tenths(time.time()) / 10
            registered: list[RegisteredMessage] = []
            try:
                for lo, hi in spans(len(new), CREATE_CHUNK):
                    params, rows = _rows(no, lo, new[lo:hi], now)
                    await self.store.transaction([(INSERT_SENDING_ROWS, [
                        (*p, v) for p, v in zip(params, variables[lo:hi], strict=True)],
                        True)])
                    registered += rows
                await self.store.transaction([
                    ("UPDATE campaigns SET send_options = ?, updated_at = ? WHERE no = ?",
                     (options, now, no), False),
                    ("DELETE FROM campaigns_creating WHERE no = ?", (no,), False)])
            except BaseException:
                await self._drop(no)
                raise
            self._next_row[no] = len(new)
            return campaign, registered

    async def _drop(self, no: int) -> None:
        """Undo an unfinished creation; if storage refuses, the next start does it."""
        try:
            await self.store.transaction(_drop_statements(f"= {int(no)}"))
        except Exception as exc:
            log.warning("campaign.creation_left_for_start", campaign_no=no, error=str(exc))

    async def drop_unfinished(self) -> int:
        """At start: drop the campaigns whose creation a crash interrupted."""
        rows = await self.store.fetchall("SELECT no FROM campaigns_creating")
        if rows:
            await self.store.transaction(
                _drop_statements("IN (SELECT no FROM campaigns_creating)"))
            log.info("campaign.unfinished_creations_dropped",
                     campaigns=[r[0] for r in rows])
        return len(rows)

    async def get(self, uuid: str) -> dict[str, Any] | None:
        row = await self.store.fetchone(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE uuid = ? AND {NOT_CREATING}",
            (uuid,))
        return _campaign(row) if row else None

    async def list(
        self,
        workspace_id: int | None,
        status: str | None,
        after_no: int | None,
        limit: int,
        workspaces: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        where, params = [NOT_CREATING], []
        if workspace_id is not None:
            where.append("workspace_id = ?")
            params.append(workspace_id)
        if workspaces is not None:
            where.append(f"workspace_id IN ({','.join('?' * len(workspaces)) or 'NULL'})")
            params.extend(workspaces)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if after_no is not None:
            where.append("no < ?")
            params.append(after_no)
        sql = f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE " + " AND ".join(where)
        sql += " ORDER BY no DESC LIMIT ?"
        params.append(limit)
        return [_campaign(r) for r in await self.store.fetchall(sql, params)]

    async def all_infos(self) -> dict[int, CampaignInfo]:
        rows = await self.store.fetchall("SELECT no, uuid, workspace_id, name FROM campaigns")
        return {r[0]: CampaignInfo(r[0], r[1], r[2], r[3]) for r in rows}

    async def set_status(self, no: int, status: str) -> None:
        await self.store.transaction(
            [("UPDATE campaigns SET status = ?, updated_at = ? WHERE no = ?",
              (status, time.time(), no), False)]
        )

    async def register(
        self, campaign_no: int, items: Sequence[NewMessage]
    ) -> tuple[list[RegisteredMessage], int]:
        """Insert the new messages (all or none); return them and the duplicate count."""
        async with self._lock:
            return await self._register(campaign_no, items)

    async def _register(
        self, campaign_no: int, items: Sequence[NewMessage]
    ) -> tuple[list[RegisteredMessage], int]:
        ids = [m.message_id for m in items if m.message_id]
        existing: dict[str, int] = {}
        for start, end in spans(len(ids), 500):  # few statement sizes: store/spans.py
            chunk = ids[start:end]
            rows = await self.store.fetchall(
                f"SELECT message_id, campaign_no FROM messages WHERE message_id IN"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            )
            existing.update({mid: no for mid, no in rows})
            rows = await self.store.fetchall(  # ids of earlier attempts (SPEC 9) are taken
                f"SELECT message_id, campaign_no FROM attempts WHERE message_id IN"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            )
            existing.update({mid: no for mid, no in rows})
        seen: set[str] = set()
        fresh: list[NewMessage] = []
        for i, m in enumerate(items):
            if m.message_id:
                owner = existing.get(m.message_id)
                if owner is not None and owner != campaign_no:
                    raise MessageConflict(i, m.message_id)
                if owner is not None or m.message_id in seen:
                    continue
                seen.add(m.message_id)
            fresh.append(m)
        if not fresh:
            return [], len(items)
        # In tenths of a second, as the ledger keeps times: a level reached at
        # registration then shows exactly the queued time, never a few ms before it.
        now = to_tenths(time.time()) / 10
        first = self._next_row.get(campaign_no, 0)
        params, registered = _rows(campaign_no, first, fresh, now)
        await self.store.transaction([
            (INSERT_ROWS, params, True),
            ("UPDATE campaigns SET updated_at = ? WHERE no = ?", (now, campaign_no), False),
        ])
        self._next_row[campaign_no] = first + len(fresh)
        return registered, len(items) - len(fresh)

    async def rows(
        self,
        campaign_no: int,
        status: str | None,
        search: str | None,
        after_row: int | None,
        limit: int,
        category: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows in row order; `category` keeps the failed ones whose kept failure is in
        that category (domain/failures.py), rows failed without one count as other."""
        where = ["campaign_no = ?"]
        params: list[Any] = [campaign_no]
        if status in ENGAGEMENT_FILTERS:  # replied / opted_out: rows with such events
            where.append("row IN (SELECT row FROM inbound WHERE campaign_no = ? AND kind = ?"
                         + (" AND via = ?)" if status == "replied" else ")"))
            params += [campaign_no, *ENGAGEMENT_FILTERS[status]]
        elif status == SKIPPED:  # counted as skipped: nothing sent or failed (domain/skips)
            where.append("cls = 0 AND skip_reason IS NOT NULL")
        elif status is not None:
            low, high = STATUS_FILTERS[status]
            where.append("cls BETWEEN ? AND ?")
            params += [low, high]
            if status == "queued":  # the Queued card does not count skipped rows
                where.append("skip_reason IS NULL")
        if category is not None:
            assert category in CATEGORY_NAMES
            where.append("cls = ?")
            params.append(FAILED_CLASS)
            if category == "other":
                where.append("(failure_category = 'other' OR failure_category IS NULL)")
            else:
                where.append("failure_category = ?")
                params.append(category)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(recipient LIKE ? ESCAPE '\\' OR message_id LIKE ? ESCAPE '\\'"
                         " OR row IN (SELECT row FROM attempts WHERE campaign_no = ? AND"
                         " message_id LIKE ? ESCAPE '\\'))")
            params += [f"%{escaped}%", f"%{escaped}%", campaign_no, f"%{escaped}%"]
        if after_row is not None:
            where.append("row > ?")
            params.append(after_row)
        params.append(limit)
        rows = await self.store.fetchall(
            f"SELECT {ROW_COLUMNS} FROM messages WHERE {' AND '.join(where)}"
            " ORDER BY row LIMIT ?",
            params,
        )
        return [_row(r) for r in rows]

    async def state_columns(self, campaign_no: int, chunk: int = 50_000, after_row: int = -1,
                            base: int | None = None) -> AsyncIterator[
            tuple[int, list[tuple[Any, ...]], list[tuple[int, ...]]]]:
        """A campaign's stored rows as (base, columns, attempts) chunks, for an actor being
        loaded; attempts: (row, latest attempt, latest accepted attempt above the first or
        None, its tick or None) of the rows sent more than once.

        Times come as int32 tenths of a second relative to the first row's registration,
        computed by SQLite exactly as actors/ledger.py's `tick` does (NONE = not reached),
        so a million rows load without a Python operation per timestamp. `after_row` and
        `base`: only the rows after a recovery image's, against its base (store/image.py)."""
        if base is None:
            first = await self.store.fetchone(
                "SELECT ts_queued FROM messages WHERE campaign_no = ? ORDER BY row LIMIT 1",
                (campaign_no,))
            if first is None:
                return
            base = to_tenths(first[0])
        def tick(column: str) -> str:
            return f"COALESCE(CAST({column} * 10 + 0.5 AS INTEGER) - :base, {NONE})"

        ticks = ", ".join(map(tick, ("ts_queued", "ts_pending", "ts_sent", "ts_delivered",
                                     "ts_read", "ts_played", "ts_failed")))
        after = after_row
        while True:
            rows = await self.store.fetchall(
                f"SELECT row, level, failed, reason, {ticks}, failure_source, failure_code,"
                f" failure_title, failure_details, {tick('failure_at')}, attempts,"
                f" {ACCEPTED_ATTEMPT_SQL}, CAST(({ACCEPTED_AT_SQL}) * 10 + 0.5 AS INTEGER)"
                " - :base FROM messages"
                " WHERE campaign_no = :no AND row > :after ORDER BY row LIMIT :chunk",
                {"base": base, "no": campaign_no, "after": after, "chunk": chunk})
            if not rows:
                return
            after = rows[-1][0]
            columns = list(zip(*rows, strict=True))
            accepted_at, accepted, attempts = columns.pop(), columns.pop(), columns.pop()
            # SPEC 9: the latest attempt of the few rows sent more than once (and their
            # latest accepted one, for reply attribution).
            later = list(compress(zip(columns[0], attempts, accepted, accepted_at,
                                      strict=True), map((1).__lt__, attempts)))
            yield base, columns, later


def initial_status(message: str | None, gateway: str | None) -> str:
    """A campaign whose messages another system sends is `tracking` for its whole life;
    one campaignd sends starts `pending` (then processing, paused, completed...)."""
    return "tracking" if message is None and gateway is None else "pending"


def _campaign(row: Sequence[Any]) -> dict[str, Any]:
    keys = [c.strip() for c in CAMPAIGN_COLUMNS.split(",")]
    return dict(zip(keys, row, strict=True))


def _row(row: Sequence[Any]) -> dict[str, Any]:
    keys = [c.strip() for c in ROW_COLUMNS.split(",")]
    return dict(zip(keys, row, strict=True))
