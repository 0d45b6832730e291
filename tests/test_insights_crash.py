"""SPEC 8 / 5: the analytics aggregates survive kill -9 exactly. A real daemon process
is SIGKILLed with reads, duplicate deliveries and replies still only in its journal (a
checkpoint had stored the deliveries before); after the restart the journal is
replayed onto rows that already reflect part of it, and every aggregate counts each
message once: the totals, the heatmap and each number's history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import eventually, webjs_ack
from tests.proc import write_config
from tests.reliability_helpers import call, kill, start, terminate

MESSAGES = 40
READ = range(0, 20)
REPLIED = range(30, 35)


def number(i: int) -> str:
    return f"62813{i:08d}"


def reply(i: int) -> dict[str, Any]:
    return {"event": "message_received", "data": {"workspace_id": 3, "message": {
        "id": f"false_{number(i)}@c.us_3EBCRASH{i:04d}", "from": f"{number(i)}@c.us",
        "body": "ok", "timestamp": int(time.time()) + 1, "from_me": False,
        "chat_type": "private", "type": "chat"}}}


async def figures(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    # The rows API takes a checkpoint first: what the journal held is written then, and
    # recounted a moment later (the answers say "counting" until it is).
    status, _ = await call(session, "GET", f"{base}/api/campaigns/crash/messages?limit=1")
    assert status == 200

    async def settled() -> Any:
        status, trends = await call(session, "GET",
                                    f"{base}/api/workspaces/3/insights/trends")
        assert status == 200, trends
        return not trends["counting"] and trends

    trends = await eventually(settled, timeout=30)
    status, best = await call(session, "GET", f"{base}/api/workspaces/3/insights/best-time")
    status, listed = await call(session, "GET", f"{base}/api/workspaces/3/contacts?limit=100")
    return {"week": trends["totals"]["7"]["current"],
            "sent": sum(c["sent"] for c in best["cells"]),
            "reads": sum(c["reads"] for c in best["read_times"]),
            "contacts": {c["number"]: (c["received"], c["delivered"], c["read"],
                                       c["replied"]) for c in listed["contacts"]}}


async def test_kill_9_with_the_journal_unwritten_counts_every_message_once(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"store.checkpoint_interval": 3600.0})
    daemon = await start(config)
    try:
        async with aiohttp.ClientSession() as session:
            base = daemon.url
            status, _ = await call(session, "POST", f"{base}/api/campaigns", json={
                "workspace_id": 3, "name": "Crash", "uuid": "crash"})
            assert status == 201
            status, _ = await call(session, "POST", f"{base}/api/campaigns/crash/messages",
                                   json={"messages": [
                                       {"recipient": number(i), "message_id": f"CRASH{i:04d}"}
                                       for i in range(MESSAGES)]})
            assert status == 201
            for i in range(MESSAGES):
                status, _ = await call(session, "POST", f"{base}/webhooks/webjs",
                                       json=webjs_ack(f"CRASH{i:04d}", 2))
                assert status == 200
            stored = await figures(session, base)  # a checkpoint: the deliveries stored
            assert stored["week"]["delivered"] == MESSAGES
            # Only journaled from here: reads, every delivery again, replies.
            for i in READ:
                status, _ = await call(session, "POST", f"{base}/webhooks/webjs",
                                       json=webjs_ack(f"CRASH{i:04d}", 3))
                assert status == 200
            for i in range(MESSAGES):
                status, _ = await call(session, "POST", f"{base}/webhooks/webjs",
                                       json=webjs_ack(f"CRASH{i:04d}", 2))
                assert status == 200
            for i in REPLIED:
                status, _ = await call(session, "POST", f"{base}/webhooks/webjs",
                                       json=reply(i))
                assert status == 200
        await kill(daemon)
        daemon = await start(config)
        async with aiohttp.ClientSession() as session:
            after = await figures(session, daemon.url)
            week = after["week"]
            assert (week["sent"], week["delivered"], week["read"], week["replied"]) == (
                MESSAGES, MESSAGES, len(READ), len(REPLIED))
            assert (after["sent"], after["reads"]) == (MESSAGES, len(READ))
            assert after["contacts"] == {
                number(i): (1, 1, int(i in READ), int(i in REPLIED)) for i in range(MESSAGES)}
        assert await terminate(daemon) == 0
        daemon = await start(config)  # a clean restart replays nothing new
        async with aiohttp.ClientSession() as session:
            assert await figures(session, daemon.url) == after
    finally:
        await kill(daemon)
