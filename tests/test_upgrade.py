"""Upgrading in place: databases written by the previous release open with nothing lost.

tests/fixtures/upgrade/0.1/ holds two databases made by release 0.1's own code
(scripts/make_upgrade_fixture.py): one stopped cleanly, one killed with SIGKILL while
its events were still only in the journal. The current code migrates each at open;
every campaign must show exactly the statistics 0.1 served before it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from domain.tiers import TIERS
from tests.conftest import Daemon, close_server, eventually, webjs_ack

UPGRADE = Path(__file__).resolve().parent / "fixtures" / "upgrade"
COUNTS = ("total_message_count", "total_sent_count", "total_delivered_count",
          "total_read_count", "total_played_count", "total_failed_count", "total_queued_count")


def copy_release(release: str, case: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    src = UPGRADE / release / case
    dest = tmp_path / "old"
    shutil.copytree(src, dest)
    return dest / "campaignd.sqlite3", json.loads((src / "expected.json").read_text())


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_a_database_of_release_0_1_opens_with_nothing_lost(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    db, expected = copy_release("0.1", case, tmp_path)
    # The fixture's orphan was kept when the fixture was made: whatever its age now, it
    # must still be waiting (ingest.orphan_ttl would otherwise expire it an hour later).
    d: Daemon = await daemon_factory(**{"store.path": str(db),
                                        "ingest.orphan_ttl": 3650 * 86400.0})
    for uuid, old in expected.items():
        status, body = await d.request("GET", f"/api/campaigns/{uuid}")
        assert status == 200, body
        campaign = body["campaign"]
        # Migration 0003: a campaign sent elsewhere says "tracking" (0.1: "pending").
        assert campaign["status"] == ("tracking" if uuid == "tracked" else old["status"])
        for name in COUNTS:
            assert campaign["statistics"][name] == old["statistics"][name], (uuid, name)
        status, rows = await d.request("GET", f"/api/campaigns/{uuid}/messages?limit=500")
        assert status == 200
        assert len(rows["messages"]) == old["statistics"]["total_message_count"]
        failed = [r for r in rows["messages"] if r["status"] == "failed"]
        assert len(failed) == old["statistics"]["total_failed_count"]
    # The orphan ACK 0.1 kept is still waiting, and applies when its id is registered.
    await d.register("tracked", [{"recipient": "6281299990000",
                                  "message_id": "true_6281299990000@c.us_ORPHAN0001"}])

    async def delivered() -> bool:
        return (await d.stats("tracked"))["total_delivered_count"] == \
            expected["tracked"]["statistics"]["total_delivered_count"] + 1

    await eventually(delivered)
    # And the upgraded database keeps working: a new ACK counts.
    status, _ = await d.post_json("/webhooks/webjs", webjs_ack("ID00001", 3))
    assert status == 200

    async def read_one_more() -> bool:
        return (await d.stats("tracked"))["total_read_count"] == \
            expected["tracked"]["statistics"]["total_read_count"] + 1

    await eventually(read_one_more)


async def test_every_migration_is_recorded_once(daemon_factory: Any, tmp_path: Path) -> None:
    from store.migrations import MIGRATIONS

    db, _ = copy_release("0.1", "clean", tmp_path)
    d = await daemon_factory(**{"store.path": str(db)})
    rows = await d.runtime.store.fetchall("SELECT name FROM schema_migrations ORDER BY name")
    assert [r[0] for r in rows] == sorted(m.name for m in MIGRATIONS)


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_the_relay_outbox_works_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0002 adds the relay's outbox to an old database: a webhook accepted after
    the upgrade is relayed, and 0.1's journal still replays into the same counters; with
    0019 a request the app refuses as malformed is set aside there and requeued."""
    from tests.fakes.seed import FakeLaravel, seed_headers

    app = await FakeLaravel(secret="laravel-secret").start()
    try:
        db, expected = copy_release("0.1", case, tmp_path)
        d: Daemon = await daemon_factory(**{
            "store.path": str(db), "webhooks.webjs.secret": "seed-secret",
            "webhooks.webjs.forward_to": app.webhook_url,
            "webhooks.webjs.forward_secret": "laravel-secret",
            "webhooks.forward_retry_max": 0.05, "webhooks.forward_set_aside_after": 2})
        stats = await d.stats("tracked")
        assert stats["total_read_count"] == expected["tracked"]["statistics"]["total_read_count"]
        body = json.dumps(webjs_ack("ID00001", 3)).encode()
        status, _ = await d.request("POST", "/webhooks/webjs", data=body,
                                    headers=seed_headers("seed-secret", body))
        assert status == 200

        async def relayed() -> bool:
            return app.bodies() == [body]

        await eventually(relayed, timeout=20)
        app.refuse_containing = b"ID00002"
        refused = json.dumps(webjs_ack("ID00002", 3)).encode()
        status, _ = await d.request("POST", "/webhooks/webjs", data=refused,
                                    headers=seed_headers("seed-secret", refused))
        assert status == 200

        async def set_aside() -> bool:
            return d.runtime.relay.status()["webjs"]["set_aside"] == 1

        await eventually(set_aside, timeout=30)
        app.refuse_containing = None
        assert await d.runtime.relay.requeue("webjs") == 1
        await eventually(lambda: _relayed(app, [body, refused]), timeout=20)
    finally:
        await app.stop()


