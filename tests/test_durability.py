"""SPEC 3.1: a 2xx means durable. The daemon runs as a real process and is SIGKILLed
while webhooks are in flight; after a restart every acknowledged event is counted
exactly once, and a request that got no answer is applied whole or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.proc import DaemonProcess, api, write_config

PAIRS = 400  # each request acknowledges two messages at once
SENDERS = 8


class Outcome:
    """What the senders saw. `in_flight` is the proof the kill landed mid-request: its
    body had been written to the daemon's socket before the SIGKILL and no answer came.
    `after_kill` were sent to a dead daemon (refused): they must never be applied."""

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.in_flight: set[int] = set()
        self.after_kill: set[int] = set()


async def hammer(url: str, daemon: DaemonProcess, kill_after: int) -> Outcome:
    """Send PAIRS requests from SENDERS tasks; SIGKILL just after a request's body has
    been written, once `kill_after` requests were answered 2xx."""
    seen = Outcome()
    body_sent: set[int] = set()  # bodies fully written before the kill
    queue: asyncio.Queue[int] = asyncio.Queue()
    for pair in range(PAIRS):
        queue.put_nowait(pair)
    killed = asyncio.Event()

    async def chunk_sent(_: object, ctx: Any, __: object) -> None:
        # Runs on this loop and the kill is synchronous, so "not killed yet" here means
        # the bytes were handed to the kernel (loopback: the daemon's socket) before the
        # SIGKILL. Killing right here, once enough were acknowledged, aims the kill at
        # a moment when this request (and usually others) is inside the daemon.
        if killed.is_set():
            return
        body_sent.add(ctx.trace_request_ctx["pair"])
        if len(seen.acked) >= kill_after:
            killed.set()
            daemon.kill()

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(chunk_sent)

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            pair = queue.get_nowait()
            body = [{"event": "message_status_updated",
                     "data": {"message_id": f"K{2 * pair + k}", "ack_level": 2 + k}}
                    for k in (0, 1)]
            answered = False
            try:
                async with session.post(f"{url}/webhooks/webjs", json=body,
                                        trace_request_ctx={"pair": pair}) as resp:
                    assert resp.status == 200, await resp.text()
                    answered = True
                    seen.acked.add(pair)
            except (TimeoutError, aiohttp.ClientError):
                pass
            if not answered:
                (seen.in_flight if pair in body_sent else seen.after_kill).add(pair)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                     trace_configs=[trace]) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    return seen


@pytest.mark.parametrize("checkpoint_interval", [3600.0, 0.05],
                         ids=["journal-only", "frequent-checkpoints"])
async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, checkpoint_interval: float):
    config = write_config(tmp_path, **{"store.checkpoint_interval": checkpoint_interval})
    first = DaemonProcess(config)
    campaign = api(f"{first.url}/api/campaigns", "POST", {"workspace_id": 1, "name": "crash"})
    uuid = campaign["campaign"]["uuid"]
    api(f"{first.url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
        {"recipient": f"62{i:06d}", "message_id": f"K{i}"} for i in range(2 * PAIRS)]})
    seen = await hammer(first.url, first, kill_after=PAIRS // 2)
    assert len(seen.acked) >= PAIRS // 2
    # Not just "some requests failed" (those sent after the kill always do): at least
    # one request had reached the daemon whole and was unanswered when it died.
    assert seen.in_flight, "the kill must land while requests are in flight"

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
        applied_pairs: set[int] = set()
        for pair in range(PAIRS):
            states = (rows[f"K{2 * pair}"], rows[f"K{2 * pair + 1}"])
            if pair in seen.acked:
                assert states == ("delivered", "read"), (pair, states)
            elif pair in seen.after_kill:  # never reached a live daemon
                assert states == ("pending", "pending"), (pair, states)
            else:  # in flight at the kill: whole or not at all, never half-applied
                assert states in (("delivered", "read"), ("pending", "pending")), (pair, states)
            if states == ("delivered", "read"):
                applied += 1
                applied_pairs.add(pair)
        print(f"\n[durability] acked {len(seen.acked)}, in flight at the kill "
              f"{len(seen.in_flight)} (applied {len(seen.in_flight & applied_pairs)}), "
              f"sent after it {len(seen.after_kill)}")
        stats = api(f"{second.url}/api/campaigns/{uuid}")["campaign"]["statistics"]
        assert stats["total_delivered_count"] == 2 * applied  # counted exactly once
        assert stats["total_read_count"] == applied
        assert stats["total_message_count"] == 2 * PAIRS
    finally:
        assert second.terminate() == 0
