"""Helpers shared by the reliability tests: a real daemon process driven from asyncio.

`DaemonProcess` (tests/proc.py) blocks while it starts and while it is killed; these
wrappers run those steps in a thread so the test's own senders and fake gateways, which
live on the test's event loop, keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.proc import DaemonProcess


async def start(config: Path) -> DaemonProcess:
    return await asyncio.get_running_loop().run_in_executor(None, DaemonProcess, config)


async def kill(proc: DaemonProcess | None) -> None:
    """SIGKILL (no shutdown code runs) if it is still running."""
    if proc is not None and proc.proc.poll() is None:
        await asyncio.get_running_loop().run_in_executor(None, proc.kill)


async def terminate(proc: DaemonProcess) -> int:
    return await asyncio.get_running_loop().run_in_executor(None, proc.terminate)


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any
               ) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def all_rows(session: aiohttp.ClientSession, base: str, uuid: str) -> dict[str, Any]:
    """Every row of a campaign through the paged rows API, by message id (or row no)."""
    rows: dict[str, Any] = {}
    cursor = None
    while True:
        query = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, page = await call(session, "GET", f"{base}/api/campaigns/{uuid}/messages{query}")
        assert status == 200, page
        for r in page["messages"]:
            rows[r["message_id"] or f"row:{r['row']}"] = r
        cursor = page["next_cursor"]
        if not cursor:
            return rows


async def statistics(session: aiohttp.ClientSession, base: str, uuid: str) -> dict[str, Any]:
    status, body = await call(session, "GET", f"{base}/api/campaigns/{uuid}")
    assert status == 200, body
    return body["campaign"]["statistics"]


WEBJS_LEVEL = {"delivered": 2, "read": 3}  # whatsapp-web.js ack numbering


@dataclass
class Unit:
    """One webhook request; its messages are touched by no other request."""

    key: str
    kind: str  # webjs | webjs_array | cloud | twilio
    targets: tuple[tuple[str, str], ...]  # (message id, "delivered" | "read")

    def post_args(self) -> tuple[str, dict[str, Any]]:
        if self.kind == "webjs":
            mid, target = self.targets[0]
            return "webjs", {"json": {"event": "message_status_updated", "data": {
                "message_id": mid, "ack_level": WEBJS_LEVEL[target]}}}
        if self.kind == "webjs_array":
            return "webjs", {"json": [{"event": "message_status_updated", "data": {
                "message_id": mid, "ack_level": WEBJS_LEVEL[t]}} for mid, t in self.targets]}
        if self.kind == "cloud":
            statuses = [{"id": mid, "status": t, "timestamp": str(int(time.time())),
                         "recipient_id": "6281200000000"} for mid, t in self.targets]
            return "cloud", {"json": {"object": "whatsapp_business_account", "entry": [
                {"id": "1", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp", "statuses": statuses}}]}]}}
        mid, target = self.targets[0]
        return "twilio", {"data": urlencode({"MessageSid": mid, "MessageStatus": target,
                                             "ChannelToAddress": "+6281200000000"}),
                          "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def make_units(rng: random.Random, round_no: int, count: int) -> list[Unit]:
    units = []
    for u in range(count):
        kind = rng.choice(("webjs", "webjs_array", "cloud", "twilio"))
        size = {"webjs": 1, "twilio": 1, "webjs_array": 3, "cloud": 4}[kind]
        prefix = {"webjs": "W", "webjs_array": "A", "cloud": "wamid.C", "twilio": "SM"}[kind]
        targets = tuple((f"{prefix}{round_no:03d}x{u:05d}x{k}", rng.choice(("delivered", "read")))
                        for k in range(size))
        units.append(Unit(f"{round_no}/{u}", kind, targets))
    return units