async def _relayed(app: Any, bodies: list[bytes]) -> bool:
    return app.bodies() == bodies


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_failures_of_release_0_1_get_their_category(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0004: rows and journal rows of 0.1 kept failures as text only; they now
    have a code (from the text where it starts with one) and a category, are counted in
    the breakdown, filtered by category, and the account table (0005) works too."""
    db, expected = copy_release("0.1", case, tmp_path)
    d: Daemon = await daemon_factory(**{"store.path": str(db)})
    for uuid, old in expected.items():
        stats = await d.stats(uuid)
        failed = old["statistics"]["total_failed_count"]
        assert sum(e["count"] for e in stats["failures"]) == failed, uuid
        status, rows = await d.request(
            "GET", f"/api/campaigns/{uuid}/messages?status=failed&limit=500")
        assert len(rows["messages"]) == failed
        assert all(r["failure"] is not None for r in rows["messages"]), uuid
        for entry in stats["failures"]:
            status, body = await d.request(
                "GET", f"/api/campaigns/{uuid}/messages?category={entry['category']}"
                "&limit=500")
            assert status == 200 and len(body["messages"]) == entry["count"], (uuid, entry)
    # 0.1's simulator wrote "simulated: delivery failed (131026 undeliverable)": no
    # leading code, so `other`; its webjs ACK errors have no code either.
    tracked = await d.stats("tracked")
    assert [e["category"] for e in tracked["failures"]] == ["other"]
    # the account table of migration 0005 takes Meta's webhooks on the upgraded database
    status, body = await d.post_json("/webhooks/cloud", {
        "object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "time": 1748454394, "changes": [{"field": "phone_number_quality_update", "value": {
            "display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
            "current_limit": "TIER_UNLIMITED"}}]}]})
    assert status == 200, body
    status, body = await d.request("GET", "/api/account/health")
    assert body["health"]["numbers"][0]["current_limit"] == "TIER_UNLIMITED"


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_engagement_works_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0006 gives every 0.1 message row its number's key, and adds the inbound
    and suppression tables: a reply from a number 0.1 registered is credited by that
    number alone, a STOP reaches the suppression list, and both survive a restart (the
    killed database's journal, rows 0.1 wrote, replays beside the new inbound events)."""
    import time

    db, expected = copy_release("0.1", case, tmp_path)
    settings = {"store.path": str(db)}
    d: Daemon = await daemon_factory(**settings)
    keyed = await d.runtime.store.fetchone(
        "SELECT COUNT(*), COUNT(nh) FROM messages m JOIN campaigns c ON c.no = m.campaign_no"
        " WHERE c.uuid = 'tracked'")
    assert keyed[0] == keyed[1] > 0  # every 0.1 row got its key
    # ID00002 went to 628120000002 (as 0.1 registered it); the reply quotes nothing
    now = int(time.time())

    def received(sender: str, body: str, mid: str) -> dict[str, Any]:
        return {"event": "message_received", "data": {"workspace_id": 1, "message": {
            "id": f"false_{sender}@c.us_{mid}", "from": f"{sender}@c.us", "body": body,
            "timestamp": now, "from_me": False, "chat_type": "private", "type": "chat"}}}

    for doc in (received("628120000002", "berapa harganya?", "3EB0UPGRADE1"),
                received("628120000003", "STOP", "3EB0UPGRADE2")):
        status, _ = await d.post_json("/webhooks/webjs", doc)
        assert status == 200

    async def engaged() -> bool:
        stats = await d.stats("tracked")
        return stats["total_replied_count"] == 1 and stats["total_opted_out_count"] == 1

    await eventually(engaged)
    assert d.runtime.suppressions.is_suppressed(1, "628120000003")
    old = expected["tracked"]["statistics"]
    assert (await d.stats("tracked"))["total_read_count"] == old["total_read_count"]
    await close_server(d.server)  # a clean stop: the inbound table carries them over
    again: Daemon = await daemon_factory(**settings)
    stats = await again.stats("tracked")
    assert (stats["total_replied_count"], stats["total_opted_out_count"]) == (1, 1)
    status, body = await again.request("GET", "/api/workspaces/1/suppressions")
    assert [s["number"] for s in body["suppressions"]] == ["628120000003"]


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_retry_failed_works_on_a_campaign_release_0_1_sent(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """0.1's sender left one recipient refused at send time and one failed by an ACK.
    After the upgrade (migration 0007_sending_attempts: attempt columns and the
    `attempts` table) both are retried as attempt 2 (this time the simulator delivers),
    the history shows attempt 1, and every other row is as 0.1 left it."""
    db, expected = copy_release("0.1", case, tmp_path)
    d: Daemon = await daemon_factory(**{
        "store.path": str(db), "gateways.simulator.reject_ratio": 0.0,
        "gateways.simulator.failure_ratio": 0.0, "gateways.simulator.delivery_ratio": 1.0,
        "gateways.simulator.sent_after": 0.01, "gateways.simulator.delivered_after": 0.01})
    old = expected["sent"]["statistics"]
    status, before = await d.request("GET", "/api/campaigns/sent/messages?limit=500")
    assert status == 200
    failed = {r["recipient"] for r in before["messages"] if r["status"] == "failed"}
    assert len(failed) == old["total_failed_count"] == 2
    assert all(r["attempt"] == 1 and r["previous_attempts"] == [] for r in before["messages"])

    status, body = await d.post_json("/api/campaigns/sent/retry-failed", {})
    assert status == 200 and body["requeued"] == 2

    async def delivered() -> Any:
        stats = await d.stats("sent")
        return stats["total_delivered_count"] == old["total_delivered_count"] + 2 and stats
    stats = await eventually(delivered, timeout=10)
    assert stats["total_failed_count"] == 0
    assert stats["total_message_count"] == old["total_message_count"]
    assert stats["total_read_count"] >= old["total_read_count"]
    status, after = await d.request("GET", "/api/campaigns/sent/messages?limit=500")
    rows = {r["recipient"]: r for r in after["messages"]}
    for recipient in failed:
        row = rows[recipient]
        assert row["attempt"] == 2 and row["status"] in ("delivered", "read")
        [first] = row["previous_attempts"]
        assert first["attempt"] == 1 and first["outcome"] == "failed" and first["reason"]
    unchanged = [r for r in before["messages"] if r["recipient"] not in failed]
    assert all(rows[r["recipient"]]["status"] == r["status"] and
               rows[r["recipient"]]["message_id"] == r["message_id"] for r in unchanged)


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_the_analytics_count_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str, monkeypatch: Any) -> None:
    """Migration 0009 adds the aggregates and the backfill counts every message 0.1
    stored, in the background; the killed database's
    journal, replayed on top, is counted once more only by what it changed: the 90-day
    totals equal the campaigns' own statistics, and each number's history adds up to
    its rows."""
    import asyncio
    import time as clock

    from store.insights import Recounter
    from web import insights

    # Small batches: the backfill takes dozens of transactions, checkpoints of the
    # replayed journal and their recounts in between (a row is never counted twice).
    monkeypatch.setattr(Recounter, "BATCH", 7)
    db, expected = copy_release("0.1", case, tmp_path)
    d: Daemon = await daemon_factory(**{"store.path": str(db),
                                        "ingest.orphan_ttl": 3650 * 86400.0,
                                        "store.checkpoint_interval": 0.01})
    made = max(clock.mktime(clock.strptime(c["created_at"][:19], "%Y-%m-%dT%H:%M:%S"))
               - clock.timezone for c in expected.values())
    insights.clock = lambda: made + 86400.0  # the day after the fixture was made
    try:
        await d.runtime.checkpoint()  # the replayed journal, written and marked
        await asyncio.wait_for(d.runtime.recounter.settle(), 30)
        assert d.runtime.recounter.backfilled
        assert d.runtime.recounter.rows >= 260  # every row 0.1 stored, and the marked
        for uuid, old in expected.items():
            stats = old["statistics"]
            workspace = old["workspace_id"]
            status, trends = await d.request(
                "GET", f"/api/workspaces/{workspace}/insights/trends")
            assert status == 200, trends
            assert trends["counting"] is False
            totals = trends["totals"]["90"]["current"]
            assert (totals["sent"], totals["delivered"], totals["read"], totals["failed"]) == (
                stats["total_sent_count"], stats["total_delivered_count"],
                stats["total_read_count"], stats["total_failed_count"]), (case, uuid)
            [point] = trends["campaigns"]
            assert point["uuid"] == uuid and point["read_rate"] == stats["read_rate"]
            status, rows = await d.request("GET",
                                           f"/api/campaigns/{uuid}/messages?limit=500")
            handed = {}
            for r in rows["messages"]:
                if r["status"] != "queued":
                    handed.setdefault(r["recipient"], []).append(r)
            status, listed = await d.request(
                "GET", f"/api/workspaces/{workspace}/contacts?limit=1000")
            assert status == 200
            contacts = {c["number"]: c for c in listed["contacts"]}
            assert set(contacts) == set(handed), (case, uuid)
            for number, its in handed.items():
                c = contacts[number]
                assert c["received"] == len(its)
                assert c["delivered"] == sum(r["status"] in ("delivered", "read", "played")
                                             for r in its)
                assert c["failed"] == sum(r["status"] == "failed" for r in its)
            # Migration 0011's tier counters, moved by the backfill: they equal a count
            # of the contacts, and the first page's tier counts those of the rows.
            assert await tier_counters(d) == await counted_contacts(d)
            shown = Counter(c["tier"] for c in contacts.values())
            assert listed["tiers"] == {t: shown[t] for t in TIERS}
    finally:
        insights.clock = clock.time


async def tier_counters(d: Daemon) -> Counter[tuple[Any, ...]]:
    rows = await d.runtime.store.fetchall(
        "SELECT workspace_id, unreachable, engaged_day, delivered, n FROM contact_tiers")
    return Counter({(ws, bool(u), day, n_delivered): n
                    for ws, u, day, n_delivered, n in rows})


async def counted_contacts(d: Daemon) -> Counter[tuple[Any, ...]]:
    """The contacts table counted by their tier facts, here in Python."""
    from domain.tier_counts import key_of

    out: Counter[tuple[Any, ...]] = Counter()
    for ws, unreachable, engaged_at, delivered in await d.runtime.store.fetchall(
            "SELECT workspace_id, unreachable, engaged_at, delivered FROM contacts"):
        out[(ws, *key_of(unreachable, engaged_at or None, delivered))] += 1
    return out


async def test_contacts_counted_before_the_tier_counters_get_them_at_upgrade(
        daemon_factory: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """A database whose contacts were counted by a release without migration 0011 (made
    here as that release would: every migration before it, and no counter moved): 0011
    counts its contacts into the tier counters at open, the first page's tier counts are
    the contacts' own, and they move afterwards."""
    from store import migrations, tier_counts

    everything, move = migrations.MIGRATIONS, tier_counts.move
    # (the migrations after it, which today's code needs, are there: 0011 comes later)
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [m for m in everything if m.name != "0011_contact_tiers"])
    monkeypatch.setattr(tier_counts, "move", lambda conn, moves: None)
    settings = {"store.path": str(tmp_path / "before.sqlite3")}
    d = await daemon_factory(**settings)
    bad = {"code": "131026", "title": "Message undeliverable"}
    numbers = [f"6281200000{i:03d}" for i in range(6)]
    await d.create_campaign(1, "One", "one")
    await d.create_campaign(1, "Two", "two")
    await d.register("one", [
        {"recipient": numbers[0], "message_id": "A0", "status": "read"},
        {"recipient": numbers[1], "message_id": "A1", "status": "failed", "error": bad},
        *({"recipient": numbers[2], "message_id": f"A2{i}", "status": "delivered"}
          for i in range(3)),
        {"recipient": numbers[3], "message_id": "A3", "status": "delivered"},
        {"recipient": numbers[4], "message_id": "A4", "status": "delivered"}])
    await d.register("two", [
        {"recipient": numbers[1], "message_id": "B1", "status": "failed", "error": bad},
        *({"recipient": numbers[2], "message_id": f"B2{i}", "status": "delivered"}
          for i in range(2))])
    await d.runtime.checkpoint()
    await d.runtime.recounter.settle()
    tables = await d.runtime.store.fetchall(
        "SELECT name FROM sqlite_master WHERE name = 'contact_tiers'")
    assert tables == []  # as the release before kept it
    await close_server(d.server)

    monkeypatch.setattr(migrations, "MIGRATIONS", everything)
    monkeypatch.setattr(tier_counts, "move", move)
    again = await daemon_factory(**settings)
    assert await tier_counters(again) == await counted_contacts(again)
    assert sum((await tier_counters(again)).values()) == 5
    _, body = await again.request("GET", "/api/workspaces/1/contacts")
    tiers = {c["number"]: c["tier"] for c in body["contacts"]}
    assert tiers == {numbers[0]: "engaged", numbers[1]: "unreachable",
                     numbers[2]: "unengaged", numbers[3]: "new", numbers[4]: "new"}
    assert body["tiers"] == {"opted_out": 0, "unreachable": 1, "engaged": 1,
                             "unengaged": 1, "new": 2}
    # After the upgrade they move with the contacts: numbers[3] reads.
    status, _ = await again.post_json("/webhooks/webjs", webjs_ack("A3", 3))
    assert status == 200

    async def moved() -> bool:
        await again.runtime.checkpoint()
        await again.runtime.recounter.settle()
        _, now = await again.request("GET", "/api/workspaces/1/contacts")
        return now["tiers"] == {"opted_out": 0, "unreachable": 1, "engaged": 2,
                                "unengaged": 1, "new": 1}

    await eventually(moved)
    assert await tier_counters(again) == await counted_contacts(again)


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_skips_work_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0010_skips adds the skip columns: on the upgraded database a suppressed
    number is skipped by retry-failed (it stays failed: its latest attempt is the failed
    one, and its row shows the skip) and by a new campaign (counted as skipped), and the
    CSV export carries the skip."""
    db, _ = copy_release("0.1", case, tmp_path)
    d: Daemon = await daemon_factory(**{
        "store.path": str(db), "gateways.simulator.reject_ratio": 0.0,
        "gateways.simulator.failure_ratio": 0.0, "gateways.simulator.delivery_ratio": 1.0,
        "gateways.simulator.sent_after": 0.01, "gateways.simulator.delivered_after": 0.01})
    _, body = await d.request("GET", "/api/campaigns/sent")
    workspace = body["campaign"]["workspace_id"]
    _, before = await d.request("GET", "/api/campaigns/sent/messages?status=failed")
    stopped, other = sorted(r["recipient"] for r in before["messages"])
    status, _ = await d.post_json(f"/api/workspaces/{workspace}/suppressions",
                                  {"number": stopped, "reason": "asked by phone"})
    assert status == 201

    async def listed() -> bool:
        _, got = await d.request("GET", f"/api/workspaces/{workspace}/suppressions")
        return got["total"] == 1
    await eventually(listed)

    status, body = await d.post_json("/api/campaigns/sent/retry-failed", {})
    assert status == 200 and body["requeued"] == 2

    async def retried() -> Any:
        _, got = await d.request("GET", "/api/campaigns/sent/messages?limit=500")
        rows = {r["recipient"]: r for r in got["messages"]}
        return (rows[stopped]["send_state"] == "skipped"
                and rows[other]["status"] in ("delivered", "read") and rows)
    rows = await eventually(retried, timeout=10)
    assert rows[stopped]["status"] == "failed" and rows[stopped]["attempt"] == 1
    assert rows[stopped]["skip"]["reason"] == "suppressed"
    assert (await d.stats("sent"))["total_skipped_count"] == 0  # it counts as failed

    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": workspace, "name": "Again", "message": "Hi",
        "recipients": [stopped, other], "rate": 50, "start": True})
    assert status == 201, body
    uuid = body["campaign"]["uuid"]

    async def skipped() -> Any:
        stats = await d.stats(uuid)
        return stats["total_skipped_count"] == 1 and stats["total_sent_count"] == 1 and stats
    await eventually(skipped, timeout=10)
    status, text = await d.request("GET", f"/api/campaigns/{uuid}/export.csv")
    assert status == 200
    found = {r["recipient"]: r for r in csv.DictReader(io.StringIO(text))}
    assert found[stopped]["status"] == "skipped" and found[stopped]["skip_reason"] == "suppressed"
    # Migration 0014: a campaign's load finds its skipped rows by their index.
    store = d.runtime.store
    assert await store.fetchone("SELECT 1 FROM sqlite_master WHERE name = 'messages_skipped'")
    no = (await store.fetchone("SELECT no FROM campaigns WHERE uuid = ?", (uuid,)))[0]
    assert [(skip.reason, skip.source) for _, skip in await d.runtime.campaigns.skips(no)] == [
        ("suppressed", found[stopped]["skip_source"] or None)]


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_recovery_images_work_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0012 (issue 20, store/image.py): a 0.1 database has no images, so its
    first start goes the rows + journal way; its first checkpoint images every campaign
    it loaded and the id index, and the next start loads from them, with the same
    counters 0.1 served."""
    db, expected = copy_release("0.1", case, tmp_path)
    settings = {"store.path": str(db), "ingest.orphan_ttl": 3650 * 86400.0}
    d: Daemon = await daemon_factory(**settings)
    assert d.runtime.imaged_campaigns == 0
    for uuid, old in expected.items():
        _, body = await d.request("GET", f"/api/campaigns/{uuid}")
        assert body["campaign"]["statistics"]["total_read_count"] == \
            old["statistics"]["total_read_count"]
    assert (await d.runtime.store.fetchone("SELECT SUM(row_writes) FROM campaigns"))[0] == 0
    seq = await d.runtime.checkpoint()
    images = await d.runtime.store.fetchall(
        "SELECT name FROM recovery_images WHERE seq = ? AND length(body) > 0", (seq,))
    assert {name for (name,) in images} >= {"index"}
    assert len(images) == len(expected) + 1  # every campaign was loaded (asked for above)
    chunked = await d.runtime.store.fetchall(  # migration 0013: the arrays in chunks
        "SELECT DISTINCT name FROM recovery_image_chunks")
    assert len(chunked) == len(expected)
    await close_server(d.server)
    again: Daemon = await daemon_factory(**settings)
    assert again.runtime.imaged_campaigns == len(expected)
    for uuid, old in expected.items():
        _, body = await again.request("GET", f"/api/campaigns/{uuid}")
        for name in COUNTS:
            assert body["campaign"]["statistics"][name] == old["statistics"][name], (uuid, name)
        _, rows = await again.request("GET", f"/api/campaigns/{uuid}/messages?limit=500")
        assert len(rows["messages"]) == old["statistics"]["total_message_count"]



def layout_1(head_data: bytes, chunks: list[bytes]) -> bytes:
    """A ledger image as migration 0012's code wrote it (layout 1: one blob, the arrays
    after the JSON head), made from a layout 2 image of the same ledger."""
    import sys
    import zlib

    import orjson

    from domain.image import CHUNK_MAGIC, LEDGER_MAGIC, PREFIX, TS_SLOTS, _unpack

    head, _ = _unpack(LEDGER_MAGIC, head_data)
    del head["chunk_rows"], head["blobs"]
    columns: list[bytearray] = [bytearray() for _ in range(2 + TS_SLOTS)]
    for data in chunks:
        _, arrays = _unpack(CHUNK_MAGIC, data)
        for column, part in zip(columns, arrays, strict=True):
            column += part
    head["byteorder"] = sys.byteorder
    head["blobs"] = [len(c) for c in columns]
    body = b"".join([orjson.dumps(head), *map(bytes, columns)])
    return PREFIX.pack(LEDGER_MAGIC, 1, zlib.crc32(body), len(orjson.dumps(head))) + body


def test_a_database_with_recovery_images_of_migration_0012_opens_with_nothing_lost(
        tmp_path: Path) -> None:
    """A database as main wrote it before migration 0013: images of layout 1 (one blob
    per ledger, no chunk table), committed by a checkpoint whose rows failed, and events
    after them only in the journal when the daemon was killed. The current code
    migrates it, refuses those images (their layout) and starts the rows + journal way:
    counters and rows exact; its first checkpoint writes images of layout 2, which the
    next start uses."""
    import sqlite3

    from tests.proc import DaemonProcess
    from tests.test_recovery_images import (
        QUIET,
        assert_both_exact,
        counts,
        expect_counts,
        killed_after_an_image,
        meta,
        rows_of,
        started,
    )

    config, (uuid, quiet), expected = killed_after_an_image(tmp_path)
    db = tmp_path / "campaignd.sqlite3"
    seqs = meta(db)
    with sqlite3.connect(db) as conn:  # back to what 0012's code wrote
        for name, head in conn.execute("SELECT name, body FROM recovery_images"
                                       " WHERE name LIKE 'campaign:%' AND length(body) > 0"
                                       ).fetchall():
            chunks = [c for (c,) in conn.execute(
                "SELECT body FROM recovery_image_chunks WHERE name = ? ORDER BY chunk",
                (name,))]
            conn.execute("UPDATE recovery_images SET body = ? WHERE name = ?",
                         (layout_1(head, chunks), name))
        conn.execute("DROP TABLE recovery_image_chunks")
        conn.execute("DELETE FROM schema_migrations WHERE name = '0013_recovery_image_chunks'")
    proc = DaemonProcess(config)
    try:
        log = started(tmp_path / "daemon.log")
        assert (log["replayed_from"], log["images"]) == (seqs["checkpoint_seq"], 0)
        assert counts(proc.url, uuid) == expect_counts(expected)
        assert rows_of(proc.url, uuid) == expected
        assert counts(proc.url, quiet) == expect_counts(QUIET)
    finally:
        assert proc.terminate() == 0
    again = DaemonProcess(config)
    try:
        assert started(tmp_path / "daemon.log")["images"] == 2  # layout 2 now
        assert_both_exact(again.url, uuid, expected, quiet)
    finally:
        again.terminate()


async def test_the_sender_finds_interrupted_calls_by_index_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path) -> None:
    """Migration 0015 (issue 20, recovery): the sender's start-up looks for calls a kill
    interrupted (`attempting`) and outcomes it never learned (`unknown`) through partial
    indexes instead of walking every message. On an upgraded 0.1 database a row left
    mid-call is reported unknown after the next start, the next row counted too, and both
    reads use their index."""
    import sqlite3

    db, expected = copy_release("0.1", "clean", tmp_path)
    settings = {"store.path": str(db)}
    d: Daemon = await daemon_factory(**settings)
    old = await d.stats("sent")
    assert old["total_message_count"] == expected["sent"]["statistics"]["total_message_count"]
    await close_server(d.server)
    with sqlite3.connect(db) as conn:  # as a kill during two gateway calls leaves them
        no = conn.execute("SELECT no FROM campaigns WHERE uuid = 'sent'").fetchone()[0]
        rows = [r for (r,) in conn.execute(
            "SELECT row FROM messages WHERE campaign_no = ? ORDER BY row LIMIT 2", (no,))]
        conn.execute("UPDATE messages SET send_state = 'attempting' WHERE campaign_no = ?"
                     " AND row = ?", (no, rows[0]))
        conn.execute("UPDATE messages SET send_state = 'unknown' WHERE campaign_no = ?"
                     " AND row = ?", (no, rows[1]))
        plans = [" ".join(str(step[-1]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
                 for sql in (
                     "SELECT campaign_no, COUNT(*) FROM messages WHERE send_state IN"
                     " ('attempting', 'retrying') GROUP BY campaign_no",
                     "SELECT campaign_no, COUNT(*) FROM messages WHERE send_state = 'unknown'"
                     " GROUP BY campaign_no")]
    assert "messages_sending" in plans[0] and "messages_unknown" in plans[1], plans
    again: Daemon = await daemon_factory(**settings)
    stats = await again.stats("sent")
    assert stats["total_unknown_count"] == 2
    assert stats["total_message_count"] == old["total_message_count"]
    _, body = await again.request("GET", "/api/campaigns/sent/messages?limit=500")
    states = {r["row"]: r["send_state"] for r in body["messages"]}
    assert (states[rows[0]], states[rows[1]]) == ("unknown", "unknown")


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_the_analytics_find_replies_by_their_stamp_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0016 adds the inbound events' `written` stamp: a reply credited after
    the upgrade is written stamped (its message row is not marked) and the analytics
    count it from there: the number's contact shows the reply, and nothing waits."""
    import asyncio
    import time

    db, _ = copy_release("0.1", case, tmp_path)
    d: Daemon = await daemon_factory(**{"store.path": str(db)})
    now = int(time.time())
    doc = {"event": "message_received", "data": {"workspace_id": 1, "message": {
        "id": "false_628120000002@c.us_3EB0STAMP1", "from": "628120000002@c.us",
        "body": "berapa harganya?", "timestamp": now, "from_me": False,
        "chat_type": "private", "type": "chat"}}}
    status, _ = await d.post_json("/webhooks/webjs", doc)
    assert status == 200

    async def replied() -> bool:
        return (await d.stats("tracked"))["total_replied_count"] == 1

    await eventually(replied)
    await d.runtime.checkpoint()
    stamped = await d.runtime.store.fetchall(
        "SELECT written, campaign_no FROM inbound WHERE written IS NOT NULL")
    assert len(stamped) == 1 and stamped[0][1] is not None
    await asyncio.wait_for(d.runtime.recounter.settle(), 30)
    assert not await d.runtime.recounter.counting()
    status, listed = await d.request("GET", "/api/workspaces/1/contacts?limit=1000")
    assert status == 200
    [contact] = [c for c in listed["contacts"] if c["number"] == "628120000002"]
    assert contact["replied"] == 1


@pytest.mark.parametrize("case", ["clean", "killed"])
async def test_alerts_firing_are_kept_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path, case: str) -> None:
    """Migration 0017 adds `alert_states`: an alert that fires on a campaign release 0.1
    wrote (3.3 % of its messages failed) is stored, and the next start shows it again
    without announcing it a second time."""
    import asyncio

    db, expected = copy_release("0.1", case, tmp_path)
    rule = {"name": "failures", "metric": "failure_rate", "threshold": 1, "window": 0,
            "min_volume": 10, "hold": 0}
    d: Daemon = await daemon_factory(**{"store.path": str(db), "alerts": [rule]})
    no = expected["sent"]["id"]

    async def stored() -> list[Any]:
        return await d.runtime.store.fetchall(
            "SELECT campaign_no, rule FROM alert_states")

    # a change the alert actor hears: a message of the campaign not yet read is read
    [(unread,)] = await d.runtime.store.fetchall(
        "SELECT message_id FROM messages WHERE campaign_no = ? AND level < 4 AND failed = 0"
        " LIMIT 1", (no,))
    status, _ = await d.post_json("/webhooks/webjs", webjs_ack(unread, 3))
    assert status == 200

    async def fired() -> bool:
        return (no, "failures") in [tuple(r) for r in await stored()]

    await eventually(fired)
    _, body = await d.request("GET", "/api/campaigns/sent")
    [alert] = body["campaign"]["alerts"]
    assert (alert["rule"], alert["value"]) == ("failures", 3.3)
    await close_server(d.server)
    await d.session.close()

    d = await daemon_factory(**{"store.path": str(db), "alerts": [rule]})
    _, body = await d.request("GET", "/api/campaigns/sent")
    assert body["campaign"]["alerts"] == [alert]
    await asyncio.get_running_loop().run_in_executor(None, d.runtime.alerts.ref.ask, "x")
    assert d.runtime.metrics.alert_notices.labels("failures", "firing")._value.get() == 0
    assert d.runtime.metrics.alert_notices.labels("failures", "cleared")._value.get() == 0


async def test_stops_are_queued_for_a_cluster_on_a_database_of_release_0_1(
        daemon_factory: Any, tmp_path: Path) -> None:
    """Migrations 0018 and 0020: a single node queues no stop (nobody would ever empty
    its outbox); started again as a cluster node (Redis away here), it queues the stops
    listed before, once, and every stop listed from then on, by the transaction that
    lists it."""
    from tests.ports import free_port

    db, _ = copy_release("0.1", "clean", tmp_path)
    d: Daemon = await daemon_factory(**{"store.path": str(db)})

    async def stop(number: str) -> None:
        status, _ = await d.post_json("/api/workspaces/1/suppressions", {"number": number})
        assert status == 201
        await d.runtime.checkpoint()

    async def queued() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await d.runtime.store.fetchall(
            "SELECT workspace_id, number, source FROM stops_outbox ORDER BY seq")]

    await stop("628110000009")
    assert await queued() == []
    await close_server(d.server)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: Redis is down
    d = await daemon_factory(**{"store.path": str(db), "cluster.node": "n1",
                                "cluster.redis_url": nowhere})

    async def earlier_stop_queued() -> bool:
        return await queued() == [(1, "628110000009", "api")]
    await eventually(earlier_stop_queued)
    await stop("628110000010")
    assert await queued() == [(1, "628110000009", "api"), (1, "628110000010", "api")]


