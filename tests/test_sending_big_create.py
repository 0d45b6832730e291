"""A sending campaign created with many recipients (store/campaigns.py `create_sending`):
its rows are written a chunk per transaction, so webhooks are answered while it is
created, and it is still all or nothing: one a kill -9 interrupted is gone after the
restart, and the same request then creates it whole."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from daemon.cli import main
from store.campaigns import CREATE_CHUNK
from tests.conftest import eventually, webjs_ack
from tests.proc import DaemonProcess, write_config
from tests.reliability_helpers import call, kill, start

RECIPIENTS = [str(6281600000000 + i) for i in range(8 * CREATE_CHUNK)]
UUID = "8d7b0d36-9a55-4e53-a53d-1c2a3f4e5d60"


def rows_written(db: Path) -> int:
    """Rows of the campaign being created, as SQLite has them now (read only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute(
            "SELECT COUNT(*) FROM messages JOIN campaigns ON no = campaign_no"
            " WHERE uuid = ?", (UUID,)).fetchone()[0])


async def partly_written(db: Path) -> int:
    """Wait until the creation has committed some chunks but not all; their count."""
    async def some() -> int | None:
        n = await asyncio.get_running_loop().run_in_executor(None, rows_written, db)
        return n if 0 < n < len(RECIPIENTS) else None
    written = await eventually(some, timeout=30, interval=0.005)
    assert written is not None
    return int(written)


def create(s: aiohttp.ClientSession, url: str) -> asyncio.Task[tuple[int, object]]:
    return asyncio.ensure_future(call(s, "POST", url + "/api/campaigns", json={
        "workspace_id": 1, "uuid": UUID, "name": "Big", "message": "Halo",
        "recipients": RECIPIENTS}))


@dataclass
class HalfCreated:
    """A daemon process creating the big campaign, seen with some chunks written."""

    config: Path
    db: Path
    session: aiohttp.ClientSession
    proc: DaemonProcess
    creating: asyncio.Task[tuple[int, object]]


@asynccontextmanager
async def half_created(tmp_path: Path) -> AsyncIterator[HalfCreated]:
    config = write_config(tmp_path)
    db = tmp_path / "campaignd.sqlite3"
    proc = await start(config)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            creating = create(s, proc.url)
            await partly_written(db)
            half = HalfCreated(config, db, s, proc, creating)
            try:
                yield half
            finally:
                creating.cancel()
                proc = half.proc
    finally:
        await kill(proc)


async def test_webhooks_are_answered_while_a_big_campaign_is_created(tmp_path: Path
                                                                      ) -> None:
    async with half_created(tmp_path) as half:
        s, url = half.session, half.proc.url
        # Not listed, not found, while it is being created: nothing half-made shows.
        status, listing = await call(s, "GET", url + "/api/campaigns")
        assert status == 200 and UUID not in [c["uuid"] for c in listing["campaigns"]]
        assert (await call(s, "GET", f"{url}/api/campaigns/{UUID}"))[0] == 404
        status, trends = await call(s, "GET", url + "/api/workspaces/1/insights/trends")
        assert status == 200 and trends["campaigns"] == []
        status, _ = await call(s, "GET", url + "/api/workspaces/1/insights/compare"
                               f"?campaigns={UUID},{UUID[:-1]}1")
        assert status == 404
        status, _ = await call(s, "POST", url + "/webhooks/webjs",
                               json=webjs_ack("unregistered-1", 2))
        assert status == 200
        # The ACK's commit took its turn between two chunks: it did not wait for the
        # 40,000 rows (before, they were one transaction, and the ACK came after).
        written = await asyncio.get_running_loop().run_in_executor(None, rows_written,
                                                                   half.db)
        assert written < len(RECIPIENTS), "the webhook waited for the whole creation"
        status, body = await half.creating
        assert status == 201, body
        assert body["campaign"]["statistics"]["total_message_count"] == len(RECIPIENTS)


async def test_a_creation_killed_half_way_is_gone_after_the_restart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with half_created(tmp_path) as half:
        s = half.session
        await kill(half.proc)
        # The offline commands, run before the restart drops it, say what happened
        # rather than showing a campaign with part of its recipients.
        for command in (["stats", UUID], ["export", UUID, "-o", str(tmp_path / "x.csv")]):
            capsys.readouterr()
            assert main(["--config", str(half.config), *command]) == 1
            assert "still being created when the daemon stopped" in capsys.readouterr().err
        half.proc = await start(half.config)
        url = half.proc.url
        assert rows_written(half.db) == 0
        status, listing = await call(s, "GET", url + "/api/campaigns")
        assert status == 200 and listing["campaigns"] == []
        # The operator's retry (same uuid) is not refused as existing: created whole.
        status, body = await create(s, url)
        assert status == 201, body
        assert body["campaign"]["statistics"]["total_message_count"] == len(RECIPIENTS)
        assert (await call(s, "GET", f"{url}/api/campaigns/{UUID}"))[0] == 200
        assert rows_written(half.db) == len(RECIPIENTS)
