"""Posting many ACKs fast: Cloud API batches of 1000 statuses from a few connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import aiohttp


def cloud_body(ids: Iterable[str], status: str, timestamp: int) -> bytes:
    statuses = [{"id": i, "status": status, "timestamp": str(timestamp),
                 "recipient_id": "16505551234"} for i in ids]
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [{"field": "messages", "value": {"statuses": statuses}}]}]},
        separators=(",", ":")).encode()


async def post_batches(url: str, bodies: Iterable[bytes], connections: int = 8) -> int:
    """POST every body to /webhooks/cloud; return how many were answered 2xx."""
    pending = iter(bodies)  # made lazily: 3M statuses would not fit in memory at once
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for body in pending:
            async with session.post(f"{url}/webhooks/cloud", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status == 200:
                    ok += 1
                else:
                    raise RuntimeError(f"webhook answered {resp.status}")

    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return ok


def ack_all(url: str, messages: int, prefix: str, statuses: Iterable[str],
            per_request: int = 1000) -> int:
    bodies = (cloud_body((f"{prefix}{i}" for i in range(start, min(messages, start + per_request))),
                         status, 1750000000 + n)
              for n, status in enumerate(statuses)
              for start in range(0, messages, per_request))
    return asyncio.run(post_batches(url, bodies))
