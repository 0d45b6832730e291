"""A load generator process: Cloud API batches at a fixed ACK rate, then it stops.

`python -m bench.load URL PREFIX MESSAGES RATE SECONDS [STATUS]` posts RATE statuses
per second (batches of 50, 20 ms apart per connection slot) for SECONDS, to 127.0.0.1
only, and prints how many were answered 2xx and when the last answer came (epoch s).
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp

from bench.acks import cloud_body

PER_REQUEST = 50


async def main(url: str, prefix: str, messages: int, rate: float, seconds: float,
               status: str) -> None:
    if not url.startswith("http://127.0.0.1"):
        raise SystemExit("load goes to 127.0.0.1 only")
    requests_per_s = rate / PER_REQUEST
    interval = 1.0 / requests_per_s
    ok = 0
    last = 0.0
    next_id = 0
    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        nonlocal ok, last
        async with session.post(f"{url}/webhooks/cloud", data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            if resp.status == 200:
                ok += 1
                last = time.time()

    async with aiohttp.ClientSession() as session:
        n = 0
        while time.perf_counter() - started < seconds:
            ids = [f"{prefix}{(next_id + i) % messages}" for i in range(PER_REQUEST)]
            next_id += PER_REQUEST
            task = asyncio.create_task(post(session, cloud_body(ids, status, 1750000000 + n)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)
    print(f"{ok * PER_REQUEST} {last:.6f}", flush=True)


if __name__ == "__main__":
    url, prefix, messages, rate, seconds = sys.argv[1:6]
    status = sys.argv[6] if len(sys.argv) > 6 else "delivered"
    asyncio.run(main(url, prefix, int(messages), float(rate), float(seconds), status))
