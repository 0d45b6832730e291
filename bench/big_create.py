"""How long webhooks wait while a big sending campaign is created: `python -m bench.big_create
[RECIPIENTS]` (default 100,000; not a `make bench` row, docs/sending.md quotes it).

A daemon on its defaults (simulator gateway); one client posts a webjs ACK every 20 ms
(an unregistered id: still journaled before its 2xx) while another creates a campaign
with RECIPIENTS recipients. Prints how long the creation took and the slowest webhook
answer during it. A/B: run it from each commit's directory, alternately.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from bench.common import daemon, machine


async def measure(url: str, recipients: int) -> dict[str, float]:
    worst = 0.0
    creating = True
    async with aiohttp.ClientSession() as session:
        async def webhooks() -> None:
            nonlocal worst
            n = 0
            while creating:
                n += 1
                t0 = time.perf_counter()
                async with session.post(url + "/webhooks/webjs", json={
                        "event": "message_status_updated",
                        "data": {"message_id": f"bench-big-create-{n}", "ack_level": 2}}) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"webhook answered {r.status}")
                worst = max(worst, time.perf_counter() - t0)
                await asyncio.sleep(0.02)

        poster = asyncio.create_task(webhooks())
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        async with session.post(url + "/api/campaigns", json={
                "workspace_id": 1, "name": "Big", "message": "Halo",
                "recipients": [str(6281300000000 + i) for i in range(recipients)]}) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"creation answered {r.status}: {body}")
        created = time.perf_counter() - t0
        creating = False
        await poster
    return {"recipients": recipients, "create_s": round(created, 2),
            "worst_webhook_s": round(worst, 3)}


def main() -> None:
    recipients = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    load_start = machine()["load"][0]
    with daemon() as d:
        result = asyncio.run(measure(d.url, recipients))
    print(json.dumps({**result, "load": [round(load_start, 2),
                                         round(machine()["load"][0], 2)]}))


if __name__ == "__main__":
    main()
