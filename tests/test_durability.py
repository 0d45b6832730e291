"""SPEC 3.1: a 2xx means durable. The daemon runs as a real process and is SIGKILLed
while webhooks are in flight; after a restart every acknowledged event is counted
exactly once, and a request that got no answer is applied whole or not at all."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.proc import DaemonProcess, write_config

PAIRS = 400  # each request acknowledges two messages at once
SENDERS = 8


def api(url: str, method: str = "GET", doc: object = None) -> dict:
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def hammer(url: str, daemon: DaemonProcess, kill_after: int) -> tuple[set[int], set[int]]:
    """Send PAIRS requests from SENDERS tasks; SIGKILL after `kill_after` 2xx answers."""
    acked: set[int] = set()
    unanswered: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for pair in range(PAIRS):
        queue.put_nowait(pair)
    killed = asyncio.Event()

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            pair = queue.get_nowait()
            body = [{"event": "message_status_updated",
                     "data": {"message_id": f"K{2 * pair + k}", "ack_level": 2 + k}}
                    for k in (0, 1)]
            try:
                async with session.post(f"{url}/webhooks/webjs", json=body) as resp:
                    if resp.status == 200:
                        acked.add(pair)
                    else:
                        unanswered.add(pair)
            except (TimeoutError, aiohttp.ClientError):
                unanswered.add(pair)
            if len(acked) >= kill_after and not killed.is_set():
                killed.set()
                daemon.kill()  # while the other senders' requests are in flight

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    return acked, unanswered


@pytest.mark.parametrize("checkpoint_interval", [3600.0, 0.05],
                         ids=["journal-only", "frequent-checkpoints"])
async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, checkpoint_interval: float):
    config = write_config(tmp_path, **{"store.checkpoint_interval": checkpoint_interval})
    first = DaemonProcess(config)
    campaign = api(f"{first.url}/api/campaigns", "POST", {"workspace_id": 1, "name": "crash"})
    uuid = campaign["campaign"]["uuid"]
    api(f"{first.url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
        {"recipient": f"62{i:06d}", "message_id": f"K{i}"} for i in range(2 * PAIRS)]})
    acked, unanswered = await hammer(first.url, first, kill_after=PAIRS // 2)
    assert len(acked) >= PAIRS // 2
    assert unanswered, "the kill must land while requests are still being sent"

    second = DaemonProcess(config)
    try:
        rows: dict[str, str] = {}
        cursor = None
        while True:
            query = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = api(f"{second.url}/api/campaigns/{uuid}/messages{query}")
            rows.update({r["message_id"]: r["status"] for r in page["messages"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        applied = 0
        for pair in range(PAIRS):
            states = (rows[f"K{2 * pair}"], rows[f"K{2 * pair + 1}"])
            if pair in acked:
                assert states == ("delivered", "read"), (pair, states)
            else:  # never half-applied
                assert states in (("delivered", "read"), ("pending", "pending")), (pair, states)
            applied += states == ("delivered", "read")
        stats = api(f"{second.url}/api/campaigns/{uuid}")["campaign"]["statistics"]
        assert stats["total_delivered_count"] == 2 * applied  # counted exactly once
        assert stats["total_read_count"] == applied
        assert stats["total_message_count"] == 2 * PAIRS
    finally:
        assert second.terminate() == 0
