"""SPEC 6.1 / 3.1: a 2xx on an inbound webhook means durable. A real daemon process is
SIGKILLed while replies, button taps and stops are in flight (and while their
attribution is still looking numbers up); after a restart every acknowledged one is
credited exactly once, and a request that got no answer counts whole or not at all.
The acknowledged ones are then sent again, as a provider retries: nothing moves.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.proc import write_config
from tests.reliability_helpers import all_rows, call, kill, start, statistics, terminate

REPLIES = 240
SENDERS = 8


def number(i: int) -> str:
    return f"62812{i:08d}"


def reply(i: int, at: float) -> tuple[str, dict[str, Any]]:
    """Request i: a plain reply (window), a quoted button tap (explicit) or a STOP, on
    rotating sources; each answers message i alone."""
    kind = i % 3
    if i % 2 == 0:  # Cloud API
        message: dict[str, Any] = {"from": number(i), "id": f"wamid.IN{i:06d}",
                                   "timestamp": str(int(at))}
        if kind == 0:
            message.update(type="text", text={"body": "berapa?"})
        elif kind == 1:
            message.update(type="button", button={"payload": "yes", "text": "Yes"},
                           context={"from": "15550783881", "id": f"wamid.OUT{i:06d}"})
        else:
            message.update(type="text", text={"body": "STOP"})
        return "cloud", {"object": "whatsapp_business_account", "entry": [{"id": "1",
                         "changes": [{"field": "messages", "value": {
                             "messaging_product": "whatsapp", "messages": [message]}}]}]}
    data: dict[str, Any] = {"id": f"false_{number(i)}@c.us_3EBIN{i:06d}",
                            "from": f"{number(i)}@c.us", "to": "6285100000001@c.us",
                            "timestamp": int(at), "from_me": False, "type": "chat",
                            "chat_type": "private", "has_media": False,
                            "body": {0: "halo", 1: "Yes", 2: "berhenti"}[kind]}
    if kind == 1:
        data["quoted_message_id"] = f"wamid.OUT{i:06d}"
    return "webjs", {"event": "message_received", "data": {"workspace_id": 1,
                                                          "session_id": "s", "message": data}}


def expected(i: int) -> str:
    return "stop" if i % 3 == 2 else "reply"


async def hammer(url: str, daemon: Any, kill_after: int, at: float
                 ) -> tuple[set[int], set[int]]:
    acked: set[int] = set()
    unanswered: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REPLIES):
        queue.put_nowait(i)
    killed = asyncio.Event()

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            route, doc = reply(i, at)
            try:
                async with session.post(f"{url}/webhooks/{route}", json=doc) as resp:
                    (acked if resp.status == 200 else unanswered).add(i)
            except (TimeoutError, aiohttp.ClientError):
                unanswered.add(i)
            if len(acked) >= kill_after and not killed.is_set():
                killed.set()
                await kill(daemon)  # while the other senders' requests are in flight

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    return acked, unanswered


async def engagement_of(session: aiohttp.ClientSession, base: str) -> dict[int, str]:
    rows = await all_rows(session, base, "replies")
    out = {}
    for r in rows.values():
        i = int(r["message_id"][len("wamid.OUT"):])
        if r["opted_out_at"]:
            out[i] = "stop"
        elif r["replied_at"]:
            assert r["reply_count"] == 1, r  # counted once
            out[i] = "reply"
    return out


@pytest.mark.parametrize("checkpoint_interval", [3600.0, 0.05],
                         ids=["journal-only", "frequent-checkpoints"])
async def test_sigkill_loses_no_acknowledged_reply(tmp_path: Path,
                                                   checkpoint_interval: float) -> None:
    config = write_config(tmp_path, **{"store.checkpoint_interval": checkpoint_interval})
    first = await start(config)
    async with aiohttp.ClientSession() as session:
        status, body = await call(session, "POST", f"{first.url}/api/campaigns",
                                  json={"workspace_id": 1, "name": "r", "uuid": "replies"})
        assert status == 201, body
        status, body = await call(session, "POST", f"{first.url}/api/campaigns/replies/messages",
                                  json={"messages": [{"recipient": "+" + number(i),
                                                      "message_id": f"wamid.OUT{i:06d}"}
                                                     for i in range(REPLIES)]})
        assert status == 201, body
    at = time.time() + 2  # the replies' own time: after their messages were registered
    acked, unanswered = await hammer(first.url, first, REPLIES // 2, at)
    assert len(acked) >= REPLIES // 2
    assert unanswered, "the kill must land while requests are still being sent"

    second = await start(config)
    try:
        async with aiohttp.ClientSession() as session:
            base = second.url

            async def settled() -> dict[int, str]:
                # attribution looks numbers up after the restart: wait until every
                # acknowledged reply is placed (it must be: that is the point)
                for _ in range(200):
                    seen = await engagement_of(session, base)
                    if acked <= set(seen):
                        return seen
                    await asyncio.sleep(0.05)
                return await engagement_of(session, base)

            seen = await settled()
            for i in acked:
                assert seen.get(i) == expected(i), (i, seen.get(i))
            for i in set(seen) - acked:  # not answered, yet applied: whole and correct
                assert i in unanswered and seen[i] == expected(i)
            stats = await statistics(session, base, "replies")
            replies = sum(1 for v in seen.values() if v == "reply")
            assert stats["total_replied_count"] == replies
            assert stats["total_opted_out_count"] == len(seen) - replies
            status, listed = await call(session, "GET",
                                        f"{base}/api/workspaces/1/suppressions?limit=1000")
            assert listed["total"] == len(seen) - replies
            # the provider retries what it sent: nothing moves
            for i in sorted(acked)[:60]:
                route, doc = reply(i, at)  # the same request again
                status, _ = await call(session, "POST", f"{base}/webhooks/{route}", json=doc)
                assert status == 200
            await asyncio.sleep(0.3)
            again = await statistics(session, base, "replies")
            assert (again["total_replied_count"], again["total_opted_out_count"]) == (
                stats["total_replied_count"], stats["total_opted_out_count"])
    finally:
        assert await terminate(second) == 0
