"""A load generator process: Cloud API batches at a fixed ACK rate, then it stops.

`python -m bench.load URL PREFIX MESSAGES RATE SECONDS [FIRST_STATUS]` posts RATE
statuses per second (batches of 50 on a fixed schedule) for SECONDS, to 127.0.0.1 only.
The statuses climb a ladder (bench/ladder.py CloudLadder) over MESSAGES registered
messages: sent, then delivered, then read (or from FIRST_STATUS up), so every status
changes its message, for the whole run. Prints one JSON line: statuses answered 2xx,
non-2xx answers, the time of the last answer (epoch s) and the rate achieved (statuses
answered per second between the first request and the last answer). SIGTERM ends the
run early the same way: no new request, the ones in flight answered, the line printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import aiohttp

from bench.ladder import CloudLadder, cloud_envelope

PER_REQUEST = 50


async def main(url: str, prefix: str, messages: int, rate: float, seconds: float,
               first_status: str) -> None:
    if not url.startswith("http://127.0.0.1"):
        raise SystemExit("load goes to 127.0.0.1 only")
    ladder = CloudLadder(messages, prefix, PER_REQUEST)
    offset = CloudLadder.STATUSES.index(first_status) * messages
    interval = PER_REQUEST / rate
    ok = refused = 0
    last = 0.0
    started = time.perf_counter()
    started_epoch = time.time()
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()  # SIGTERM: the caller has measured what it wanted
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        nonlocal ok, refused, last
        async with session.post(f"{url}/webhooks/cloud", data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            if resp.status == 200:
                ok += PER_REQUEST
                last = time.time()
            else:
                refused += 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        n = 0
        while time.perf_counter() - started < seconds and not stop.is_set():
            first = offset + n * PER_REQUEST
            if first + PER_REQUEST > len(CloudLadder.STATUSES) * messages:
                raise SystemExit("the ladder ran out: register more messages")
            body = cloud_envelope({"statuses": [ladder.status(j) for j in
                                                range(first, first + PER_REQUEST)]})
            task = asyncio.create_task(post(session, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # one interval at most: the stop is seen soon
        await asyncio.gather(*tasks)
    achieved = ok / max(1e-9, last - started_epoch)
    print(json.dumps({"acked": ok, "sent": n * PER_REQUEST, "refused": refused,
                      "last_ack": last, "achieved_rate": achieved,
                      "stopped_early": stop.is_set()}), flush=True)


if __name__ == "__main__":
    url, prefix, messages, rate, seconds = sys.argv[1:6]
    first_status = sys.argv[6] if len(sys.argv) > 6 else "sent"
    asyncio.run(main(url, prefix, int(messages), float(rate), float(seconds), first_status))
