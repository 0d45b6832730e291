"""Storage failing (SPEC 3.1, 5): 503 with Retry-After, nothing half-applied, the daemon
keeps serving what it holds, and recovers by itself when storage comes back."""

from __future__ import annotations

import sqlite3

from tests.conftest import Daemon


async def ack(daemon: Daemon, message_id: str, level: int) -> tuple[int, object, dict]:
    async with daemon.session.post(daemon.url("/webhooks/webjs"), json={
            "event": "message_status_updated",
            "data": {"message_id": message_id, "ack_level": level}}) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_database_locked_by_another_process(daemon_factory, tmp_path):
    daemon = await daemon_factory(**{"store.busy_timeout_ms": 200,
                                     "store.checkpoint_interval": 3600})
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "L1"},
                                             {"recipient": "2", "message_id": "L2"}])
    assert (await ack(daemon, "L1", 2))[0] == 200
    locker = sqlite3.connect(tmp_path / "campaignd.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        status, body, headers = await ack(daemon, "L2", 3)
        assert status == 503 and body["error"]["code"] == "storage_unavailable"
        assert int(headers["Retry-After"]) > 0
        status, ready = await daemon.request("GET", "/readyz")
        assert status == 503 and any("storage" in p for p in ready["problems"])
        # reads are served from memory meanwhile; the refused ACK was not applied
        stats = await daemon.stats(campaign["uuid"])
        assert (stats["total_delivered_count"], stats["total_read_count"]) == (1, 0)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    status, _, _ = await ack(daemon, "L2", 3)  # the provider's retry
    assert status == 200
    stats = await daemon.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (2, 1)
    assert (await daemon.request("GET", "/readyz"))[0] == 200


async def test_read_only_database_then_writable_again(daemon: Daemon):
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "RO"}])
    writer = daemon.runtime.store.writer
    await writer.execute("PRAGMA query_only = 1")  # every write now fails inside SQLite
    status, body, headers = await ack(daemon, "RO", 2)
    assert status == 503 and "Retry-After" in headers
    status, body = await daemon.post_json(f"/api/campaigns/{campaign['uuid']}/messages",
                                          {"messages": [{"recipient": "2", "message_id": "RO2"}]})
    assert status == 503 and body["error"]["code"] == "storage_unavailable"
    await writer.execute("PRAGMA query_only = 0")
    assert (await ack(daemon, "RO", 2))[0] == 200
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 1


async def test_a_cancelled_transaction_never_swallows_a_journal_commit(tmp_path):
    """A caller cancelled mid-transaction (timeout, shutdown) must not leave BEGIN open:
    the next autocommit write (a journal commit behind a 2xx) would land in it and be lost
    (found by the service work; store/db.py shields both kinds of write)."""
    import asyncio

    from store.db import Store

    store = Store(tmp_path / "t.sqlite3")
    await store.open()
    await store.writer.execute("CREATE TABLE t (x TEXT)")
    for i in range(30):
        task = asyncio.ensure_future(store.transaction(
            [("INSERT INTO t VALUES (?)", (f"tx{i}",), False)] * 3))
        await asyncio.sleep(0)
        task.cancel()
        await store.execute_atomic("INSERT INTO t VALUES (?)", (f"atomic{i}",))
    await asyncio.sleep(0.1)
    await store.close()
    rows = [r[0] for r in sqlite3.connect(tmp_path / "t.sqlite3").execute("SELECT x FROM t")]
    assert sum(r.startswith("atomic") for r in rows) == 30
    assert sum(r.startswith("tx") for r in rows) % 3 == 0  # whole transactions or none
