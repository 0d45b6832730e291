"""Many Pusher-protocol subscribers in one process, for the fan-out benchmark.

`python -m bench.subscribers URL UUID COUNT`: connects COUNT WebSockets to 127.0.0.1,
subscribes each to campaign.{UUID}, prints {"connected": n} when all are subscribed,
then reads {"delivered": N, "last_ack": t} from stdin and prints when each subscriber
first held statistics with that delivered count (the slowest, relative to last_ack).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


class Subscriber:
    def __init__(self) -> None:
        self.last_raw = ""
        self.reached: float | None = None
        self.target: int | None = None

    def seen(self, raw: str) -> None:
        if '"campaign.statistics.updated"' not in raw:
            return
        self.last_raw = raw
        if self.target is not None and self.reached is None and self._delivered() >= self.target:
            self.reached = time.time()

    def _delivered(self) -> int:
        msg = json.loads(self.last_raw)
        return json.loads(msg["data"])["statistics"]["total_delivered_count"]


async def main(url: str, uuid: str, count: int) -> None:
    if not url.startswith("http://127.0.0.1"):
        raise SystemExit("127.0.0.1 only")
    ws_url = url.replace("http://", "ws://") + "/app/campaignd-key?protocol=7&client=js"
    subs = [Subscriber() for _ in range(count)]
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    subscribed = asyncio.Event()
    pending = count

    async def one(sub: Subscriber) -> None:
        nonlocal pending
        async with session.ws_connect(ws_url, heartbeat=None, max_msg_size=0) as ws:
            await ws.receive()
            await ws.send_str(json.dumps({"event": "pusher:subscribe",
                                          "data": {"channel": f"campaign.{uuid}"}}))
            counted = False
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if not counted and "subscription_succeeded" in msg.data:
                    counted = True
                    pending -= 1
                    if pending == 0:
                        subscribed.set()
                sub.seen(msg.data)

    tasks = []
    for i, sub in enumerate(subs):
        tasks.append(asyncio.create_task(one(sub)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not open 2,000 sockets in one burst
    await asyncio.wait_for(subscribed.wait(), 120)
    print(json.dumps({"connected": count - pending}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    order = json.loads(line)
    target = order["delivered"]
    for sub in subs:
        sub.target = target
        if sub.last_raw and sub._delivered() >= target:
            sub.reached = time.time()
    deadline = time.time() + 30
    while time.time() < deadline and any(s.reached is None for s in subs):
        await asyncio.sleep(0.02)
    exact = [s for s in subs if s.reached is not None and s._delivered() == target]
    slowest = max((s.reached for s in subs if s.reached), default=time.time())
    print(json.dumps({"exact": len(exact), "all_exact": len(exact) == count,
                      "slowest_s": max(0.0, slowest - order["last_ack"])}), flush=True)
    for task in tasks:
        task.cancel()
    await session.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
