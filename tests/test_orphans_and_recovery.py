"""ACKs before registration, restarts, passivation: nothing is lost or counted twice."""

from __future__ import annotations

import sqlite3

from tests.conftest import Daemon, eventually


async def ack(daemon: Daemon, message_id: str, level: int) -> None:
    status, body = await daemon.post_json("/webhooks/webjs", {
        "event": "message_status_updated", "data": {"message_id": message_id,
                                                    "ack_level": level}})
    assert status == 200, body


async def test_ack_before_registration_is_counted_once_registered(daemon: Daemon):
    campaign = await daemon.create_campaign()
    await ack(daemon, "true_6281@c.us_EARLY1", 2)  # the ACK beats the send's answer
    await ack(daemon, "EARLY2", 3)
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 0
    await daemon.register(campaign["uuid"], [{"recipient": "6281", "message_id": "EARLY1"},
                                             {"recipient": "6282", "message_id": "EARLY2"},
                                             {"recipient": "6283", "message_id": "LATE"}])
    stats = await daemon.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (2, 1)
    metrics = daemon.runtime.metrics
    assert metrics.events.labels("webjs", "orphaned")._value.get() == 2
    assert metrics.orphans_pending._value.get() == 0


async def test_orphans_survive_a_restart(daemon_factory):
    first = await daemon_factory(**{"store.checkpoint_interval": 0.05})
    campaign = await first.create_campaign()
    await ack(first, "LONELY", 3)
    await first.runtime.checkpointer.run()  # the journal is compacted: orphans table holds it
    db = sqlite3.connect(first.runtime.config.db_path)
    assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
    assert db.execute("SELECT message_id FROM orphans").fetchall() == [("LONELY",)]
    await first.server.close()
    second = await daemon_factory(**{"store.checkpoint_interval": 0.05})
    await second.register(campaign["uuid"], [{"recipient": "1", "message_id": "LONELY"}])
    assert (await second.stats(campaign["uuid"]))["total_read_count"] == 1
    await second.runtime.checkpointer.run()
    assert db.execute("SELECT COUNT(*) FROM orphans").fetchone()[0] == 0


async def test_orphans_expire_and_are_counted(daemon_factory):
    daemon = await daemon_factory(**{"ingest.orphan_ttl": 1.0})
    campaign = await daemon.create_campaign()
    await ack(daemon, "NEVER-REGISTERED", 2)

    async def expired():
        await daemon.runtime.checkpointer.run()
        return daemon.runtime.metrics.orphans_expired._value.get() == 1

    await eventually(expired, timeout=10, interval=0.3)
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "NEVER-REGISTERED"}])
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 0


async def test_restart_gives_the_same_counters_and_rows(daemon_factory):
    first = await daemon_factory(**{"store.checkpoint_interval": 3600})
    campaign = await first.create_campaign()
    uuid = campaign["uuid"]
    await first.register(uuid, [{"recipient": f"62{i}", "message_id": f"R{i}"}
                                for i in range(20)])
    for i in range(15):
        await ack(first, f"R{i}", 2 if i % 3 else 3)
    await ack(first, "R19", -1)
    before = await first.stats(uuid)
    _, rows_before = await first.request("GET", f"/api/campaigns/{uuid}/messages?limit=100")
    await first.server.close()
    second = await daemon_factory()
    assert await second.stats(uuid) == before
    _, rows_after = await second.request("GET", f"/api/campaigns/{uuid}/messages?limit=100")
    assert rows_after == rows_before


async def test_journal_replay_without_checkpoint(daemon_factory, tmp_path):
    """Events only in the journal (no checkpoint ran) are replayed at start."""
    first = await daemon_factory(**{"store.checkpoint_interval": 3600})
    campaign = await first.create_campaign()
    await first.register(campaign["uuid"], [{"recipient": "1", "message_id": "J1"},
                                            {"recipient": "2", "message_id": "J2"}])
    await ack(first, "J1", 3)
    await ack(first, "J2", 2)
    rt = first.runtime
    # Simulate a crash: stop without the final checkpoint (the checkpointer is detached).
    rt.checkpointer, checkpointer = None, rt.checkpointer
    await checkpointer.stop()
    await first.server.close()
    db = sqlite3.connect(tmp_path / "campaignd.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 2
    second = await daemon_factory()
    assert second.runtime.replayed_events == 2
    stats = await second.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (2, 1)


async def test_idle_campaign_actor_passivates_and_comes_back(daemon_factory):
    daemon = await daemon_factory(**{"ingest.passivate_after": 0.2,
                                     "store.checkpoint_interval": 0.1})
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "P1"},
                                             {"recipient": "2", "message_id": "P2"}])
    await ack(daemon, "P1", 3)
    metrics = daemon.runtime.metrics

    async def passivated():
        return metrics.active_campaigns._value.get() == 0

    await eventually(passivated, timeout=10)
    await ack(daemon, "P2", 2)  # wakes it up: loaded from SQLite, then the event applied
    stats = await daemon.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (2, 1)
    assert metrics.active_campaigns._value.get() == 1


async def test_an_orphan_whose_registration_was_committed_before_a_crash_is_counted(
        daemon_factory):
    """The ACK came first and waits in the orphans table; the registration's rows were
    committed, but the daemon died before the ingest actor heard of them (the instant
    between the commit and its tell). At the next start the row is known from SQLite,
    so its orphan is claimed then: nothing else would ever claim it (it expired)."""
    from web.api import parse_registrations

    first = await daemon_factory()
    campaign = await first.create_campaign()
    await ack(first, "true_6281@c.us_RACED", 3)
    await first.runtime.checkpointer.run()  # the orphan is in its table
    await first.runtime.campaigns.register(campaign["id"], parse_registrations(
        {"messages": [{"recipient": "6281", "message_id": "RACED"}]}))  # no tell: "crash"
    await first.server.close()

    second = await daemon_factory()
    stats = await second.stats(campaign["uuid"])
    assert (stats["total_message_count"], stats["total_read_count"]) == (1, 1)
    assert second.runtime.metrics.orphans_pending._value.get() == 0
    await second.runtime.checkpointer.run()
    db = sqlite3.connect(second.runtime.config.db_path)
    assert db.execute("SELECT COUNT(*) FROM orphans").fetchone()[0] == 0
