"""Meta account and template webhooks as stored (table `account_events`, migration 0005).

Written inside the webhook's request, before its 2xx (like the journal: a 2xx means
durable). Meta retries a webhook it did not see answered: the same change is stored once
(`dedupe`). They are rare (a few a day), so the number's health is folded from the
latest ones on each read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson

from domain.account import AccountEvent
from store.db import Store

COLUMNS = "field, waba_id, at, event, phone, template_id, template_name, template_language, value"
HEALTH_EVENTS = 2000


class AccountStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, events: Sequence[AccountEvent]) -> list[AccountEvent]:
        """Store the events (one transaction); return the ones not seen before."""
        keys = [e.dedupe_key for e in events]
        known = {row[0] for row in await self.store.fetchall(
            f"SELECT dedupe FROM account_events WHERE dedupe IN ({','.join('?' * len(keys))})",
            keys)} if keys else set()
        fresh = [e for e, k in zip(events, keys, strict=True) if k not in known]
        now = time.time()
        await self.store.transaction([(
            "INSERT OR IGNORE INTO account_events (dedupe, field, waba_id, at, received_at,"
            " event, phone, template_id, template_name, template_language, value)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(e.dedupe_key, e.field, e.waba_id, e.at, now, e.event, e.phone, e.template_id,
              e.template_name, e.template_language, orjson.dumps(e.value).decode())
             for e in events], True)])
        return fresh

    async def latest(self, limit: int = HEALTH_EVENTS) -> list[AccountEvent]:
        """The newest events, oldest first."""
        rows = await self.store.fetchall(
            f"SELECT {COLUMNS} FROM account_events ORDER BY at DESC, id DESC LIMIT ?", (limit,))
        return [AccountEvent(field=r[0], waba_id=r[1], at=r[2], event=r[3], phone=r[4],
                             template_id=r[5], template_name=r[6], template_language=r[7],
                             value=orjson.loads(r[8])) for r in reversed(rows)]
