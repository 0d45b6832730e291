"""Reads of the analytics aggregates (SPEC 8) for the workspace routes (web/insights.py).

Every query reads the aggregate tables store/aggregates.py keeps (a few thousand rows
per workspace at most, or one page of contacts), never the messages, so each answers in
milliseconds whatever the number of messages. The tier filter is domain/tiers.py's
rules rendered as SQL here (`tier_sql`), the same conditions `tier_of` evaluates; the
tier counts come from the counters of store/tier_counts.py (`tier_counts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog

from core.aio import cancel_and_wait
from domain.besttime import WEEK_SLOTS
from domain.contacts import Contact
from domain.insights import SLOT_FIELDS, SLOT_SECONDS
from domain.tier_counts import (
    CUTOFF_DAY,
    DAY,
    NEVER,
    NONE,
    OLD,
    RECENT,
    Group,
    cutoff_of,
    engaged_day,
    split_cutoff_day,
    tally,
)
from domain.tiers import Condition, ContactFacts, TierPolicy, rules
from store.aggregates import (
    CONTACT_COLUMNS,
    WAITING_SQL,
    backfill,
    contact_of,
    recount_marked,
)
from store.campaigns import NOT_CREATING
from store.db import Store, StoreUnavailable
from store.spans import spans
from store.tier_counts import DAY_SQL

log = structlog.get_logger(__name__)

CHUNK = 500
# ContactFacts fields as columns of `contacts`, all NOT NULL (engaged_at 0: never), so
# that every condition and its negation is a range of the contacts_facts index.
# `suppressed` is the suppression list, given as JSON (:suppressed).
FACT_COLUMNS = {"unreachable": "unreachable", "engaged_at": "engaged_at",
                "delivered": "delivered"}
SUPPRESSED = "number IN (SELECT value FROM json_each(:suppressed))"
NEGATED = {">=": "<", "<": ">="}
# A search is a prefix of the number: a range of the contacts' key (':' sorts right
# after '9'), never a scan.
PREFIX = "number >= :prefix AND number < :prefix_end"
# Where a contact's engagement lies against the cutoff (domain/tier_counts.py).
ENGAGED_SQL = (f"CASE WHEN engaged_at = 0 THEN {NONE} WHEN engaged_at >= :cutoff"
               f" THEN {RECENT} ELSE {OLD} END")
COUNTERS_SQL = (
    f"SELECT 'k', unreachable, CASE WHEN engaged_day = {NEVER} THEN {NONE}"
    f" WHEN engaged_day > :cut_day THEN {RECENT} WHEN engaged_day = :cut_day"
    f" THEN {CUTOFF_DAY} ELSE {OLD} END, delivered, SUM(n) FROM contact_tiers"
    " WHERE workspace_id = :ws GROUP BY 2, 3, 4")
# The contacts of the cutoff's day engaged at or after it, per (unreachable, delivered):
# a range of contacts_facts (workspace_id, unreachable, engaged_at, delivered). The day
# is tested as the counters computed it, so no contact is in two groups.
CUTOFF_DAY_SQL = (
    f"SELECT 'c', unreachable, {RECENT}, delivered, COUNT(*) FROM contacts"
    " WHERE workspace_id = :ws AND unreachable IN (0, 1) AND engaged_at >= :cutoff"
    f" AND engaged_at < :day_end AND {DAY_SQL} = :cut_day GROUP BY 2, 4")


# The suppressed contacts: a seek of the contacts' key per listed number (the planner,
# left to itself, scans the workspace's contacts and looks each up in the list).
LISTED_SQL = (
    f"SELECT 's', unreachable, {ENGAGED_SQL}, delivered, COUNT(*)"
    " FROM json_each(:suppressed) AS listed CROSS JOIN contacts"
    " ON contacts.workspace_id = :ws AND contacts.number = listed.value GROUP BY 2, 3, 4")
# With a search: the matching contacts, at most SEARCH_COUNT_LIMIT + 1 of them read...
SEARCH_COUNT_LIMIT = 5000
MATCHING_SQL = (
    f"SELECT 'r', unreachable, {ENGAGED_SQL}, delivered, COUNT(*) FROM"
    " (SELECT unreachable, engaged_at, delivered FROM contacts WHERE workspace_id = :ws"
    f" AND {PREFIX} LIMIT :limit) GROUP BY 2, 3, 4")
# ...and whether the search matches every contact (two seeks).
COVERS_ALL_SQL = (
    "SELECT 'm', COALESCE((SELECT MIN(number) FROM contacts WHERE workspace_id = :ws)"
    " >= :prefix AND (SELECT MAX(number) FROM contacts WHERE workspace_id = :ws)"
    " < :prefix_end, 1), 0, 0, 0")


def prefix_params(search: str) -> dict[str, str]:
    return {"prefix": search, "prefix_end": search + ":"}


def condition_sql(c: Condition, params: dict[str, Any], negate: bool = False) -> str:
    """A condition (or its negation) of domain/tiers.py as SQL over `contacts`."""
    if c.fact == "suppressed":
        return f"NOT ({SUPPRESSED})" if c.value == negate else SUPPRESSED
    column = FACT_COLUMNS[c.fact]
    if c.op == "is":
        return f"{column} = {int(c.value != negate)}"
    name = f"p{len(params) + 1}"
    params[name] = c.value
    return f"{column} {NEGATED[c.op] if negate else c.op} :{name}"


def tier_sql(rule_set: Sequence[tuple[str, tuple[Condition, ...]]], tier: str,
             params: dict[str, Any]) -> str:
    """The SQL condition of one tier: its own conditions and none of an earlier tier's
    (precedence)."""
    parts: list[str] = []
    for name, conditions in rule_set:
        if name == tier:
            parts += [condition_sql(c, params) for c in conditions]
            break
        negations = [condition_sql(c, params, negate=True) for c in conditions]
        parts.append("(" + " OR ".join(negations) + ")" if len(negations) > 1
                     else negations[0])
    return " AND ".join(parts) or "1"


class InsightStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- slots: totals and heatmaps ----------------------------------------------------

    async def slot_totals(self, workspace: int, since: float, until: float) -> dict[str, int]:
        """Sums of SLOT_FIELDS over the slots in [since, until)."""
        row = await self.store.fetchone(
            f"SELECT {', '.join(f'COALESCE(SUM({f}), 0)' for f in SLOT_FIELDS)}"
            " FROM insight_slots WHERE workspace_id = ? AND slot >= ? AND slot < ?",
            (workspace, int(since // SLOT_SECONDS), int(until // SLOT_SECONDS)))
        return dict(zip(SLOT_FIELDS, row, strict=True))

    async def week_sums(self, workspace: int, spans: Sequence[tuple[int, int, int]]
                        ) -> list[tuple[int, int, tuple[int, ...]]]:
        """Per stretch of slots [first, end) of one UTC offset (domain/besttime.py
        `offset_spans`), the slots' counts summed by their place in the week: (offset,
        slot % WEEK_SLOTS, counts); one statement, at most 672 rows a stretch."""
        if not spans:
            return []
        sums = ", ".join(f"SUM({f})" for f in SLOT_FIELDS)
        parts, params = [], {"ws": workspace}
        for i, (first, end, _) in enumerate(spans):
            parts.append(f"SELECT {i}, slot % {WEEK_SLOTS}, {sums} FROM insight_slots"
                         f" WHERE workspace_id = :ws AND slot >= :first{i} AND slot < :end{i}"
                         " GROUP BY 2")
            params.update({f"first{i}": first, f"end{i}": end})
        rows = await self.store.fetchall(" UNION ALL ".join(parts), params)
        return [(spans[r[0]][2], r[1], tuple(r[2:])) for r in rows]

    # --- campaigns: trend points and comparison ----------------------------------------

    async def campaigns(self, workspace: int, since: float, limit: int
                        ) -> list[dict[str, Any]]:
        """The workspace's campaigns created since `since`, oldest first (at most
        `limit`, the newest), with their statistics as last checkpointed."""
        rows = await self.store.fetchall(
            "SELECT no, uuid, name, status, created_at, statistics FROM campaigns"
            f" WHERE workspace_id = ? AND created_at >= ? AND {NOT_CREATING}"
            " ORDER BY created_at DESC, no DESC"
            " LIMIT ?", (workspace, since, limit))
        return [{"no": r[0], "uuid": r[1], "name": r[2], "status": r[3],
                 "created_at": r[4],
                 "statistics": orjson.loads(r[5]) if r[5] else {}} for r in reversed(rows)]

    async def campaigns_by_uuid(self, workspace: int, uuids: Sequence[str]
                                ) -> dict[str, dict[str, Any]]:
        rows = await self.store.fetchall(
            "SELECT no, uuid, name, status, created_at, statistics FROM campaigns"
            f" WHERE workspace_id = ? AND {NOT_CREATING}"
            f" AND uuid IN ({','.join('?' * len(uuids))})",
            (workspace, *uuids))
        return {r[1]: {"no": r[0], "uuid": r[1], "name": r[2], "status": r[3],
                       "created_at": r[4],
                       "statistics": orjson.loads(r[5]) if r[5] else {}} for r in rows}

    async def delays(self, campaign_no: int) -> dict[tuple[int, int], int]:
        rows = await self.store.fetchall(
            "SELECT series, bucket, n FROM insight_delays WHERE campaign_no = ?",
            (campaign_no,))
        return {(r[0], r[1]): r[2] for r in rows}

    # --- contacts ------------------------------------------------------------------------

    async def contacts(self, workspace: int, *, tier: str | None, search: str | None,
                       after: str | None, limit: int, now: float, policy: TierPolicy,
                       suppressed: Sequence[str]) -> list[Contact]:
        """A page of contacts in number order (after the cursor), of one tier or all,
        whose number starts with `search` (digits: a range of the contacts' key)."""
        where = ["workspace_id = :ws"]
        params: dict[str, Any] = {"ws": workspace, "limit": limit,
                                  "suppressed": orjson.dumps(list(suppressed)).decode()}
        if tier is not None:
            where.append(tier_sql(rules(now, policy), tier, params))
        if search:
            where.append(PREFIX)
            params.update(prefix_params(search))
        if after is not None:
            where.append("number > :after")
            params["after"] = after
        rows = await self.store.fetchall(
            f"SELECT {', '.join(CONTACT_COLUMNS)} FROM contacts WHERE {' AND '.join(where)}"
            " ORDER BY number LIMIT :limit", params)
        return [contact_of(r) for r in rows]

    async def tier_counts(self, workspace: int, now: float, policy: TierPolicy,
                          suppressed: Sequence[str], search: str | None = None
                          ) -> dict[str, int] | None:
        """Contacts per tier (of those whose number starts with `search`; `suppressed`
        in number order), read in ONE statement, so from one snapshot: a recount
        committing meanwhile is in all of it or in none.

        The workspace's tier counters (store/tier_counts.py, a few thousand rows at
        most) and the contacts engaged on the cutoff's own day (a range of the
        contacts_facts index: one day of engagement), named by domain/tier_counts.py;
        the suppressed contacts (a seek each) are taken out of the tier they would have
        unlisted and counted as opted_out. With a search, the matching contacts
        themselves, grouped (a range of the contacts' key), when at most
        SEARCH_COUNT_LIMIT match; the counters when the search matches every contact of
        the workspace (a country code); None (not counted) otherwise."""
        cutoff = cutoff_of(now, policy)
        cut_day = engaged_day(cutoff)
        listed = suppressed[bisect_left(suppressed, search):
                            bisect_left(suppressed, search + ":")] if search else suppressed
        params: dict[str, Any] = {
            "ws": workspace, "cutoff": cutoff, "cut_day": cut_day,
            "day_end": (cut_day + 1) * DAY, "limit": SEARCH_COUNT_LIMIT + 1,
            "suppressed": orjson.dumps(list(listed)).decode()}
        parts = [COUNTERS_SQL, CUTOFF_DAY_SQL, LISTED_SQL]
        if search:
            params.update(prefix_params(search))
            parts += [MATCHING_SQL, COVERS_ALL_SQL]
        rows = await self.store.fetchall(" UNION ALL ".join(parts), params)
        by_part: dict[str, list[tuple[Any, ...]]] = {p: [] for p in "kcsrm"}
        for part, *rest in rows:
            by_part[part].append(tuple(rest))
        matching = [(Group(bool(u), e, d), n) for u, e, d, n in by_part["r"]]
        if search and sum(n for _, n in matching) <= SEARCH_COUNT_LIMIT:
            groups = matching
        elif not search or by_part["m"][0][0]:
            groups = split_cutoff_day(
                by_part["k"], {(bool(u), d): n for u, _, d, n in by_part["c"]})
        else:
            return None  # too many to count one by one, and not all of them
        counts = tally(groups, now, policy)
        unlisted = tally([(Group(bool(u), e, d), n) for u, e, d, n in by_part["s"]], now,
                         policy)
        for tier, n in unlisted.items():
            counts[tier] -= n
            counts["opted_out"] += n
        return counts

    async def facts(self, workspace: int, numbers: Sequence[str], suppressed: frozenset[str]
                    ) -> list[ContactFacts]:
        """The tier facts of each number (E.164 digits), in order; unknown numbers have
        none (tier new, unless suppressed)."""
        found: dict[str, Contact] = {}
        unique = list(dict.fromkeys(numbers))
        for start, end in spans(len(unique), CHUNK):  # few statement sizes: spans.py
            chunk = unique[start:end]
            rows = await self.store.fetchall(
                f"SELECT {', '.join(CONTACT_COLUMNS)} FROM contacts WHERE workspace_id = ?"
                f" AND number IN ({','.join('?' * len(chunk))})", (workspace, *chunk))
            found.update((r[0], contact_of(r)) for r in rows)
        return [facts_of(found.get(n), n in suppressed) for n in numbers]


def facts_of(contact: Contact | None, suppressed: bool) -> ContactFacts:
    if contact is None:
        return ContactFacts(suppressed=suppressed)
    return ContactFacts(suppressed, contact.unreachable, contact.engaged_at,
                        contact.delivered)


class Recounter:
    """Keeps the aggregates up with the rows (store/aggregates.py): recounts the rows
    every write marks, BATCH per transaction, and then the backfill of the rows a
    database held before the aggregates existed. It runs beside ingest on the loop;
    each transaction is short, so webhooks' commits go in between, and the marks and the
    backfill's cursor are durable, so a crash or a restart loses nothing.

    Freshness: it is woken after every checkpoint (and looks every POLL seconds), so the
    analytics follow the rows by about a checkpoint interval.

    Ingest first: while webhooks are being committed or a checkpoint written (`busy`),
    it works in small transactions and rests SHARE_REST times as long as each took, so
    it takes about a tenth of the writer's time and of the interpreter. While the
    webhooks come as fast as the daemon can take them (`flooded`: requests queue and
    share commits) it rests FLOOD_SHARE_REST times as long, about a fiftieth: there
    every moment it takes is one the webhooks lose, and its backlog is recounted
    anyway once the flood eases. Every webhook commit waits while a transaction of it
    runs, and a recount costs far more per row than ingesting a status
    (docs/BENCHMARKS.md): at full speed it took 38 % of the daemon's time under load
    and the webhooks' rate with it. The marks wait on disk meanwhile; under a sustained
    flood the analytics lag, and BUSY_FOR (1 s) after its last commit the recount runs
    at full speed until nothing waits (the responses say "counting" until then)."""

    BATCH = 1000
    BUSY_BATCH = 100
    SHARE_REST = 9.0
    FLOOD_SHARE_REST = 49.0
    POLL = 1.0

    def __init__(self, store: Store, busy: Callable[[], bool] = lambda: False,
                 flooded: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.busy = busy
        self.flooded = flooded
        self.backfilled = False
        self.rows = 0  # rows recounted since start (marked and backfilled)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="insights-recounter")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def counting(self) -> bool:
        """Rows wait to be counted: the figures leave them out for now."""
        if not self.backfilled:
            return True
        row = await self.store.fetchone(WAITING_SQL)  # marked rows, or new credits
        return bool(row and row[0])

    async def settle(self) -> None:
        """Recount everything waiting now (tests and the benchmark wait for this)."""
        while await self._pass():
            pass

    async def _pass(self, batch: int | None = None) -> bool:
        """One transaction of work; False when there was none."""
        limit = batch or self.BATCH
        async with self._lock:
            done = 0
            backfill_left: int | None = 0

            def step(conn: sqlite3.Connection) -> None:  # on the writer thread
                nonlocal done, backfill_left
                done = recount_marked(conn, limit)
                if not done and not self.backfilled:
                    backfill_left = backfill(conn, limit)

            # derived: a step lost in a power cut leaves its rows marked for the next
            await self.store.transaction([(step, (), False)], derived=True)
            if backfill_left is None:
                self.backfilled = True
            self.rows += done + (backfill_left or 0)
            return bool(done or backfill_left)

    def _rest(self, busy: bool) -> float:
        """How many times a pass's duration to rest after it."""
        if not busy:
            return 0.0
        return self.FLOOD_SHARE_REST if self.flooded() else self.SHARE_REST

    async def _run(self) -> None:
        while True:
            try:
                while True:
                    busy = self.busy()
                    started = time.perf_counter()
                    if not await self._pass(self.BUSY_BATCH if busy else None):
                        break
                    # let the journal's commits in between; while they flow, rest longer
                    await asyncio.sleep((time.perf_counter() - started) * self._rest(busy))
            except StoreUnavailable:  # storage failing: the marks and cursor wait
                await asyncio.sleep(1.0)
                continue
            except Exception:  # a defect: rolled back; say so, and try again later
                log.exception("insights.recount_failed", rows=self.rows)
                await asyncio.sleep(5.0)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.POLL)
