"""Reads of the analytics aggregates (SPEC 8) for the workspace routes (web/insights.py).

Every query reads the aggregate tables store/aggregates.py keeps (a few thousand rows
per workspace at most, or one page of contacts), never the messages, so each answers in
milliseconds whatever the number of messages. The tier filter is domain/tiers.py's
rules rendered as SQL here (`tier_sql`), the same conditions `tier_of` evaluates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from domain.contacts import Contact
from domain.insights import SLOT_FIELDS, SLOT_SECONDS
from domain.tiers import TIERS, Condition, ContactFacts, TierPolicy, rules
from store.aggregates import CONTACT_COLUMNS, contact_of
from store.db import Store

CHUNK = 500
# ContactFacts fields as columns of `contacts` (suppressed: the list is given as JSON).
FACT_COLUMNS = {"unreachable": "unreachable", "engaged_at": "engaged_at",
                "delivered": "delivered"}


def condition_sql(c: Condition, params: list[Any]) -> str:
    if c.fact == "suppressed":
        sql = "number IN (SELECT value FROM json_each(:suppressed))"
        return sql if c.value else f"NOT ({sql})"
    column = FACT_COLUMNS[c.fact]
    if c.op == "is":
        return f"{column} = {1 if c.value else 0}"
    params.append(c.value)
    return f"({column} IS NOT NULL AND {column} {c.op} :p{len(params)})"


def tier_sql(now: float, policy: TierPolicy) -> tuple[dict[str, str], dict[str, Any]]:
    """{tier: SQL condition} (a tier's own conditions and none of the earlier tiers'),
    and the parameters they use besides :suppressed."""
    params: list[Any] = []
    out: dict[str, str] = {}
    earlier: list[str] = []
    for tier, conditions in rules(now, policy):
        own = " AND ".join(condition_sql(c, params) for c in conditions) or "1"
        out[tier] = " AND ".join([f"({own})", *(f"NOT ({e})" for e in earlier)])
        earlier.append(own)
    return out, {f"p{i + 1}": v for i, v in enumerate(params)}


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
            conditions, extra = tier_sql(now, policy)
            where.append(conditions[tier])
            params.update(extra)
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
        conditions, params = tier_sql(now, policy)
        params.update(ws=workspace, suppressed=orjson.dumps(list(suppressed)).decode())
        cases = " ".join(f"WHEN {conditions[t]} THEN {i}" for i, t in enumerate(TIERS[:-1]))
        where = "workspace_id = :ws"
        if search:
            where += " AND instr(number, :search) > 0"
            params["search"] = search
        rows = await self.store.fetchall(
            f"SELECT CASE {cases} ELSE {len(TIERS) - 1} END AS tier, COUNT(*)"
            f" FROM contacts WHERE {where} GROUP BY tier", params)
        counts = dict.fromkeys(TIERS, 0)
        for index, n in rows:
            counts[TIERS[index]] = n
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