def recorded_migrations(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("case", ["new", "release 0.1"])
async def test_a_migration_failing_on_a_database_without_any_leaves_it_as_it_was(
        tmp_path: Path, case: str, monkeypatch: Any) -> None:
    """A new database, or one of release 0.1, gets every migration in one transaction:
    when the last one fails, none is recorded and no table of theirs is there (`inbound`,
    0006's); the next open (the failure gone) applies them all."""
    from store import migrations
    from store.db import Store

    path = (tmp_path / "new.sqlite3" if case == "new"
            else copy_release("0.1", "clean", tmp_path)[0])

    async def fail(conn: Any) -> None:
        raise RuntimeError("the last migration fails")

    everything = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [*everything, migrations.Migration("9999_fails", fail)])
    with pytest.raises(RuntimeError, match="the last migration fails"):
        await Store(path).open()
    assert recorded_migrations(path) == []
    assert "inbound" not in tables(path)  # 0006's table: rolled back with the rest

    monkeypatch.setattr(migrations, "MIGRATIONS", everything)
    store = Store(path)
    await store.open()
    await store.close()
    assert recorded_migrations(path) == sorted(m.name for m in everything)
    assert "inbound" in tables(path)


async def test_a_migration_failing_on_an_upgraded_database_keeps_the_ones_before_it(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A database that has had migrations gets the new ones one transaction each: those
    before a failing one stay applied and recorded."""
    from store import migrations
    from store.db import Store

    path = tmp_path / "old.sqlite3"
    everything = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", everything[:-2])  # an older release
    store = Store(path)
    await store.open()
    await store.close()

    async def fail(conn: Any) -> None:
        raise RuntimeError("the new release's second migration fails")

    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [*everything[:-1], migrations.Migration("9999_fails", fail)])
    with pytest.raises(RuntimeError, match="second migration fails"):
        await Store(path).open()
    assert recorded_migrations(path) == sorted(m.name for m in everything[:-1])
