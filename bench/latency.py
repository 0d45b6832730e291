"""Row 3: from a webhook's 2xx to the WebSocket frame at a subscriber, idle and under load.

A subscriber holds `campaign.{uuid}`. A probe posts one `read` ACK at a time for a
message of its own and measures from the 2xx to the first `campaign.statistics.updated`
frame whose read count includes it. Idle: probes 150 ms apart (past the coalescing
interval). Loaded: the same while a separate process (bench/load.py) posts 5,000 ACKs/s
to other messages of the same campaign, each status raising its message one level for
the whole run; the rate it achieved is checked (>= 95 % of 5,000/s, every answer 2xx),
and so are the final counters.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp

from bench.common import REPO, BenchError, Row, api, create_campaign, daemon
from bench.ladder import CloudLadder, reached

LOAD_MESSAGES = 100_000
PROBES = 200
LOAD_RATE = 5000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def probe(url: str, uuid: str, probes: int, first: int) -> list[float]:
    ws_url = url.replace("http://", "ws://") + "/app/campaignd-key?protocol=7&client=js"
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        await ws.receive()  # connection_established
        await ws.send_json({"event": "pusher:subscribe", "data": {"channel": f"campaign.{uuid}"}})
        read_count = -1
        deadline = time.monotonic() + 10
        while read_count < 0 and time.monotonic() < deadline:  # the state on subscribe
            msg = json.loads((await ws.receive()).data)
            if msg["event"] == "campaign.statistics.updated":
                read_count = json.loads(msg["data"])["statistics"]["total_read_count"]
        for i in range(first, first + probes):
            body = {"entry": [{"changes": [{"value": {"statuses": [
                {"id": f"wamid.P{i}", "status": "read", "timestamp": str(int(time.time()))}]}}]}]}
            async with session.post(f"{url}/webhooks/cloud", json=body) as resp:
                if resp.status != 200:
                    raise BenchError(f"a probe was answered {resp.status}")
                answered = time.perf_counter()
            target = read_count + 1
            while True:
                msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                if msg["event"] != "campaign.statistics.updated":
                    continue
                read_count = json.loads(msg["data"])["statistics"]["total_read_count"]
                if read_count >= target:
                    latencies.append(time.perf_counter() - answered)
                    break
            await asyncio.sleep(0.15)
    return latencies


def run() -> list[Row]:
    rows = []
    with daemon() as d:
        uuid = create_campaign(d.url, LOAD_MESSAGES, prefix="wamid.L")
        api(f"{d.url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
            {"recipient": f"1{i}", "message_id": f"wamid.P{i}"} for i in range(2 * PROBES)]})
        # the analytics' recount of the registered rows is not what is measured
        settled = d.analytics_settled()
        idle = asyncio.run(probe(d.url, uuid, PROBES, 0))
        seconds = PROBES * 0.2 + 5
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.load", d.url, "wamid.L", str(LOAD_MESSAGES),
             str(LOAD_RATE), str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        loaded = asyncio.run(probe(d.url, uuid, PROBES, PROBES))
        probes_done = time.time()
        out, _ = load.communicate(timeout=seconds + 120)
        if load.returncode:
            raise BenchError(f"the load generator failed: {out}")
        result = json.loads(out)
        stats = d.statistics(uuid)
    if result["refused"] or result["acked"] != result["sent"]:
        raise BenchError(f"the load was not all answered 2xx: {result}")
    if result["achieved_rate"] < 0.95 * LOAD_RATE:
        raise BenchError(f"the load reached {result['achieved_rate']:,.0f} ACKs/s,"
                         f" not {LOAD_RATE:,}")
    if result["last_ack"] < probes_done:
        raise BenchError("the load stopped before the last loaded probe")
    steps = result["acked"]
    want = {"total_delivered_count": reached(steps, LOAD_MESSAGES, 1, 0, LOAD_MESSAGES)
            + 2 * PROBES,
            "total_read_count": reached(steps, LOAD_MESSAGES, 2, 0, LOAD_MESSAGES) + 2 * PROBES}
    got = {key: stats[key] for key in want}
    if got != want:
        raise BenchError(f"counters {got}, but what was sent makes {want}")
    assert CloudLadder.STATUSES == ("sent", "delivered", "read")
    for label, values, bar in (("idle", idle, 0.020),
                               (f"under {LOAD_RATE:,} ACKs/s", loaded, 0.150)):
        p50, p99, worst = pct(values, 0.5), pct(values, 0.99), max(values)
        rows.append(Row(f"webhook 2xx -> WebSocket frame, {label}",
                        f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {worst * 1e3:.1f} ms",
                        f"p99 <= {bar * 1e3:.0f} ms", p99 <= bar,
                        {"samples": len(values), "registration_recount_s": round(settled, 1)}))
    rows[-1].figure += f" (load {result['achieved_rate']:,.0f} ACKs/s achieved)"
    rows[-1].details.update(result)
    return rows
