"""Storage failing (SPEC 3.1, 5): 503 with Retry-After, nothing half-applied, the daemon
keeps serving what it holds, and recovers by itself when storage comes back."""

from __future__ import annotations

import sqlite3

import pytest

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
    # Ready again only once writes have gone store.failure_hold seconds without a
    # failure: a disk that takes some writes and refuses others must not flap it.
    store = daemon.runtime.store
    now = store.clock()
    store.clock = lambda: now + 1.0
    status, ready = await daemon.request("GET", "/readyz")
    assert status == 503 and any("writes succeed again" in p for p in ready["problems"])
    store.clock = lambda: now + store.failure_hold + 0.1
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


async def test_only_derived_writes_skip_the_fsync(tmp_path):
    """synchronous = FULL: a checkpoint's rows and the analytics (derived from the journal
    they keep) commit without the fsync; everything else, and every write after a
    derived one (a webhook's journal row), still commits with it (store/db.py)."""
    from store.db import Store

    store = Store(tmp_path / "t.sqlite3", synchronous="FULL")
    await store.open()
    seen: list[tuple[str, int]] = []

    def mode(label: str):
        return (lambda conn: seen.append(
            (label, conn.execute("PRAGMA synchronous").fetchone()[0])), (), False)

    await store.transaction([mode("durable")])
    await store.transaction([mode("derived")], derived=True)
    await store.transaction([mode("after")])
    with pytest.raises(sqlite3.IntegrityError):  # a failing derived write restores it too
        await store.transaction([mode("failing"), ("INSERT INTO meta (key) VALUES (NULL)",
                                                    (), False)], derived=True)
    await store.transaction([mode("last")])
    await store.close()
    assert seen == [("durable", 2), ("derived", 1), ("after", 2), ("failing", 1),
                    ("last", 2)]  # 2 = FULL, 1 = NORMAL


async def test_a_send_outcome_is_kept_until_storage_is_back(daemon_factory):
    """The short form of `test_database_locked_for_two_minutes`: a call the gateway has
    accepted while every write fails keeps its outcome and tries to store it again and
    again, far past the 30 tries that were once its budget (the pause between tries is
    shortened through the service's `outcome_retry_max_delay`), and stores it as soon as
    storage is back: the row is accepted, the campaign completes, ACKs for the id count."""
    import asyncio

    from aiohttp import web
    from structlog.testing import capture_logs

    from tests.conftest import eventually

    serialized = "true_6281400000001@c.us_3EB0A1B2C3D4E5F60718"
    arrived, answer = asyncio.Event(), asyncio.Event()
    calls = []

    async def send(request: web.Request) -> web.Response:  # a whatsapp-web.js service
        calls.append(await request.json())
        arrived.set()
        await answer.wait()
        return web.json_response({"success": True, "message_id": serialized})

    app = web.Application()
    app.router.add_post("/api/messages/send", send)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        daemon = await daemon_factory(**{
            "gateways.http.url": f"http://127.0.0.1:{port}/api/messages/send",
            "gateways.http.id_field": "message_id", "store.checkpoint_interval": 3600})
        daemon.runtime.sending.outcome_retry_max_delay = 0.005
        status, body = await daemon.post_json("/api/campaigns", {
            "workspace_id": 1, "name": "Outcome waits", "message": "Halo", "gateway": "http",
            "recipients": ["6281400000001"], "start": True})
        assert status == 201, body
        uuid = body["campaign"]["uuid"]
        await asyncio.wait_for(arrived.wait(), 10)  # its attempt is recorded, the call out

        writer = daemon.runtime.store.writer
        await writer.execute("PRAGMA query_only = 1")  # every write now fails
        with capture_logs() as logs:
            answer.set()

            async def tried_past_the_old_budget() -> bool:
                return any(e["event"] == "sender.outcome_store_failed"
                           and e["attempt"] >= 40 for e in logs)
            await eventually(tried_past_the_old_budget, timeout=20)
        status, body = await daemon.request("GET", f"/api/campaigns/{uuid}/sending")
        assert body["sending"]["status"] == "processing"
        assert body["sending"]["send_states"] == {"attempting": 1}  # kept, not dropped
        await writer.execute("PRAGMA query_only = 0")

        async def completed() -> object:
            _, got = await daemon.request("GET", f"/api/campaigns/{uuid}/sending")
            return got["sending"]["status"] == "completed" and got["sending"]
        sending = await eventually(completed, timeout=10)
        assert sending["send_states"] == {"accepted": 1}
        assert len(calls) == 1  # sent once, stored once
        status, _ = await daemon.post_json("/webhooks/webjs", {
            "event": "message_status_updated",
            "data": {"message_id": serialized, "ack_level": 2}})
        assert status == 200
        assert (await daemon.stats(uuid))["total_delivered_count"] == 1
    finally:
        answer.set()
        await runner.cleanup()
