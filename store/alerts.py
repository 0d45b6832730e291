"""Alerts firing, as stored (table `alert_states`, migrations 0017 and 0022).

An alert is announced everywhere once (SPEC 7.2); what is firing is kept here so that a
restart takes it back instead of announcing it again. Written after the announcement,
from the loop (actors/alerts.py), so a kill -9 between the two can announce one alert
twice but never loses one; a clean stop writes everything first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from domain.alerts import StoredAlert
from store.db import Statement, Store


class AlertStates:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def firing(self) -> list[tuple[StoredAlert, dict[str, Any] | None]]:
        """Every stored alert, with its campaign's statistics as last checkpointed (None
        when the campaign is gone or has none)."""
        rows = await self.store.fetchall(
            "SELECT a.campaign_no, a.rule, a.fingerprint, a.fired_at, a.alert, c.statistics,"
            " c.no, a.under_since FROM alert_states a"
            " LEFT JOIN campaigns c ON c.no = a.campaign_no"
            " ORDER BY a.campaign_no, a.rule")
        found = []
        for no, rule, fingerprint, fired_at, alert, statistics, known, under_since in rows:
            stats = orjson.loads(statistics) if statistics else ({} if known else None)
            found.append((StoredAlert(no, rule, fingerprint, fired_at, orjson.loads(alert),
                                      under_since), stats))
        return found

    async def write(self, changes: Mapping[tuple[int, str], StoredAlert | None]) -> None:
        """Store these alerts (None: no longer firing), in one transaction."""
        kept = [(s.campaign_no, s.rule, s.fingerprint, s.fired_at,
                 orjson.dumps(s.alert).decode(), s.under_since)
                for s in changes.values() if s is not None]
        gone = [key for key, s in changes.items() if s is None]
        statements: list[Statement] = []
        if kept:
            statements.append(("INSERT OR REPLACE INTO alert_states (campaign_no, rule,"
                               " fingerprint, fired_at, alert, under_since)"
                               " VALUES (?,?,?,?,?,?)", kept, True))
        if gone:
            statements.append(("DELETE FROM alert_states WHERE campaign_no = ? AND rule = ?",
                               gone, True))
        if statements:
            await self.store.transaction(statements)
