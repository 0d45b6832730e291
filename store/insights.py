"""Reads of the analytics aggregates (SPEC 8) for the workspace routes (web/insights.py).

Every query reads the aggregate tables store/aggregates.py keeps (a few thousand rows
per workspace at most, or one page of contacts), never the messages, so each answers in
milliseconds whatever the number of messages. The tier filter is domain/tiers.py's
rules rendered as SQL here (`tier_sql`), the same conditions `tier_of` evaluates.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog

from core.aio import cancel_and_wait
from domain.contacts import Contact
from domain.insights import SLOT_FIELDS, SLOT_SECONDS
from domain.tiers import (
    TIERS,
    Condition,
    ContactFacts,
    TierPolicy,
    holds,
    rules,
    tier_from,
)
from store.aggregates import CONTACT_COLUMNS, backfill, contact_of, recount_marked
from store.db import Store, StoreUnavailable

log = structlog.get_logger(__name__)

CHUNK = 500
# ContactFacts fields as columns of `contacts`, all NOT NULL (engaged_at 0: never), so
# that every condition and its negation is a range of the contacts_facts index.
# `suppressed` is the suppression list, given as JSON (:suppressed).
FACT_COLUMNS = {"unreachable": "unreachable", "engaged_at": "engaged_at",
                "delivered": "delivered"}
SUPPRESSED = "number IN (SELECT value FROM json_each(:suppressed))"
NEGATED = {">=": "<", "<": ">="}


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
             params: dict[str, Any], skip: str | None = None) -> str:
    """The SQL condition of one tier: its own conditions and none of an earlier tier's
    (precedence). `skip`: a fact taken as false everywhere (counting without the list)."""
    parts: list[str] = []
    for name, conditions in rule_set:
        if any(c.fact == skip and c.op == "is" and c.value for c in conditions):
            if name == tier:
                return "0"  # that tier cannot hold
            continue  # nothing of it to exclude
        kept = [c for c in conditions if c.fact != skip]
        if name == tier:
            parts += [condition_sql(c, params) for c in kept]
            break
        negations = [condition_sql(c, params, negate=True) for c in kept]
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

    async def slots(self, workspace: int, since: float, until: float
                    ) -> list[tuple[int, tuple[int, ...]]]:
        rows = await self.store.fetchall(
            f"SELECT slot, {', '.join(SLOT_FIELDS)} FROM insight_slots"
            " WHERE workspace_id = ? AND slot >= ? AND slot < ?",
            (workspace, int(since // SLOT_SECONDS), int(until // SLOT_SECONDS)))
        return [(r[0], tuple(r[1:])) for r in rows]

    # --- campaigns: trend points and comparison ----------------------------------------

    async def campaigns(self, workspace: int, since: float, limit: int
                        ) -> list[dict[str, Any]]:
        """The workspace's campaigns created since `since`, oldest first (at most
        `limit`, the newest), with their statistics as last checkpointed."""
        rows = await self.store.fetchall(
            "SELECT no, uuid, name, status, created_at, statistics FROM campaigns"
            " WHERE workspace_id = ? AND created_at >= ? ORDER BY created_at DESC, no DESC"
            " LIMIT ?", (workspace, since, limit))
        return [{"no": r[0], "uuid": r[1], "name": r[2], "status": r[3],
                 "created_at": r[4],
                 "statistics": orjson.loads(r[5]) if r[5] else {}} for r in reversed(rows)]

    async def campaigns_by_uuid(self, workspace: int, uuids: Sequence[str]
                                ) -> dict[str, dict[str, Any]]:
        rows = await self.store.fetchall(
            "SELECT no, uuid, name, status, created_at, statistics FROM campaigns"
            f" WHERE workspace_id = ? AND uuid IN ({','.join('?' * len(uuids))})",
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
        whose number contains `search` (digits)."""
        where = ["workspace_id = :ws"]
        params: dict[str, Any] = {"ws": workspace, "limit": limit,
                                  "suppressed": orjson.dumps(list(suppressed)).decode()}
        if tier is not None:
            where.append(tier_sql(rules(now, policy), tier, params))
        if search:
            where.append("instr(number, :search) > 0")
            params["search"] = search
        if after is not None:
            where.append("number > :after")
            params["after"] = after
        rows = await self.store.fetchall(
            f"SELECT {', '.join(CONTACT_COLUMNS)} FROM contacts WHERE {' AND '.join(where)}"
            " ORDER BY number LIMIT :limit", params)
        return [contact_of(r) for r in rows]

    async def tier_counts(self, workspace: int, now: float, policy: TierPolicy,
                          suppressed: Sequence[str], search: str | None = None
                          ) -> dict[str, int]:
        """Contacts per tier (of those whose number contains `search`).

        Without the suppression list each tier is one range count of the contacts_facts
        index (its conditions and the earlier tiers' negations); the suppressed contacts
        are then grouped by the conditions they meet (an index seek each), each group
        named by domain/tiers.py as if unlisted, and moved to opted_out. With a search,
        the matching contacts' facts are classified in Python instead (a search matches
        few)."""
        rule_set = rules(now, policy)
        counts = dict.fromkeys(TIERS, 0)
        params: dict[str, Any] = {"ws": workspace,
                                  "suppressed": orjson.dumps(list(suppressed)).decode()}
        facts = "unreachable, engaged_at, delivered"
        if search:
            params["search"] = search
            rows = await self.store.fetchall(
                f"SELECT {facts}, {SUPPRESSED} FROM contacts WHERE workspace_id = :ws"
                " AND instr(number, :search) > 0", params)
            for r in rows:
                facts_of_row = ContactFacts(bool(r[3]), bool(r[0]), r[1] or None, r[2])
                counts[tier_from(rule_set, lambda c, f=facts_of_row: holds(c, f))] += 1
            return counts
        total = await self.store.fetchone(
            "SELECT COUNT(*) FROM contacts WHERE workspace_id = :ws", params)
        rest = int(total[0])
        for tier, conditions in rule_set[:-1]:
            if any(c.fact == "suppressed" for c in conditions):
                continue  # the listed ones are counted below
            where = tier_sql(rule_set, tier, params, skip="suppressed")
            row = await self.store.fetchone(
                f"SELECT COUNT(*) FROM contacts WHERE workspace_id = :ws AND {where}", params)
            counts[tier] = int(row[0])
            rest -= counts[tier]
        counts[rule_set[-1][0]] = rest
        # The listed ones: grouped by the (non-list) conditions they meet, each group named
        # by the rules as if unlisted (so it is taken out of that tier) and moved.
        conditions = list(dict.fromkeys(c for _, cs in rule_set for c in cs
                                        if c.fact != "suppressed"))
        exprs = [condition_sql(c, params) for c in conditions]
        groups = await self.store.fetchall(
            f"SELECT {', '.join(exprs)}, COUNT(*) FROM contacts WHERE workspace_id = :ws"
            f" AND {SUPPRESSED} GROUP BY {', '.join(str(i + 1) for i in range(len(exprs)))}",
            params)
        for g in groups:
            truth = dict(zip(conditions, g[:-1], strict=True))
            unlisted = tier_from(rule_set, lambda c, t=truth: c.fact != "suppressed"
                                 and bool(t[c]))
            counts[unlisted] -= g[-1]
            counts["opted_out"] += g[-1]
        return counts

    async def facts(self, workspace: int, numbers: Sequence[str], suppressed: frozenset[str]
                    ) -> list[ContactFacts]:
        """The tier facts of each number (E.164 digits), in order; unknown numbers have
        none (tier new, unless suppressed)."""
        found: dict[str, Contact] = {}
        unique = list(dict.fromkeys(numbers))
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start:start + CHUNK]
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
    it takes about a tenth of the writer's time and of the interpreter. Every webhook
    commit waits while a transaction of it runs, and a recount costs far more per row
    than ingesting a status (docs/BENCHMARKS.md): at full speed it took 38 % of the
    daemon's time under load and the webhooks' rate with it. The marks wait on disk
    meanwhile; under a sustained flood the analytics lag, and they catch up at full
    speed once it eases (the responses say "counting" until then)."""

    BATCH = 1000
    BUSY_BATCH = 100
    SHARE_REST = 9.0
    POLL = 1.0

    def __init__(self, store: Store, busy: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.busy = busy
        self.backfilled = False
        self.rows = 0  # rows recounted since start (marked and backfilled)
        self.version = 0  # moves whenever the aggregates may have: a key for caches
        self.cache: dict[tuple[Any, ...], Any] = {}  # answers valid for one version
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
        row = await self.store.fetchone(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE ag_dirty = 1)")
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
            if done or backfill_left:
                self.version += 1
            return bool(done or backfill_left)

    async def _run(self) -> None:
        while True:
            try:
                while True:
                    busy = self.busy()
                    started = time.perf_counter()
                    if not await self._pass(self.BUSY_BATCH if busy else None):
                        break
                    # let the journal's commits in between; while they flow, rest longer
                    await asyncio.sleep(
                        (time.perf_counter() - started) * self.SHARE_REST if busy else 0)
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
