"""Attempts (SPEC 9) end to end: a retry is a new attempt with its own gateway id; the
recipient leaves Failed as soon as it is under way and comes back only if it fails too;
delivery evidence from any attempt counts; earlier attempts are kept and shown in the
rows API and the CSV, also after a restart."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
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
