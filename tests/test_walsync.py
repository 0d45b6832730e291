"""Under `store.synchronous = "FULL"` a journal batch is synced by the WAL syncer's
fdatasync (store/walsync.py), off the writer thread, and a webhook is answered only
after that sync: a failing sync answers 503, never 2xx. With NORMAL there is no syncer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, webjs_ack


async def campaign_of(daemon: Daemon, messages: int) -> str:
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": f"62812{i:08d}", "message_id": f"W{i}"} for i in range(messages)])
    return str(campaign["uuid"])


async def test_full_commits_are_synced_apart_and_every_answer_counts(daemon_factory: Any,
                                                                     tmp_path: Path) -> None:
    daemon = await daemon_factory(**{"store.synchronous": "FULL",
                                     "store.checkpoint_interval": 3600.0})
    syncer = daemon.runtime.store.thread.syncer
    assert syncer is not None
    uuid = await campaign_of(daemon, 120)
    before = syncer.syncs

    async def ack(i: int) -> int:
        status, body = await daemon.post_json("/webhooks/webjs", webjs_ack(f"W{i}", 2 + i % 2))
        assert status == 200, body
        return i

    assert len(await asyncio.gather(*(ack(i) for i in range(120)))) == 120
    stats = await daemon.stats(uuid)
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (120, 60)
    assert syncer.syncs > before  # the answers came through the syncer
    # every answered event is in a committed journal row, seen by another connection
    db = sqlite3.connect(tmp_path / "campaignd.sqlite3")
    try:
        rows = db.execute("SELECT events FROM journal").fetchall()
    finally:
        db.close()
    assert sum(blob.count(b'"W') for (blob,) in rows) == 120


async def test_normal_has_no_syncer(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"store.synchronous": "NORMAL"})
    assert daemon.runtime.store.thread.syncer is None
    uuid = await campaign_of(daemon, 3)
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("W1", 2))
    assert status == 200, body
    assert (await daemon.stats(uuid))["total_delivered_count"] == 1


async def test_a_failed_sync_answers_503_and_the_retry_counts_once(daemon_factory: Any,
                                                                    tmp_path: Path) -> None:
    daemon = await daemon_factory(**{"store.synchronous": "FULL"})
    uuid = await campaign_of(daemon, 3)
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("W0", 2))
    assert status == 200, body
    syncer = daemon.runtime.store.thread.syncer
    # The syncer is idle now (nothing in flight): point it at a WAL file that cannot be
    # opened, so its next sync fails as a vanished or unreadable file would.
    wal_path = syncer.wal_path
    if syncer._fd is not None:
        os.close(syncer._fd)
        syncer._fd = None
    syncer.wal_path = tmp_path / "missing" / "campaignd.sqlite3-wal"
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("W1", 3))
    assert status == 503, body
    assert body["error"]["code"] == "storage_unavailable", body
    syncer.wal_path = wal_path  # the disk is back; the sender retries
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("W1", 3))
    assert status == 200, body
    stats = await daemon.stats(uuid)
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (2, 1), stats
    status, ready = await daemon.request("GET", "/readyz")
    assert status == 200, ready
