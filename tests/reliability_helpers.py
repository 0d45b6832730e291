"""Helpers shared by the reliability tests: a real daemon process driven from asyncio.

`DaemonProcess` (tests/proc.py) blocks while it starts and while it is killed; these
wrappers run those steps in a thread so the test's own senders and fake gateways, which
live on the test's event loop, keep running meanwhile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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
