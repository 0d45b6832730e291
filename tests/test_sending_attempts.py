"""Attempts (SPEC 9) end to end: a retry is a new attempt with its own gateway id; the
recipient leaves Failed as soon as it is under way and comes back only if it fails too;
delivery evidence from any attempt counts; earlier attempts are kept and shown in the
rows API and the CSV, also after a restart; a reply answers the attempt sent last."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, eventually, make_config, start_daemon, webjs_ack
from tests.fakes.gateways import FakeGateway
from tests.test_sending_http import numbers, rows, send, wait_status


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def config(fake: FakeGateway, **overrides: Any) -> dict[str, Any]:
    return {"gateways.http.url": fake.url + "/api/messages/send",
            "gateways.http.id_field": "message_id", "sender.backoff_base": 0.05,
            "sender.backoff_max": 0.2, "sender.request_timeout": 30.0, **overrides}


async def ack(d: Daemon, message_id: str, level: int, error: str | None = None) -> None:
    doc = webjs_ack(message_id, level)
    if error:
        doc["data"]["error"] = error
    status, body = await d.post_json("/webhooks/webjs", doc)
    assert status == 200, body


async def test_retry_turns_a_failed_recipient_into_a_delivered_one_and_keeps_history(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**config(fake))
    a, b, c = numbers(3)
    fake.script = {a: [400, "hang"]}
    uuid = await send(d, [a, b, c])
    campaign = await wait_status(d, uuid, "completed")
    assert campaign["statistics"]["total_failed_count"] == 1
    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    assert status == 200 and body["requeued"] == 1

    # While the retry's call is still under way, `a` is no longer counted as failed.
    async def retry_under_way() -> bool:
        return fake.per_recipient()[a] == 2
    await eventually(retry_under_way)
    stats = await d.stats(uuid)
    assert stats["total_failed_count"] == 0 and stats["total_queued_count"] == 1
    got = (await rows(d, uuid))[a]
    assert got["status"] == "queued" and got["send_state"] == "attempting"
    assert got["attempt"] == 2 and got["failure_reason"] is None
    [first] = got["previous_attempts"]
    assert first["attempt"] == 1 and first["outcome"] == "failed"
    assert "not registered" in first["reason"] and first["message_id"] is None
    assert first["started_at"] and first["ended_at"]


async def test_only_the_latest_attempt_can_fail_and_any_attempt_can_deliver(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Path) -> None:
    d = await daemon_factory(**config(fake))
    a, b = numbers(2)
    uuid = await send(d, [a, b])
    await wait_status(d, uuid, "completed")
    first_id = (await rows(d, uuid))[a]["message_id"]
    await ack(d, first_id, -1, "131026: undeliverable")
    assert (await d.stats(uuid))["total_failed_count"] == 1

    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    assert status == 200 and body["requeued"] == 1
    await eventually(lambda: _async(fake.per_recipient()[a] == 2))

    async def accepted_again() -> Any:
        row = (await rows(d, uuid))[a]
        return row["send_state"] == "accepted" and row
    row = await accepted_again() or await eventually(accepted_again)
    second_id = row["message_id"]
    assert second_id != first_id and row["attempt"] == 2
    assert row["previous_attempts"][0]["outcome"] == "failed"
    assert row["previous_attempts"][0]["reason"] == "131026: undeliverable"
    assert first_id in row["previous_attempts"][0]["message_id"]
    stats = await d.stats(uuid)
    assert stats["total_failed_count"] == 0 and stats["total_sent_count"] == 2

    await ack(d, first_id, -1, "131026: undeliverable")  # the old failure, again: ignored
    assert (await d.stats(uuid))["total_failed_count"] == 0
    await ack(d, second_id, -1, "131049: not delivered")  # the retry fails too
    stats = await d.stats(uuid)
    assert stats["total_failed_count"] == 1
    assert (await rows(d, uuid))[a]["failure_reason"] == "131049: not delivered"
    await ack(d, first_id, 2)  # ...but attempt 1 reached the phone after all
    stats = await d.stats(uuid)
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1

    # A restart keeps it all, and attempt 1's id still finds its row.
    await d.server.close()
    await d.session.close()
    server, session = await start_daemon(make_config(tmp_path, **config(fake)))
    again = Daemon(server, session)
    try:
        stats = await again.stats(uuid)
        assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
        row = (await rows(again, uuid))[a]
        assert row["attempt"] == 2 and len(row["previous_attempts"]) == 1
        await ack(again, first_id, 3)
        assert (await again.stats(uuid))["total_read_count"] == 1

        status, text = await again.request("GET", f"/api/campaigns/{uuid}/export.csv")
        assert status == 200
        lines = {r["recipient"]: r for r in csv.DictReader(io.StringIO(text))}
        assert lines[a]["attempt"] == "2" and lines[b]["attempt"] == "1"
        assert lines[a]["previous_attempts"].startswith("#1 failed 20")
        assert lines[a]["previous_attempts"].endswith(": 131026: undeliverable")
        assert lines[b]["previous_attempts"] == ""
    finally:
        await session.close()
        await server.close()


async def test_search_finds_a_recipient_by_an_earlier_attempts_id(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**config(fake))
    (a,) = numbers(1)
    fake.script = {a: [400]}
    uuid = await send(d, [a])
    await wait_status(d, uuid, "failed")
    await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    await wait_status(d, uuid, "completed")
    fake.script = {}
    row = (await rows(d, uuid))[a]
    await ack(d, row["message_id"], -1, "131026: undeliverable")
    await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})

    async def third() -> Any:
        got = (await rows(d, uuid))[a]
        return got["attempt"] == 3 and got["send_state"] == "accepted" and got
    got = await eventually(third)
    assert [p["outcome"] for p in got["previous_attempts"]] == ["failed", "failed"]
    old = got["previous_attempts"][1]["message_id"]
    status, body = await d.request(
        "GET", f"/api/campaigns/{uuid}/messages?search={old[-10:]}")
    assert status == 200 and [m["recipient"] for m in body["messages"]] == [a]


async def _async(value: Any) -> Any:
    return value


def reply_from(number: str, mid: str, at: float) -> dict[str, Any]:
    """A whatsapp-web.js message from `number` that quotes nothing (SPEC 6.2 rule 2)."""
    return {"event": "message_received", "data": {"workspace_id": 1, "message": {
        "id": f"false_{number}@c.us_{mid}", "from": f"{number}@c.us", "body": "ok, thanks",
        "timestamp": int(at), "from_me": False, "chat_type": "private", "type": "chat"}}}


async def test_a_reply_answers_the_retry_the_recipient_got_last_also_after_a_restart(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Path) -> None:
    """Reply attribution (SPEC 6.2) over attempts (SPEC 9): the first attempt to `a`
    failed, another campaign reached `a` after it, then the retry did. A reply by number
    alone answers the latest message sent there, the retry; after a restart its send time
    comes back from the row, so the next reply goes there too."""
    d = await daemon_factory(**config(fake))
    (a,) = numbers(1)
    first = await send(d, [a])
    await wait_status(d, first, "completed")
    await ack(d, (await rows(d, first))[a]["message_id"], -1, "131026: undeliverable")
    other = await send(d, [a])
    await wait_status(d, other, "completed")
    other_sent = (await rows(d, other))[a]["timestamps"]["pending"]
    assert other_sent
    # the retry goes out in a later tenth of a second than the other campaign's message
    after = datetime.fromisoformat(other_sent.replace("Z", "+00:00")).timestamp() + 0.3
    await eventually(lambda: _async(time.time() > after))
    status, body = await d.post_json(f"/api/campaigns/{first}/retry-failed", {})
    assert status == 200 and body["requeued"] == 1

    async def retried() -> Any:
        row = (await rows(d, first))[a]
        return row["attempt"] == 2 and row["send_state"] == "accepted"
    await eventually(retried)

    async def replies(daemon: Daemon, uuid: str, count: int) -> Any:
        row = (await rows(daemon, uuid))[a]
        return row["reply_count"] == count and row

    status, _ = await d.post_json("/webhooks/webjs", reply_from(a, "3EB0RETRY01",
                                                                time.time() + 2))
    assert status == 200
    await eventually(lambda: replies(d, first, 1))
    assert (await rows(d, other))[a]["reply_count"] == 0

    await d.server.close()
    await d.session.close()
    server, session = await start_daemon(make_config(tmp_path, **config(fake)))
    again = Daemon(server, session)
    try:
        status, _ = await again.post_json("/webhooks/webjs", reply_from(a, "3EB0RETRY02",
                                                                        time.time() + 3))
        assert status == 200
        await eventually(lambda: replies(again, first, 2))
        assert (await rows(again, other))[a]["reply_count"] == 0
    finally:
        await session.close()
        await server.close()
