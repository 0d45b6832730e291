"""Many Pusher-protocol subscribers in one process, for the fan-out benchmark.

`python -m bench.subscribers URL UUID COUNT`: connects COUNT WebSockets to 127.0.0.1,
subscribes each to campaign.{UUID}, prints {"connected": n} when all are subscribed,
then reads {"delivered": N, "last_ack": t} from stdin and prints when each subscriber
first held statistics with that delivered count (the slowest, relative to last_ack).

When a frame ARRIVED is what counts: each subscriber keeps its last few statistics
frames with their arrival times (no JSON parsed while frames flow, so this process
keeps up), and the first of them holding the final count dates it. Until wave 6 a
subscriber that already held the count when told it was dated by the telling, which
added the load process's exit, an API call and this pipe to every figure
(`told_s` still reports that reading).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque

import aiohttp

KEPT = 8  # statistics frames kept per subscriber (the final state is among the last)


class Subscriber:
    def __init__(self) -> None:
        self.frames: deque[tuple[float, str]] = deque(maxlen=KEPT)  # (arrived, raw)
        self.reached: float | None = None
        self.told: float | None = None
        self.target: int | None = None

    @property
    def last_raw(self) -> str:
        return self.frames[-1][1] if self.frames else ""

    def seen(self, raw: str) -> None:
        if '"campaign.statistics.updated"' not in raw:
            return
        self.frames.append((time.time(), raw))
        if self.target is not None and self.reached is None and \
                _delivered(raw) >= self.target:
            self.reached = self.frames[-1][0]

    def aim(self, target: int) -> None:
        """The final count is known: date the first kept frame that holds it."""
        self.target = target
        for arrived, raw in self.frames:
            if _delivered(raw) >= target:
                self.reached = arrived
                self.told = time.time()
                return

    def _delivered(self) -> int:
        return _delivered(self.last_raw)


def _delivered(raw: str) -> int:
    msg = json.loads(raw)
    return int(json.loads(msg["data"])["statistics"]["total_delivered_count"])


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
        sub.aim(target)
    deadline = time.time() + 30
    while time.time() < deadline and any(s.reached is None for s in subs):
        await asyncio.sleep(0.02)
    exact = [s for s in subs if s.reached is not None and s._delivered() == target]
    slowest = max((s.reached for s in subs if s.reached), default=time.time())
    told = max((s.told or s.reached or 0.0 for s in subs), default=time.time())
    print(json.dumps({"exact": len(exact), "all_exact": len(exact) == count,
                      "slowest_s": max(0.0, slowest - order["last_ack"]),
                      "told_s": max(0.0, told - order["last_ack"])}), flush=True)
    for task in tasks:
        task.cancel()
    await session.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
