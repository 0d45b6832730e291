"""The analytics over months of history, on hand-computed numbers (SPEC 8).

A daemon cannot be made to send in March: the history is written as a database of
release 0.1 would hold it (a copy of tests/fixtures/upgrade/0.1/clean with campaigns and
message rows added at chosen times), and the daemon opened on it counts it with its
backfill, exactly as an upgraded installation does. Then the routes answer: a heatmap
cell with its shrunk rate, the sends around both summer-time changes in the right local
hour (Europe/Berlin, and Asia/Jakarta, the default zone), the advice, a trend point and
its period change, and two campaigns compared."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Daemon
from web import insights

UPGRADE = Path(__file__).resolve().parent / "fixtures" / "upgrade" / "0.1" / "clean"
DAY = 86400.0


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@dataclass
class Sent:
    """A message sent at `at`: delivered / read that many seconds later, or failed."""

    at: float
    delivered: float | None = 5.0
    read: float | None = None
    failed: str | None = None  # the reason text, e.g. "131026: Message undeliverable"


@dataclass
class Campaign:
    uuid: str
    workspace: int
    created: float
    messages: list[Sent]

    def statistics(self) -> dict[str, Any]:
        failed = sum(1 for m in self.messages if m.failed)
        delivered = sum(1 for m in self.messages if not m.failed and m.delivered is not None)
        read = sum(1 for m in self.messages if not m.failed and m.read is not None)
        return {"total_message_count": len(self.messages),
                "total_sent_count": len(self.messages) - failed,
                "total_delivered_count": delivered, "total_read_count": read,
                "total_failed_count": failed, "total_queued_count": 0}


def history(tmp_path: Path, campaigns: list[Campaign]) -> Path:
    """A 0.1 database with these campaigns added (each row to its own number)."""
    folder = tmp_path / "history"
    shutil.copytree(UPGRADE, folder)
    db = folder / "campaignd.sqlite3"
    conn = sqlite3.connect(db)
    with conn:
        for no, c in enumerate(campaigns, start=100):
            conn.execute("INSERT INTO campaigns (no, uuid, workspace_id, name, status,"
                         " created_at, updated_at, statistics) VALUES (?,?,?,?,?,?,?,?)",
                         (no, c.uuid, c.workspace, c.uuid.title(), "pending", c.created,
                          c.created, orjson.dumps(c.statistics()).decode()))
            for row, m in enumerate(c.messages):
                level = 1 if m.failed else (4 if m.read is not None else
                                            3 if m.delivered is not None else 1)
                cls = 6 if m.failed else level
                at = m.at
                conn.execute(
                    "INSERT INTO messages (campaign_no, row, recipient, level, failed, cls,"
                    " reason, ts_queued, ts_pending, ts_sent, ts_delivered, ts_read,"
                    " ts_failed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (no, row, f"628{no:03d}{row:07d}", level, int(bool(m.failed)), cls,
                     m.failed, at, at, at if level >= 2 else None,
                     at + m.delivered if level >= 3 else None,
                     at + m.read if level >= 4 and m.read is not None else None,
                     at + 1 if m.failed else None))
    conn.close()
    return db


async def counted(d: Daemon) -> Daemon:
    """The daemon once its backfill has counted the rows the database held."""
    await asyncio.wait_for(d.runtime.recounter.settle(), 30)
    assert d.runtime.recounter.backfilled
    return d


@pytest.fixture(autouse=True)
def _real_clock() -> Any:
    yield
    insights.clock = time.time


def heat_campaigns() -> list[Campaign]:
    tuesday = utc("2026-06-16T17:10:00")  # Tuesday 19:10 in Berlin (CEST)
    wednesday = utc("2026-06-17T08:05:00")  # Wednesday 10:05 in Berlin
    heat = [Sent(tuesday, read=300.0 if i < 30 else None) for i in range(40)]
    heat += [Sent(wednesday, read=60.0 if i < 12 else None) for i in range(60)]
    # Around both summer-time changes in Berlin, each delivered and read:
    dst = [Sent(utc(t), read=10.0) for t in (
        "2026-03-29T00:30:00",  # 01:30 CET, just before clocks go forward
        "2026-03-29T01:30:00",  # 03:30 CEST: 02:30 does not exist that night
        "2026-10-25T00:30:00",  # 02:30 CEST...
        "2026-10-25T01:30:00")]  # ...and 02:30 CET, an hour later: the same local hour
    return [Campaign("heat", 7, utc("2026-06-01T00:00:00"), heat),
            Campaign("dst", 7, utc("2026-03-01T00:00:00"), dst)]


async def best_time(d: Daemon, query: str = "") -> dict[str, Any]:
    status, body = await d.request("GET", f"/api/workspaces/7/insights/best-time{query}")
    assert status == 200, body
    return body


def cell(body: dict[str, Any], weekday: int, hour: int, key: str = "cells") -> dict[str, Any]:
    found = body[key][weekday * 24 + hour]
    assert (found["weekday"], found["hour"]) == (weekday, hour)
    return found


async def test_best_time_cells_shrinkage_and_summer_time(daemon_factory: Any,
                                                         tmp_path: Path) -> None:
    db = history(tmp_path, heat_campaigns())
    d = await counted(await daemon_factory(**{"store.path": str(db),
                                              "analytics.advice_min_messages": 30}))
    insights.clock = lambda: utc("2026-11-20T00:00:00")
    body = await best_time(d, "?days=365&timezone=Europe/Berlin")
    assert body["timezone"] == "Europe/Berlin" and body["prior_strength"] == 50.0
    average = 46 / 104  # 30 + 12 + 4 read of 40 + 60 + 4 delivered
    assert body["average"]["read_rate"] == round(average * 100, 1) == 44.2
    tuesday = cell(body, 1, 19)
    assert (tuesday["sent"], tuesday["delivered"], tuesday["read"]) == (40, 40, 30)
    assert tuesday["read_rate"] == 75.0
    assert tuesday["read_rate_shrunk"] == round((30 + 50 * average) / (40 + 50) * 100, 1)
    assert tuesday["read_rate_shrunk"] == 57.9
    assert tuesday["enough"] is True  # 40 >= analytics.min_cell_messages (30)
    assert cell(body, 2, 10)["read_rate_shrunk"] == round(
        (12 + 50 * average) / 110 * 100, 1) == 31.0
    # Sunday around the changes: 01 h once (March, CET), 02 h twice (October, CEST and
    # CET), 03 h once (March, CEST); nothing lands in March's missing 02 h.
    assert [cell(body, 6, h)["sent"] for h in range(5)] == [0, 1, 2, 1, 0]
    # When people read: the Tuesday reads came 5 minutes after sending, still 19 h.
    assert cell(body, 1, 19, "read_times")["reads"] == 30
    assert sum(c["reads"] for c in body["read_times"]) == 46
    assert body["advice"]["text"] == "Tue 19-21 h: read 57.9 % vs 44.2 % average, n = 40"
    # In Jakarta (UTC+7 all year, the default analytics.timezone) the same sends are
    # Wednesday just after midnight, and the four night sends Sunday 07 h and 08 h.
    jakarta = await best_time(d, "?days=365")
    assert jakarta["timezone"] == "Asia/Jakarta"
    assert cell(jakarta, 2, 0)["sent"] == 40
    assert [cell(jakarta, 6, h)["sent"] for h in (6, 7, 8, 9)] == [0, 2, 2, 0]
    assert jakarta["advice"]["text"].startswith("Wed 00-02 h: read 57.9 %")
    # The default window (analytics.best_time_days = 90) holds only October's two sends.
    assert (await best_time(d))["average"]["delivered"] == 2
    status, err = await d.request("GET", "/api/workspaces/7/insights/best-time"
                                         "?timezone=Mars/Olympus")
    assert status == 400 and err["error"]["field"] == "timezone"


async def test_the_configured_time_zone_and_no_advice_without_enough_data(
        daemon_factory: Any, tmp_path: Path) -> None:
    db = history(tmp_path, heat_campaigns())
    d = await counted(await daemon_factory(**{"store.path": str(db),
                                              "analytics.timezone": "America/New_York"}))
    insights.clock = lambda: utc("2026-11-20T00:00:00")
    body = await best_time(d, "?days=365")
    assert body["timezone"] == "America/New_York"
    assert cell(body, 1, 13)["sent"] == 40  # 17:10 UTC is 13:10 EDT
    assert body["advice"] is None  # 40 messages < analytics.advice_min_messages (200)


def trend_campaigns(now: float) -> list[Campaign]:
    bad = "131026: Message undeliverable"
    past = [Sent(now - 10 * DAY, read=30.0 if i < 9 else None) for i in range(18)]
    past += [Sent(now - 10 * DAY, delivered=None, failed=bad) for _ in range(2)]
    # 8 delivered within 10 s, 2 after 200 s; 4 read after 50 s, 4 after 5000 s
    recent = [Sent(now - 2 * DAY, delivered=5.0 if i < 8 else 200.0,
                   read=(50.0 if i < 4 else 5000.0) if i < 8 else None) for i in range(10)]
    return [Campaign("past", 8, now - 10 * DAY, past),
            Campaign("recent", 8, now - 2 * DAY, recent)]


async def test_trend_points_period_change_and_comparison(daemon_factory: Any,
                                                         tmp_path: Path) -> None:
    now = time.time()
    db = history(tmp_path, trend_campaigns(now))
    d = await counted(await daemon_factory(**{"store.path": str(db)}))
    status, body = await d.request("GET", "/api/workspaces/8/insights/trends?days=30")
    assert status == 200, body
    points = {c["uuid"]: c for c in body["campaigns"]}
    assert [c["uuid"] for c in body["campaigns"]] == ["past", "recent"]  # oldest first
    assert points["recent"]["read_rate"] == 80.0 and points["recent"]["delivery_rate"] == 100
    assert points["past"]["failure_rate"] == 10.0 and points["past"]["read_rate"] == 50.0
    week = body["totals"]["7"]
    assert (week["current"]["sent"], week["current"]["read"]) == (10, 8)
    assert (week["previous"]["sent"], week["previous"]["failed"]) == (18, 2)
    assert week["change"]["read_rate"] == 30.0  # 80 % now, 50 % the week before
    assert week["change"]["failure_rate"] == -10.0
    assert week["change"]["sent"] == -44.4  # (10 - 18) / 18
    month = body["totals"]["30"]
    assert month["current"]["sent"] == 28 and month["change"]["sent"] is None
    status, body = await d.request("GET", "/api/workspaces/8/insights/trends?days=5")
    assert [c["uuid"] for c in body["campaigns"]] == ["recent"]

    status, body = await d.request("GET", "/api/workspaces/8/insights/compare"
                                          "?campaigns=recent,past")
    assert status == 200, body
    assert [c["uuid"] for c in body["campaigns"]] == ["recent", "past"]
    curve = {p["after"]: p for p in body["campaigns"][0]["curve"]["points"]}
    assert (curve[10]["delivered"], curve[10]["read"]) == (80.0, 0.0)
    assert curve[60]["read"] == 40.0  # 4 of 10 delivered read within a minute
    assert curve[300]["delivered"] == 100.0
    assert curve[3600]["read"] == 40.0 and curve[7200]["read"] == 80.0
    assert curve[None] == {"after": None, "delivered": 100.0, "read": 80.0, "replied": 0.0}
    past = {p["after"]: p for p in body["campaigns"][1]["curve"]["points"]}
    assert past[10]["delivered"] == 100.0 and past[None]["read"] == 50.0
    for query, code in (("?campaigns=recent", 400), ("?campaigns=a,b,c,d,e,f", 400),
                        ("?campaigns=recent,nope", 404)):
        status, err = await d.request("GET", f"/api/workspaces/8/insights/compare{query}")
        assert status == code and err["error"]["field"] == "campaigns", query
